"""Session calendars: DST switches, early closes, holidays, the FX weekend.

Every expected instant below is written out in UTC by hand (New York is UTC-5 in winter, UTC-4 in
summer; the 2017 switches were 12 March and 5 November, the 2021 ones 14 March and 7 November).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.schema import BAR_SCHEMA
from tasks.calendars import (
    assign_sessions,
    expected_bars,
    interval_minutes,
    session_bounds,
    session_ordinals,
    sessions_between,
)

UTC = UTC


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_bars(stamps: list[datetime], interval: str = "1m", symbol: str = "X") -> pl.DataFrame:
    n = len(stamps)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "interval": [interval] * n,
            "ts": stamps,
            "open": [100.0] * n,
            "high": [101.0] * n,
            "low": [99.0] * n,
            "close": [100.5] * n,
            "volume": [1.0] * n,
            "source": ["test"] * n,
        },
        schema=BAR_SCHEMA,
    )


def minute_grid(start: datetime, end: datetime, step_minutes: int = 1) -> list[datetime]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += timedelta(minutes=step_minutes)
    return out


def expected_of(calendar: str, interval: str, day: date) -> int:
    return int(expected_bars(calendar, interval, [day])["expected_bars"][0])


# --------------------------------------------------------------------------------------------------
# Expected bar counts around DST switches (2017 and 2021, both directions)

# (session, open UTC, close UTC) for XNYS on the last session before and the first after each switch.
XNYS_DST = [
    (date(2017, 3, 10), utc(2017, 3, 10, 14, 30), utc(2017, 3, 10, 21, 0)),
    (date(2017, 3, 13), utc(2017, 3, 13, 13, 30), utc(2017, 3, 13, 20, 0)),
    (date(2017, 11, 3), utc(2017, 11, 3, 13, 30), utc(2017, 11, 3, 20, 0)),
    (date(2017, 11, 6), utc(2017, 11, 6, 14, 30), utc(2017, 11, 6, 21, 0)),
    (date(2021, 3, 12), utc(2021, 3, 12, 14, 30), utc(2021, 3, 12, 21, 0)),
    (date(2021, 3, 15), utc(2021, 3, 15, 13, 30), utc(2021, 3, 15, 20, 0)),
    (date(2021, 11, 5), utc(2021, 11, 5, 13, 30), utc(2021, 11, 5, 20, 0)),
    (date(2021, 11, 8), utc(2021, 11, 8, 14, 30), utc(2021, 11, 8, 21, 0)),
]


@pytest.mark.parametrize(("day", "open_utc", "close_utc"), XNYS_DST)
def test_xnys_dst_sessions(day: date, open_utc: datetime, close_utc: datetime) -> None:
    bounds = session_bounds("XNYS", [day]).row(0, named=True)
    assert bounds["open"] == open_utc
    assert bounds["close"] == close_utc
    assert expected_of("XNYS", "1m", day) == 390
    assert expected_of("XNYS", "5m", day) == 78
    assert expected_of("XNYS", "1h", day) == 7  # 09:00 (carrying 09:30-10:00), 10:00, ..., 15:00


@pytest.mark.parametrize(("day", "open_utc", "close_utc"), XNYS_DST)
def test_xnys_dst_assignment_of_real_minutes(day: date, open_utc: datetime, close_utc: datetime) -> None:
    # Every UTC minute of the local day and its neighbours: exactly the regular minutes are kept.
    stamps = minute_grid(
        utc(day.year, day.month, day.day) - timedelta(hours=12),
        utc(day.year, day.month, day.day) + timedelta(hours=36),
    )
    result = assign_sessions(make_bars(stamps), "XNYS", "1m")
    kept = result.bars.filter(pl.col("session_date") == day)
    assert kept.height == 390
    assert kept["ts"].min() == open_utc
    assert kept["ts"].max() == close_utc - timedelta(minutes=1)
    assert result.n_input == result.bars.height + result.n_dropped
    # A minute before the open and the minute at the close are extended-hours bars.
    edge = assign_sessions(
        make_bars([open_utc - timedelta(minutes=1), open_utc, close_utc - timedelta(minutes=1), close_utc]),
        "XNYS",
        "1m",
    )
    assert edge.bars["ts"].to_list() == [open_utc, close_utc - timedelta(minutes=1)]
    assert edge.dropped_extended == 2
    assert edge.dropped_closed == 0


# FX: (bar start UTC, session or None when in the weekend close).
FX_CASES = [
    # spring 2017: Fri 10 Mar EST (17:00 = 22:00 UTC), Sun 12 Mar EDT (17:00 = 21:00 UTC)
    (utc(2017, 3, 10, 21, 59), date(2017, 3, 10)),
    (utc(2017, 3, 10, 22, 0), None),
    (utc(2017, 3, 12, 20, 59), None),
    (utc(2017, 3, 12, 21, 0), date(2017, 3, 13)),
    (utc(2017, 3, 13, 20, 59), date(2017, 3, 13)),
    (utc(2017, 3, 13, 21, 0), date(2017, 3, 14)),
    # autumn 2017: Fri 3 Nov EDT (17:00 = 21:00 UTC), Sun 5 Nov EST (17:00 = 22:00 UTC)
    (utc(2017, 11, 3, 20, 59), date(2017, 11, 3)),
    (utc(2017, 11, 3, 21, 0), None),
    (utc(2017, 11, 5, 21, 59), None),
    (utc(2017, 11, 5, 22, 0), date(2017, 11, 6)),
    (utc(2017, 11, 6, 21, 59), date(2017, 11, 6)),
    (utc(2017, 11, 6, 22, 0), date(2017, 11, 7)),
    # spring 2021: Fri 12 Mar EST, Sun 14 Mar EDT
    (utc(2021, 3, 12, 21, 59), date(2021, 3, 12)),
    (utc(2021, 3, 12, 22, 0), None),
    (utc(2021, 3, 14, 20, 59), None),
    (utc(2021, 3, 14, 21, 0), date(2021, 3, 15)),
    # autumn 2021: Fri 5 Nov EDT, Sun 7 Nov EST
    (utc(2021, 11, 5, 20, 59), date(2021, 11, 5)),
    (utc(2021, 11, 5, 21, 0), None),
    (utc(2021, 11, 7, 21, 59), None),
    (utc(2021, 11, 7, 22, 0), date(2021, 11, 8)),
]


@pytest.mark.parametrize(("stamp", "session"), FX_CASES)
def test_fx_assignment_around_dst(stamp: datetime, session: date | None) -> None:
    result = assign_sessions(make_bars([stamp]), "fx", "1m")
    if session is None:
        assert result.bars.height == 0
        assert result.dropped_weekend == 1
    else:
        assert result.bars["session_date"].to_list() == [session]
        assert result.dropped_weekend == 0


@pytest.mark.parametrize(
    ("friday", "weekend_minutes"),
    [
        (date(2017, 3, 10), 47 * 60),  # the clock springs forward inside the weekend close
        (date(2017, 11, 3), 49 * 60),  # and falls back
        (date(2021, 3, 12), 47 * 60),
        (date(2021, 11, 5), 49 * 60),
        (date(2017, 6, 16), 48 * 60),  # an ordinary summer weekend
    ],
)
def test_fx_dst_weekend_full_minute_grid(friday: date, weekend_minutes: int) -> None:
    start = utc(friday.year, friday.month, friday.day) - timedelta(days=1)
    stamps = minute_grid(start, start + timedelta(days=6))
    result = assign_sessions(make_bars(stamps), "fx", "1m")
    assert result.dropped_weekend == weekend_minutes
    assert result.n_input == result.bars.height + result.dropped_weekend
    counts = result.bars.group_by("session_date").len()
    monday = friday + timedelta(days=3)
    for day in (friday, monday, monday + timedelta(days=1)):
        n = counts.filter(pl.col("session_date") == day)["len"].item()
        assert n == expected_of("fx", "1m", day) == 1440
    # Sessions start at 17:00 New York of the previous day, whatever the offset.
    first_monday = result.bars.filter(pl.col("session_date") == monday)["ts"].min()
    assert first_monday == session_bounds("fx", [monday])["open"][0]


@pytest.mark.parametrize("day", [date(2017, 3, 12), date(2017, 11, 5), date(2021, 3, 14), date(2021, 11, 7)])
def test_fx_switch_sundays_are_not_sessions(day: date) -> None:
    # The DST switch (02:00 Sunday) always falls in the weekend close, so no weekday session spans it.
    assert expected_of("fx", "1m", day) == 0
    assert day not in sessions_between("fx", day - timedelta(days=3), day + timedelta(days=3))
    monday = day + timedelta(days=1)
    bounds = session_bounds("fx", [monday]).row(0, named=True)
    assert (bounds["close"] - bounds["open"]) == timedelta(hours=24)


@pytest.mark.parametrize("day", [date(2017, 3, 12), date(2017, 11, 5), date(2021, 3, 14), date(2021, 11, 7)])
def test_crypto_sessions_are_utc_days_on_dst_days(day: date) -> None:
    assert expected_of("24x7", "1m", day) == 1440
    assert expected_of("24x7", "1h", day) == 24
    start = utc(day.year, day.month, day.day)
    stamps = [start - timedelta(minutes=1), start, start + timedelta(hours=23, minutes=59)]
    result = assign_sessions(make_bars(stamps), "24x7", "1m")
    assert result.bars["session_date"].to_list() == [day - timedelta(days=1), day, day]


# --------------------------------------------------------------------------------------------------
# Early closes and holidays


@pytest.mark.parametrize("day", [date(2017, 11, 24), date(2021, 11, 26), date(2017, 7, 3)])
def test_early_close(day: date) -> None:
    assert expected_of("XNYS", "1m", day) == 210
    assert expected_of("XNYS", "1h", day) == 4
    close = session_bounds("XNYS", [day])["close"][0]
    assert close.astimezone(UTC).hour in (17, 18)  # 13:00 New York
    stamps = minute_grid(utc(day.year, day.month, day.day, 13), utc(day.year, day.month, day.day, 22))
    result = assign_sessions(make_bars(stamps), "XNYS", "1m")
    assert result.bars.height == 210
    assert result.bars["ts"].max() == close - timedelta(minutes=1)


@pytest.mark.parametrize("day", [date(2017, 12, 25), date(2021, 11, 25), date(2017, 1, 16), date(2021, 4, 2)])
def test_holiday_has_no_session(day: date) -> None:
    assert day not in sessions_between("XNYS", day - timedelta(days=5), day + timedelta(days=5))
    assert expected_of("XNYS", "1m", day) == 0
    stamps = minute_grid(utc(day.year, day.month, day.day, 14), utc(day.year, day.month, day.day, 21))
    result = assign_sessions(make_bars(stamps), "XNYS", "1m", include_extended=True)
    assert result.bars.height == 0
    assert result.dropped_closed == len(stamps)
    with pytest.raises(DataError, match="not sessions"):
        session_ordinals("XNYS", [day])


def test_sessions_between_kinds() -> None:
    start, end = date(2021, 11, 20), date(2021, 11, 28)  # Sat .. Sun, Thanksgiving on the 25th
    assert len(sessions_between("24x7", start, end)) == 9
    assert sessions_between("fx", start, end) == [date(2021, 11, d) for d in (22, 23, 24, 25, 26)]
    assert sessions_between("XNYS", start, end) == [date(2021, 11, d) for d in (22, 23, 24, 26)]
    ords = session_ordinals("XNYS", sessions_between("XNYS", start, end)).to_list()
    assert ords == list(range(ords[0], ords[0] + 4))
    fx_ords = session_ordinals("fx", [date(2021, 11, 19), date(2021, 11, 22)]).to_list()
    assert fx_ords[1] - fx_ords[0] == 1  # Monday follows Friday


# --------------------------------------------------------------------------------------------------
# Hourly bars, extended hours, breaks, errors


def test_xnys_hourly_bars_both_stamping_conventions() -> None:
    day = date(2021, 3, 15)  # EDT: 09:30 = 13:30 UTC
    epoch_aligned = [utc(2021, 3, 15, h) for h in range(12, 22)]  # 08:00 .. 17:00 New York
    result = assign_sessions(make_bars(epoch_aligned, "1h"), "XNYS", "1h")
    assert result.bars["ts"].to_list() == [utc(2021, 3, 15, h) for h in range(13, 20)]  # 09:00 .. 15:00
    assert result.bars.height == expected_of("XNYS", "1h", day) == 7
    open_aligned = [utc(2021, 3, 15, h, 30) for h in range(13, 20)]  # 09:30 .. 15:30
    assert assign_sessions(make_bars(open_aligned, "1h"), "XNYS", "1h").bars.height == 7


def test_include_extended_keeps_that_days_bars() -> None:
    stamps = [utc(2021, 3, 15, 8), utc(2021, 3, 15, 13, 30), utc(2021, 3, 15, 23, 59), utc(2021, 3, 14, 15)]
    dropped = assign_sessions(make_bars(stamps), "XNYS", "1m")
    assert dropped.bars.height == 1
    assert (dropped.dropped_extended, dropped.dropped_closed) == (2, 1)
    kept = assign_sessions(make_bars(stamps), "XNYS", "1m", include_extended=True)
    assert kept.bars["session_date"].to_list() == [date(2021, 3, 15)] * 3
    assert kept.bars["is_regular"].to_list() == [False, True, False]
    assert (kept.dropped_extended, kept.dropped_closed) == (0, 1)
    assert kept.counts()["n_kept"] == 3


def test_lunch_break_calendar() -> None:
    # Hong Kong: 09:30-12:00 and 13:00-16:00 local, no DST.
    assert expected_of("XHKG", "1m", date(2019, 3, 12)) == 150 + 180
    stamps = [utc(2019, 3, 12, 3, 59), utc(2019, 3, 12, 4, 30), utc(2019, 3, 12, 5, 0)]
    assert assign_sessions(make_bars(stamps), "XHKG", "1m").bars["ts"].to_list() == [stamps[0], stamps[2]]


def test_bad_inputs_raise_named_errors() -> None:
    bars = make_bars([utc(2021, 3, 15, 14)])
    with pytest.raises(ConfigError, match="calendar"):
        assign_sessions(bars, "NYSE-ish", "1m")
    with pytest.raises(ConfigError, match="interval"):
        assign_sessions(bars, "24x7", "7m")
    with pytest.raises(ConfigError, match="interval"):
        interval_minutes("1d")
    with pytest.raises(DataError, match="interval"):
        assign_sessions(bars, "24x7", "5m")  # the frame says 1m
    with pytest.raises(DataError, match="UTC"):
        assign_sessions(bars.with_columns(pl.col("ts").dt.replace_time_zone(None)), "24x7", "1m")
    with pytest.raises(ConfigError, match="start"):
        sessions_between("fx", date(2021, 1, 2), date(2021, 1, 1))
    with pytest.raises(ConfigError, match="outside calendar"):
        sessions_between("XNYS", date(1900, 1, 1), date(1900, 2, 1))
