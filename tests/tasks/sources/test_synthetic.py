"""Tests for the seeded synthetic bar generator (tasks/sources/synthetic.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import exchange_calendars as xcals
import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError
from core.schema import BAR_SCHEMA
from tasks.sources.synthetic import JUMP_SCHEMA, generate_bars, symbol_seed

START = datetime(2024, 3, 1, tzinfo=UTC)


def _arrays(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}


def test_schema_and_stamps() -> None:
    out = generate_bars("BTC-USD", START, START + timedelta(days=2), "5m", seed=3)
    bars = out.bars
    assert dict(bars.schema) == BAR_SCHEMA
    assert dict(out.jumps.schema) == JUMP_SCHEMA
    assert bars.height == 2 * 24 * 12
    assert bars["symbol"].unique().to_list() == ["BTC-USD"]
    assert bars["interval"].unique().to_list() == ["5m"]
    assert bars["source"].unique().to_list() == ["synthetic"]
    ts = bars["ts"]
    assert ts[0] == START and ts[-1] == START + timedelta(days=2, minutes=-5)
    assert (ts.diff().drop_nulls() == timedelta(minutes=5)).all()


def test_paths_start_at_the_origin_and_stay_near_start_price() -> None:
    first = generate_bars("BTC-USD", date(2000, 1, 1), date(2000, 1, 2), "1h", start_price=250.0).bars
    assert first["open"][0] == pytest.approx(250.0, rel=1e-12)
    levels = [
        generate_bars(f"S{i}", date(2000 + 4 * i, 3, 1), date(2000 + 4 * i, 3, 2), "1h").bars["close"][-1]
        for i in range(25)
    ]
    assert 20.0 < min(levels) and max(levels) < 500.0  # log level s.d. about 0.5 around log(100)
    with pytest.raises(ConfigError, match="2000-01-01"):
        generate_bars("BTC-USD", date(1999, 12, 1), date(2000, 1, 2))


@pytest.mark.parametrize(
    ("calendar", "interval"), [("24x7", "1m"), ("fx", "5m"), ("XNYS", "1m"), ("XNYS", "1h")]
)
def test_any_partition_of_a_range_gives_the_same_bars(calendar: str, interval: str) -> None:
    """The ingest flow generates month by month: the pieces must equal one call, bit for bit."""
    kw: dict[str, Any] = {"seed": 9, "calendar": calendar, "jump_intensity": 3.0}
    edges = [
        datetime(2024, 1, 30, 7, 13, tzinfo=UTC),
        datetime(2024, 2, 1, tzinfo=UTC),
        datetime(2024, 2, 1, 15, 0, tzinfo=UTC),  # mid-session for XNYS
        datetime(2024, 2, 2, 21, 30, tzinfo=UTC),  # mid FX day
        datetime(2024, 3, 1, tzinfo=UTC),
        datetime(2024, 3, 12, tzinfo=UTC),
    ]
    whole = generate_bars("SYM", edges[0], edges[-1], interval, **kw)
    parts = [generate_bars("SYM", a, b, interval, **kw) for a, b in zip(edges, edges[1:], strict=False)]
    joined = pl.concat([p.bars for p in parts])
    assert joined.height == whole.bars.height > 0
    for col, values in _arrays(whole.bars).items():
        assert values.tobytes() == _arrays(joined)[col].tobytes(), col
    assert joined["ts"].equals(whole.bars["ts"])
    assert pl.concat([p.jumps for p in parts]).equals(whole.jumps)
    assert whole.jumps.height > 0


def test_same_seed_is_bit_identical() -> None:
    kwargs = dict(seed=42, calendar="XNYS", jump_intensity=2.0, base_vol=0.2)
    a = generate_bars("SPY", date(2024, 1, 2), date(2024, 2, 1), "1m", **kwargs)  # type: ignore[arg-type]
    b = generate_bars("SPY", date(2024, 1, 2), date(2024, 2, 1), "1m", **kwargs)  # type: ignore[arg-type]
    assert a.bars.equals(b.bars)
    assert a.jumps.equals(b.jumps)
    for col, values in _arrays(a.bars).items():
        assert values.tobytes() == _arrays(b.bars)[col].tobytes(), col


def test_different_seed_or_symbol_differs() -> None:
    end = START + timedelta(days=1)
    base = generate_bars("BTC-USD", START, end, seed=1).bars["close"].to_numpy()
    other_seed = generate_bars("BTC-USD", START, end, seed=2).bars["close"].to_numpy()
    assert not np.array_equal(base, other_seed)
    closes = [generate_bars(f"SYM{i}", START, end, seed=1).bars["close"].to_numpy() for i in range(10)]
    assert len({c.tobytes() for c in closes}) == 10
    # The symbol enters through sha256, so the stream key is stable across processes.
    assert symbol_seed("SYM0", 1) == (1, int.from_bytes(__import__("hashlib").sha256(b"SYM0").digest()[:8]))


@pytest.mark.parametrize(
    ("calendar", "interval"),
    [("24x7", "1m"), ("24x7", "1h"), ("fx", "5m"), ("XNYS", "1m"), ("XNYS", "1h")],
)
def test_ohlc_consistent_and_positive(calendar: str, interval: str) -> None:
    out = generate_bars(
        "X",
        date(2024, 1, 1),
        date(2024, 3, 1),
        interval,
        seed=7,
        calendar=calendar,
        base_vol=1.5,  # stress: high volatility and frequent large jumps
        jump_intensity=20.0,
        jump_scale=0.05,
    )
    a = _arrays(out.bars)
    assert out.bars.height > 0
    for values in a.values():
        assert np.isfinite(values).all()
    assert (a["low"] > 0).all()
    assert (a["low"] <= np.minimum(a["open"], a["close"])).all()
    assert (a["high"] >= np.maximum(a["open"], a["close"])).all()
    assert (a["volume"] >= 0).all()
    # The bridge extremes are not degenerate: most bars have a range beyond open/close.
    assert (a["high"] > np.maximum(a["open"], a["close"])).mean() > 0.9


def test_open_chains_to_previous_close_without_gap() -> None:
    a = _arrays(generate_bars("BTC-USD", START, START + timedelta(days=200), "1h", seed=5).bars)
    assert np.array_equal(a["open"][1:], a["close"][:-1])


def test_session_gap_moves_the_open() -> None:
    bars = generate_bars("SPY", date(2024, 1, 2), date(2024, 1, 20), "1m", seed=5, calendar="XNYS").bars
    a = _arrays(bars)
    ts = bars["ts"].to_numpy()
    new_session = np.diff(ts) > np.timedelta64(60, "s")
    assert new_session.sum() == 12  # 13 sessions in the range
    assert not np.array_equal(a["open"][1:][new_session], a["close"][:-1][new_session])
    assert np.array_equal(a["open"][1:][~new_session], a["close"][:-1][~new_session])


def test_jumps_frame_matches_injected_returns() -> None:
    out = generate_bars(
        "BTC-USD", START, START + timedelta(days=30), "1m", seed=11, jump_intensity=3.0, jump_scale=0.01
    )
    jumps = out.jumps
    assert 40 <= jumps.height <= 140  # Poisson(90) and some bars may hold two jumps
    assert jumps["ts"].is_sorted() and jumps["ts"].n_unique() == jumps.height
    joined = jumps.join(out.bars, on="ts", how="left")
    assert joined["close"].null_count() == 0
    ret = np.log(joined["close"].to_numpy() / joined["open"].to_numpy())
    size = joined["size"].to_numpy()
    assert (np.abs(size) > 0.004).all()  # magnitudes are log-normal around jump_scale
    assert (np.sign(ret) == np.sign(size)).all()
    assert (np.abs(ret - size) < 0.5 * np.abs(size)).all()
    # Bars without a jump are far smaller: the largest |return| bars are the jump bars.
    all_ret = np.abs(np.log(out.bars["close"].to_numpy() / out.bars["open"].to_numpy()))
    top = np.sort(all_ret)[-jumps.height // 2 :]
    assert set(np.round(top, 12)) <= set(np.round(np.abs(ret), 12))


def test_no_jumps_when_intensity_zero() -> None:
    out = generate_bars("BTC-USD", START, START + timedelta(days=10), seed=1, jump_intensity=0.0)
    assert out.jumps.height == 0
    assert dict(out.jumps.schema) == JUMP_SCHEMA


def test_volatility_level_matches_base_vol() -> None:
    bars = generate_bars(
        "BTC-USD", START, START + timedelta(days=120), "5m", seed=2, base_vol=0.6, jump_intensity=0.0
    ).bars
    r = np.diff(np.log(bars["close"].to_numpy()))
    annualized = r.std() * np.sqrt(365 * 288)
    assert annualized == pytest.approx(0.6, rel=0.1)


def test_intraday_seasonality_is_u_shaped() -> None:
    bars = generate_bars(
        "SPY", date(2023, 1, 1), date(2024, 1, 1), "5m", seed=4, calendar="XNYS", jump_intensity=0.0
    ).bars
    frame = bars.with_columns(
        r2=(pl.col("close") / pl.col("open")).log() ** 2,
        hhmm=pl.col("ts").dt.convert_time_zone("America/New_York").dt.strftime("%H:%M"),
    )
    by_time = frame.group_by("hhmm").agg(pl.col("r2").mean()).sort("hhmm")
    edge = by_time.filter((pl.col("hhmm") < "10:00") | (pl.col("hhmm") >= "15:30"))["r2"].mean()
    middle = by_time.filter((pl.col("hhmm") >= "12:00") & (pl.col("hhmm") < "14:00"))["r2"].mean()
    assert isinstance(edge, float) and isinstance(middle, float)
    assert edge > 1.8 * middle  # A=2: edges have about 2-3x the mid-day variance


def test_calendar_24x7_covers_every_minute() -> None:
    bars = generate_bars("BTC-USD", date(2024, 3, 9), date(2024, 3, 11), "1m").bars
    assert bars.height == 2 * 1440
    assert bars["ts"].is_unique().all()


def test_calendar_fx_skips_the_weekend_across_dst() -> None:
    # 2024-03-10 is the US DST change: the Sunday open is 17:00 New York = 21:00 UTC (was 22:00 UTC).
    bars = generate_bars(
        "EURUSD", date(2024, 3, 1), date(2024, 3, 20), "5m", calendar="fx", base_vol=0.08
    ).bars
    local = bars["ts"].dt.convert_time_zone("America/New_York")
    wd = local.dt.weekday().to_numpy()
    minute = (local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32)).to_numpy()
    closed = ((wd == 5) & (minute >= 17 * 60)) | (wd == 6) | ((wd == 7) & (minute < 17 * 60))
    assert not closed.any()
    ts = set(bars["ts"].to_list())
    assert datetime(2024, 3, 3, 22, 0, tzinfo=UTC) in ts  # Sunday 17:00 EST
    assert datetime(2024, 3, 3, 21, 55, tzinfo=UTC) not in ts
    assert datetime(2024, 3, 10, 21, 0, tzinfo=UTC) in ts  # Sunday 17:00 EDT
    assert datetime(2024, 3, 10, 20, 55, tzinfo=UTC) not in ts
    assert datetime(2024, 3, 8, 21, 55, tzinfo=UTC) in ts  # Friday 16:55 EST, last bar
    assert datetime(2024, 3, 15, 20, 55, tzinfo=UTC) in ts  # Friday 16:55 EDT
    assert datetime(2024, 3, 15, 21, 0, tzinfo=UTC) not in ts
    # Closed: Mar 1 22:00Z-Mar 3 22:00Z (48 h), Mar 8 22:00Z-Mar 10 21:00Z (47 h, DST), Mar 15-17 (48 h).
    assert bars.height == 19 * 288 - (48 + 47 + 48) * 12


def test_calendar_xnys_matches_exchange_sessions() -> None:
    bars = generate_bars("SPY", date(2024, 6, 28), date(2024, 7, 10), "1m", calendar="XNYS").bars
    local = bars.with_columns(l=pl.col("ts").dt.convert_time_zone("America/New_York"))
    days = local.group_by(pl.col("l").dt.date().alias("d")).agg(
        n=pl.len(), first=pl.col("l").min().dt.strftime("%H:%M"), last=pl.col("l").max().dt.strftime("%H:%M")
    )
    days = days.sort("d")
    sessions = xcals.get_calendar("XNYS").sessions_in_range("2024-06-28", "2024-07-09")
    assert days["d"].to_list() == [s.date() for s in sessions]
    assert date(2024, 7, 4) not in days["d"].to_list()  # Independence Day
    early = days.filter(pl.col("d") == date(2024, 7, 3)).row(0, named=True)
    assert (early["n"], early["first"], early["last"]) == (210, "09:30", "12:59")  # 13:00 early close
    normal = days.filter(pl.col("d") != date(2024, 7, 3))
    assert normal["n"].to_list() == [390] * normal.height
    assert set(normal["first"]) == {"09:30"} and set(normal["last"]) == {"15:59"}


def test_calendar_xnys_hourly_bars_start_at_open() -> None:
    bars = generate_bars("SPY", date(2024, 7, 8), date(2024, 7, 9), "1h", calendar="XNYS").bars
    local = bars["ts"].dt.convert_time_zone("America/New_York").dt.strftime("%H:%M").to_list()
    assert local == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"interval": "2m"}, "interval"),
        ({"calendar": "XLON"}, "calendar"),
        ({"jump_intensity": -1.0}, "jump_intensity"),
        ({"base_vol": 0.0}, "base_vol"),
        ({"start_price": float("nan")}, "start_price"),
        ({"seed": -1}, "seed"),
        ({"end": date(2024, 3, 1)}, "end"),
        ({"symbol": "../etc"}, "symbol"),
    ],
)
def test_bad_parameters_raise_config_error(kwargs: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {"symbol": "BTC-USD", "start": START, "end": START + timedelta(days=1)}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=needle):
        generate_bars(**args)  # type: ignore[arg-type]
