"""Economic events: value parsing, the three loaders, surprise z-scores and per-session event features."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from repo_paths import REPO

from core.errors import ConfigError, DataError
from tasks.calendars import session_bounds, sessions_between
from tasks.events import (
    EVENTS_SCHEMA,
    combine_events,
    event_features,
    load_event_calendar,
    parse_value,
    read_events_csv,
    read_fomc_dates,
    read_forexfactory_csv,
    surprise_zscores,
)

FOMC_FILE = REPO / "data" / "events" / "fomc_decision_dates_2015_2026.csv"
FF_REL = Path("econ_calendar") / "forexfactory_calendar_2019-11_2020-10.csv"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ values
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2509K", 2_509_000.0),
        ("-20500K", -20_500_000.0),
        ("-0.2%", -0.2),
        ("0.0%", 0.0),
        ("1.5M", 1_500_000.0),
        ("<0.25%", 0.25),
        (">1.5%", 1.5),
        ("1,234", 1234.0),
        ("+3.1", 3.1),
        ("-1.2B", -1.2e9),
        ("  52.3 ", 52.3),
        ("2.5k", 2500.0),
        (".5%", 0.5),
    ],
)
def test_parse_value(text: str, value: float) -> None:
    assert parse_value(text) == pytest.approx(value)


@pytest.mark.parametrize("text", [None, "", "   "])
def test_parse_value_empty_is_none(text: str | None) -> None:
    assert parse_value(text) is None


@pytest.mark.parametrize("text", ["0.14|1.2", "abc", "%", "1.2.3", "K", "12Q", "--1", "1e400"])
def test_parse_value_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError, match="cannot parse|not finite"):
        parse_value(text)


# ------------------------------------------------------------------------------------------ user CSV
def write(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_user_csv_normalizes_times_types_and_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "date,time,type,actual,forecast,previous,currency\n"
        "2020-01-14,08:30,cpi,0.2%,0.2%,0.3%,usd\n"  # EST: 13:30 UTC
        "2020-03-11,08:30,CPI,0.1%,0.0%,0.1%,USD\n"  # EDT (DST began 2020-03-08): 12:30 UTC
        "2020-06-05,08:30,NFP,2509K,-7750K,-20687K,USD\n"
        "2020-06-10,14:00,FOMC,<0.25%,<0.25%,,USD\n",
    )
    ev = read_events_csv(path)
    assert ev.schema == pl.Schema(EVENTS_SCHEMA)
    assert ev["event_ts"].to_list() == [
        utc(2020, 1, 14, 13, 30),
        utc(2020, 3, 11, 12, 30),
        utc(2020, 6, 5, 12, 30),
        utc(2020, 6, 10, 18, 0),
    ]
    assert ev["type"].to_list() == ["CPI", "CPI", "NFP", "FOMC"]
    assert ev["currency"].to_list() == ["USD"] * 4
    assert ev["scheduled"].all()
    assert ev["date"].to_list() == [date(2020, 1, 14), date(2020, 3, 11), date(2020, 6, 5), date(2020, 6, 10)]
    nfp = ev.row(2, named=True)
    assert nfp["actual"] == 2_509_000 and nfp["forecast"] == -7_750_000 and nfp["surprise"] == 10_259_000
    assert ev["previous"][3] is None
    assert ev["source"].to_list() == ["events.csv"] * 4


def test_user_csv_time_zone_and_optional_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "date,time,type,actual,forecast,scheduled,name\n2020-03-15,21:00:00,FOMC,0.25,,0,Emergency cut\n",
    )
    ev = read_events_csv(path, tz="UTC")
    row = ev.row(0, named=True)
    assert row["event_ts"] == utc(2020, 3, 15, 21) and row["date"] == date(2020, 3, 15)
    assert row["scheduled"] is False and row["name"] == "Emergency cut"
    assert row["forecast"] is None and row["surprise"] is None and row["currency"] == "USD"


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        ("2020-01-14,08:30,CPI,0.2%,0.2%\n2020-02-13,8h30,CPI,0.1%,0.2%\n", ":3", "'time'"),
        ("2020-01-14,08:30,CPI,0.2%,0.2%\n2020-02-13,08:30,CPI,0.1|2,0.2%\n", ":3", "'actual'"),
        ("2020-01-14,08:30,CPI,0.2%,0.2%\n2020-02-30,08:30,CPI,0.1%,0.2%\n", ":3", "'date'"),
        ("14/01/2020,08:30,CPI,0.2%,0.2%\n", ":2", "'date'"),
        ("2020-01-14,08:30,CPI,0.2%,0.2%,extra\n", ":2", "expected 5 fields"),
        ("2020-01-14,08:30,,0.2%,0.2%\n", ":2", "'type'"),
        ("2020-03-08,02:30,CPI,0.2%,0.2%\n", ":2", "DST gap"),
        ("2020-01-14,25:00,CPI,0.2%,0.2%\n", ":2", "invalid time"),
    ],
)
def test_user_csv_bad_row_names_file_and_line(tmp_path: Path, body: str, where: str, what: str) -> None:
    path = write(tmp_path, "date,time,type,actual,forecast\n" + body)
    with pytest.raises(DataError) as err:
        read_events_csv(path)
    assert f"{path}{where}" in str(err.value) and what in str(err.value)


def test_user_csv_missing_column_empty_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r":1: missing column\(s\) \['forecast'\]"):
        read_events_csv(write(tmp_path, "date,time,type,actual\n2020-01-14,08:30,CPI,0.2%\n"))
    with pytest.raises(DataError, match="header but no rows"):
        read_events_csv(write(tmp_path, "date,time,type,actual,forecast\n", "h.csv"))
    with pytest.raises(DataError, match="empty"):
        read_events_csv(write(tmp_path, "", "e.csv"))
    with pytest.raises(DataError, match="not found"):
        read_events_csv(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="unknown time zone"):
        good = write(tmp_path, "date,time,type,actual,forecast\n2020-01-14,08:30,CPI,1,1\n")
        read_events_csv(good, tz="Mars/Base")


# ------------------------------------------------------------------------------------------ surprise z
def events_frame(ts: list[datetime], surprises: list[float | None], kind: str = "NFP") -> pl.DataFrame:
    n = len(ts)
    frame = pl.DataFrame(
        {
            "event_ts": ts,
            "date": [t.date() for t in ts],
            "type": [kind] * n,
            "name": [f"{kind} {i}" for i in range(n)],
            "currency": ["USD"] * n,
            "scheduled": [True] * n,
            "actual": surprises,
            "forecast": [0.0] * n,
            "previous": [None] * n,
            "surprise": [None] * n,
            "surprise_z": [None] * n,
            "source": ["test"] * n,
        },
        schema=EVENTS_SCHEMA,
    )
    return frame


def test_surprise_z_uses_past_surprises_only() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(0, 2, 30).tolist()
    ts = [utc(2020, 1, 1 + i, 13, 30) for i in range(30)]
    z = surprise_zscores(events_frame(ts, s), min_count=5)["surprise_z"].to_list()
    assert z[:5] == [None] * 5  # fewer than min_count earlier surprises
    for i in range(5, 30):
        assert z[i] == pytest.approx(s[i] / np.std(s[:i], ddof=1), rel=1e-12)
    # Replacing every later surprise changes nothing at or before event 14.
    s2 = s[:15] + (np.array(s[15:]) * 1e6 + 7).tolist()
    z2 = surprise_zscores(events_frame(ts, s2), min_count=5)["surprise_z"].to_list()
    assert z2[:15] == z[:15]
    assert z2[20] != z[20]


def test_surprise_z_same_instant_and_nulls_and_types() -> None:
    ts = [utc(2020, 1, d, 13, 30) for d in (1, 2, 3, 4, 4, 5)]
    s: list[float | None] = [1.0, -1.0, None, 2.0, 100.0, 3.0]
    z = surprise_zscores(events_frame(ts, s), min_count=2)["surprise_z"].to_list()
    sd = np.std([1.0, -1.0], ddof=1)
    # event 2 has no surprise; the two at one instant see only [1, -1], not each other
    assert z[2] is None and z[3] == pytest.approx(2.0 / sd) and z[4] == pytest.approx(100.0 / sd)
    assert z[5] == pytest.approx(3.0 / np.std([1.0, -1.0, 2.0, 100.0], ddof=1))
    # another type's surprises never enter
    other = events_frame([utc(2019, 12, d, 13, 30) for d in (1, 2, 3)], [50.0, -70.0, 9.0], "CPI")
    mixed = surprise_zscores(pl.concat([other, events_frame(ts, s)]), min_count=2)
    assert mixed.filter(pl.col("type") == "NFP")["surprise_z"].to_list() == z
    # zero spread of past surprises: undefined
    flat = surprise_zscores(events_frame(ts[:4], [0.0, 0.0, 0.0, 1.0]), min_count=2)
    assert flat["surprise_z"].to_list() == [None, None, None, None]
    with pytest.raises(ConfigError, match="min_count"):
        surprise_zscores(events_frame(ts, s), min_count=1)


# ------------------------------------------------------------------------------------------ real files
def test_shipped_fomc_dates_load() -> None:
    ev = read_fomc_dates(FOMC_FILE)
    assert ev.height == 97
    assert ev.schema == pl.Schema(EVENTS_SCHEMA)
    assert (ev["type"] == "FOMC").all() and ev["date"].is_unique().all()
    assert ev["date"].min() == date(2015, 1, 28) and ev["date"].max() == date(2026, 12, 9)
    emergency = ev.filter(~pl.col("scheduled"))
    assert emergency["date"].to_list() == [date(2020, 3, 3), date(2020, 3, 15)]
    assert emergency["event_ts"].to_list() == [utc(2020, 3, 3, 15), utc(2020, 3, 15, 21)]  # 10:00, 17:00 ET
    # scheduled decisions at 14:00 New York, in summer and winter
    assert ev.filter(pl.col("date") == date(2020, 1, 29))["event_ts"].item() == utc(2020, 1, 29, 19)
    assert ev.filter(pl.col("date") == date(2020, 6, 10))["event_ts"].item() == utc(2020, 6, 10, 18)
    sep = ev.filter(pl.col("name").str.ends_with("(SEP)"))
    assert sep.height == 47 and date(2020, 6, 10) in sep["date"].to_list()
    assert ev["surprise"].null_count() == 97 and ev["scheduled"].sum() == 95


def test_fomc_file_bad_row(tmp_path: Path) -> None:
    path = write(
        tmp_path, "date,announce_time_et,scheduled,sep\n2015-01-28,14:00,1,0\n2015-03-18,14:00,yes?,1\n"
    )
    with pytest.raises(DataError, match=r":3: column 'scheduled'"):
        read_fomc_dates(path)


def test_forexfactory_maps_nfp_cpi_fomc(shared_data: Path) -> None:
    path = shared_data / FF_REL
    if not path.exists():
        pytest.skip(f"{path} is absent")
    ev = read_forexfactory_csv(path)
    counts = dict(ev.group_by("type").len().iter_rows())
    assert counts == {"NFP": 11, "CPI": 22, "FOMC": 16}
    assert set(ev["currency"].to_list()) == {"USD"}
    assert "ADP Non-Farm Employment Change" not in ev["name"].to_list()  # not NFP
    nfp = ev.filter((pl.col("type") == "NFP") & (pl.col("date") == date(2020, 6, 5))).row(0, named=True)
    assert nfp["event_ts"] == utc(2020, 6, 5, 12, 30)
    assert (nfp["actual"], nfp["forecast"]) == (2_509_000.0, -7_750_000.0)
    assert nfp["surprise_z"] is not None and nfp["surprise_z"] > 5  # the largest beat of the sample
    fomc = ev.filter(pl.col("type") == "FOMC")
    unscheduled = fomc.filter(~pl.col("scheduled"))["date"].unique().sort().to_list()
    assert unscheduled == [date(2020, 3, 3), date(2020, 3, 15)]
    rate = fomc.filter((pl.col("name") == "Federal Funds Rate") & (pl.col("date") == date(2020, 3, 15)))
    assert rate["actual"].item() == 0.25 and rate["forecast"].item() is None
    # first z of each type only after min_count earlier surprises
    for kind, first_z in (("NFP", 5), ("CPI", 6)):
        zs = ev.filter(pl.col("type") == kind)["surprise_z"].to_list()
        assert all(z is None for z in zs[:first_z]) and zs[first_z] is not None
    # configurable mapping and currencies
    adp = read_forexfactory_csv(path, mapping={"ADP Non-Farm Employment Change": "adp"})
    assert adp.height == 11 and set(adp["type"].to_list()) == {"ADP"}
    cpi_all = read_forexfactory_csv(path, mapping={"CPI m/m": "CPI"}, currencies=None)
    assert {"USD", "CAD"} <= set(cpi_all["currency"].to_list())
    with pytest.raises(ConfigError, match="mapping is empty"):
        read_forexfactory_csv(path, mapping={})


def test_forexfactory_bad_value_names_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "event_dt,currency,impact,event,actual,forecast,previous,event_id,scrape_timestamp\n"
        "2019-12-06 13:30:00+00:00,USD,High,Non-Farm Employment Change,266K,181K,156K,1,x\n"
        "2020-01-10 13:30:00+00:00,USD,High,Non-Farm Employment Change,14?5K,162K,256K,2,x\n"
        "2020-01-10 13:30:00+00:00,USD,High,German 30-y Bond Auction,0.14|1.2,,,3,x\n",
    )
    with pytest.raises(DataError, match=r":3: column 'actual'"):
        read_forexfactory_csv(path)


def test_combine_events_dedupes_and_recomputes(tmp_path: Path) -> None:
    fomc = read_fomc_dates(FOMC_FILE)
    both = combine_events(fomc, fomc)
    assert both.height == 97
    assert combine_events().height == 0


# ------------------------------------------------------------------------------------------ features
def sessions(calendar: str, start: date, end: date, symbol: str = "X") -> pl.DataFrame:
    days = sessions_between(calendar, start, end)
    bounds = session_bounds(calendar, days)
    return pl.DataFrame(
        {"symbol": [symbol] * len(days), "session_date": days, "session_end": bounds["close"]}
    )


def test_event_features_xnys_flags_and_visibility(tmp_path: Path) -> None:
    fomc = read_fomc_dates(FOMC_FILE)
    user = read_events_csv(
        write(
            tmp_path,
            "date,time,type,actual,forecast\n"
            + "".join(f"2019-{m:02d}-05,08:30,NFP,{100 + 10 * m}K,100K\n" for m in range(1, 13))
            + "2020-01-10,08:30,NFP,145K,162K\n2020-01-14,08:30,CPI,0.2%,0.2%\n",
        ),
        min_count=3,
    )
    ev = combine_events(fomc, user, min_count=3)
    origins = sessions("XNYS", date(2020, 1, 8), date(2020, 3, 4))
    feats = event_features(origins, ev, "XNYS")
    by = {r["session_date"]: r for r in feats.iter_rows(named=True)}
    # scheduled FOMC 2020-01-29 14:00 ET: flag on the origin whose TARGET is that day
    assert by[date(2020, 1, 28)]["target"] == date(2020, 1, 29) and by[date(2020, 1, 28)]["sched_fomc"] == 1
    assert by[date(2020, 1, 29)]["sched_fomc"] == 0
    assert sum(r["sched_fomc"] for r in by.values()) == 1  # the 2020-03-03 emergency meeting is not flagged
    assert by[date(2020, 3, 2)]["target"] == date(2020, 3, 3) and by[date(2020, 3, 2)]["sched_fomc"] == 0
    # NFP 2020-01-10 08:30 ET is pre-market: it belongs to that day's session (target of 01-09)
    assert by[date(2020, 1, 9)]["sched_nfp"] == 1 and by[date(2020, 1, 10)]["sched_nfp"] == 0
    # weekend between: Friday's origin targets Monday
    assert by[date(2020, 1, 10)]["target"] == date(2020, 1, 13)
    assert by[date(2020, 1, 13)]["sched_cpi"] == 1
    # surprise z: visible only from the origin whose session_end is after the release
    nfp_z = ev.filter((pl.col("type") == "NFP") & (pl.col("date") == date(2020, 1, 10)))["surprise_z"].item()
    dec_z = ev.filter((pl.col("type") == "NFP") & (pl.col("date") == date(2019, 12, 5)))["surprise_z"].item()
    assert by[date(2020, 1, 9)]["z_nfp"] == pytest.approx(dec_z)
    assert by[date(2020, 1, 10)]["z_nfp"] == pytest.approx(nfp_z)
    assert by[date(2020, 1, 10)]["z_age_nfp"] == pytest.approx((21 - 13.5) / 24)  # 08:30 ET -> 16:00 ET
    assert by[date(2020, 1, 8)]["z_cpi"] is None  # no CPI z yet (min_count)
    # coverage: FOMC known 2015-2026; CPI only at its single release
    assert all(r["known_fomc"] for r in by.values())
    assert by[date(2020, 1, 13)]["known_cpi"] and not by[date(2020, 1, 14)]["known_cpi"]
    assert feats.columns[:3] == ["symbol", "session_date", "target"]


def test_event_features_ignore_future_values_and_unscheduled_events() -> None:
    fomc = read_fomc_dates(FOMC_FILE)
    origins = sessions("24x7", date(2020, 1, 27), date(2020, 1, 30))
    clean = event_features(origins, fomc, "24x7")
    # 19:00 UTC FOMC on 2020-01-29: target of the 01-28 UTC-day origin
    assert clean["sched_fomc"].to_list() == [0, 1, 0, 0]
    # after the last origin: values garbled, an unscheduled event added: nothing changes
    junk = fomc.with_columns(
        pl.when(pl.col("event_ts") > utc(2020, 1, 31))
        .then(pl.lit(1e12))
        .otherwise(pl.col("surprise_z"))
        .alias("surprise_z")
    )
    extra = fomc.head(1).with_columns(
        pl.lit(utc(2020, 1, 31, 1)).alias("event_ts"), pl.lit(False).alias("scheduled")
    )
    assert event_features(origins, pl.concat([junk, extra]), "24x7").equals(clean)
    # but moving a scheduled decision INTO a target session does change its flag (the check can fail)
    moved = pl.concat([fomc, fomc.head(1).with_columns(pl.lit(utc(2020, 1, 31, 19)).alias("event_ts"))])
    assert event_features(origins, moved, "24x7")["sched_fomc"].to_list() == [0, 1, 0, 1]


def test_event_features_errors() -> None:
    fomc = read_fomc_dates(FOMC_FILE)
    good = sessions("XNYS", date(2020, 1, 6), date(2020, 1, 10))
    with pytest.raises(DataError, match="not sessions"):
        event_features(good.with_columns(pl.lit(date(2020, 1, 11)).alias("session_date")), fomc, "XNYS")
    with pytest.raises(DataError, match="session_end"):
        event_features(good.drop("session_end"), fomc, "XNYS")
    with pytest.raises(DataError, match="lacks columns"):
        event_features(good, fomc.drop("surprise_z"), "XNYS")
    with pytest.raises(ConfigError, match="horizon"):
        event_features(good, fomc, "XNYS", horizon=0)
    h2 = event_features(good, fomc, "XNYS", horizon=2)
    assert h2["target"].to_list()[0] == date(2020, 1, 8)


def test_load_event_calendar_combines_sources(tmp_path: Path) -> None:
    user = write(tmp_path, "date,time,type,actual,forecast\n2020-01-14,08:30,CPI,0.2%,0.1%\n")
    both = load_event_calendar(csv_paths=[user])
    assert both.height == 98 and both["event_ts"].is_sorted()
    assert set(both["source"].to_list()) == {FOMC_FILE.name, "events.csv"}
    only_user = load_event_calendar(fomc=None, csv_paths=[user])
    assert only_user.height == 1 and only_user["surprise"].item() == pytest.approx(0.1)
