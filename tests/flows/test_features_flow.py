"""features_flow on real BTC/USDT hourly bars: caching on bar content, the quality gate, idempotence."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from repo_paths import REPO

from flows.features_flow import features_flow
from flows.steps.ingest import default_instrument
from tasks.sources.files import read_bars_file
from warehouse.bars import upsert_bars
from warehouse.catalog import upsert_instrument
from warehouse.db import session

SAMPLES = REPO / "data" / "samples"

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def btc_warehouse(tmp_path: Path) -> Path:
    bars = read_bars_file(SAMPLES / "BTC_USDT-1h_binance_2017_2024.csv", symbol="BTC-USDT").bars
    bars = bars.filter(
        pl.col("ts").is_between(datetime(2018, 11, 1, tzinfo=UTC), datetime(2019, 4, 2, tzinfo=UTC))
    )
    path = tmp_path / "wh.duckdb"
    with session(path) as con:
        upsert_instrument(con, default_instrument("BTC-USDT"))
        upsert_bars(con, bars, "seed")
    return path


def _status(result: dict, month: str) -> str:
    return next(r["status"] for r in result["partitions"] if r["start"].startswith(month))


def _run(path: Path) -> dict:
    return features_flow(["BTC-USDT"], start=date(2019, 1, 1), end=date(2019, 4, 1), warehouse=str(path))


def test_features_are_cached_on_the_bars_they_read(btc_warehouse: Path) -> None:
    first = _run(btc_warehouse)
    assert [_status(first, m) for m in ("2019-01", "2019-02", "2019-03")] == ["success"] * 3
    with session(btc_warehouse, read_only=True) as con:
        stored = con.sql(
            "SELECT count(*), min(session_date), max(session_date) FROM features_daily"
        ).fetchall()[0]
    assert stored == (90, date(2019, 1, 1), date(2019, 3, 31))

    second = _run(btc_warehouse)
    assert {r["status"] for r in second["partitions"]} == {"cached"}

    # Change one February bar: February and March (whose 40-day lookback reaches into February)
    # are recomputed; January is not.
    with session(btc_warehouse) as con:
        row = con.sql(
            "SELECT * EXCLUDE (ingest_run) FROM bars WHERE ts = TIMESTAMPTZ '2019-02-10 12:00:00+00'"
        ).pl()
        changed = row.with_columns(
            (pl.col("close") * 1.01).alias("close"), (pl.col("high") * 1.02).alias("high")
        )
        assert upsert_bars(con, changed, "edit").updated == 1
    third = _run(btc_warehouse)
    assert [_status(third, m) for m in ("2019-01", "2019-02", "2019-03")] == ["cached", "success", "success"]
    with session(btc_warehouse, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM features_daily").fetchall()[0][0] == 90


def test_an_error_level_quality_failure_keeps_that_month_out_of_features(btc_warehouse: Path) -> None:
    with session(btc_warehouse) as con:
        bad = con.sql(
            "SELECT * EXCLUDE (ingest_run) FROM bars WHERE ts = TIMESTAMPTZ '2019-03-05 00:00:00+00'"
        ).pl()
        bad = bad.with_columns((pl.col("low") * 0.5).alias("high"))  # high < low
        upsert_bars(con, bad, "corrupt")
    result = _run(btc_warehouse)
    assert _status(result, "2019-03") == "blocked"
    blocked = next(r for r in result["failed"] if r["start"].startswith("2019-03"))
    assert "error-level data-quality checks failed" in blocked["error"]
    assert [_status(result, m) for m in ("2019-01", "2019-02")] == ["success", "success"]
    with session(btc_warehouse, read_only=True) as con:
        months = {r[0] for r in con.sql("SELECT DISTINCT month(session_date) FROM features_daily").fetchall()}
        failures = con.sql(
            "SELECT count(*) FROM dq_results WHERE NOT success AND severity = 'error'"
        ).fetchall()[0][0]
    assert months == {1, 2}
    assert failures >= 1


# ------------------------------------------------------------------------ one interval per history
# Issue 14: `volrisk features SPY --interval SPY=1m` (a README line) deleted SPY's February 2011
# sessions (no minute bars that month) and swapped January and March to minute-based RV.


@pytest.fixture
def spy_warehouse(tmp_path: Path) -> Path:
    """SPY's real hourly bars (Dec 2010 - Apr 2011) and its real minute bars (Jan and Mar 2011 only)."""
    hourly = read_bars_file(SAMPLES / "spy_hour_1998_2021.csv", symbol="SPY", fmt="lean_equity").bars
    hourly = hourly.filter(
        pl.col("ts").is_between(datetime(2010, 11, 15, tzinfo=UTC), datetime(2011, 4, 2, tzinfo=UTC))
    )
    path = tmp_path / "wh.duckdb"
    with session(path) as con:
        upsert_instrument(con, default_instrument("SPY"))
        upsert_bars(con, hourly, "seed")
        for month in ("01", "03"):
            minute = read_bars_file(
                SAMPLES / f"nt-spy-minute-2011-{month}.csv", symbol="SPY", fmt="ninjatrader"
            )
            upsert_bars(con, minute.bars, "seed")
    return path


def _sessions(path: Path) -> dict[tuple[str, str | None], int]:
    with session(path, read_only=True) as con:
        rows = con.sql(
            "SELECT strftime(session_date, '%Y-%m'), \"interval\", count(*) FROM features_daily "
            "WHERE symbol = 'SPY' GROUP BY ALL ORDER BY 1"
        ).fetchall()
    return {(m, iv): n for m, iv, n in rows}


def test_a_minute_rebuild_never_deletes_or_silently_swaps_hourly_sessions(spy_warehouse: Path) -> None:
    from core.errors import ConfigError

    hourly_only = {
        "SPY": "1h"
    }  # (the full sample's default: its 23 years of hourly bars outnumber the minutes)
    features_flow(
        ["SPY"],
        start=date(2011, 1, 1),
        end=date(2011, 4, 1),
        intervals=hourly_only,
        warehouse=str(spy_warehouse),
    )
    hourly = _sessions(spy_warehouse)
    assert hourly == {("2011-01", "1h"): 20, ("2011-02", "1h"): 19, ("2011-03", "1h"): 23}

    with pytest.raises(
        ConfigError, match=r"built from other data \(62 sessions .* from 1h bars\).*--replace"
    ):
        features_flow(["SPY"], intervals={"SPY": "1m"}, warehouse=str(spy_warehouse))
    assert _sessions(spy_warehouse) == hourly  # refused: nothing changed

    features_flow(["SPY"], intervals={"SPY": "1m"}, warehouse=str(spy_warehouse), replace_interval=True)
    after = _sessions(spy_warehouse)
    # February has no minute bars: its 19 hourly sessions stay (they were deleted before the fix).
    assert after == {("2011-01", "1m"): 20, ("2011-02", "1h"): 19, ("2011-03", "1m"): 23}

    # And back: the hourly months were built before (a cache hit would write nothing), so the switch
    # back must rebuild them, or January and March would silently stay minute-based.
    back = features_flow(
        ["SPY"], start=date(2011, 1, 1), end=date(2011, 4, 1), intervals=hourly_only,
        warehouse=str(spy_warehouse), replace_interval=True,
    )  # fmt: skip
    assert {r["status"] for r in back["partitions"]} == {"success"}
    assert _sessions(spy_warehouse) == hourly


def test_adding_minute_bars_does_not_switch_a_symbol_s_default_interval(spy_warehouse: Path) -> None:
    """A README flow: features from hourly bars, then minute bars ingested; the default stays hourly."""
    features_flow(["SPY"], intervals={"SPY": "1h"}, start=date(2011, 1, 1), end=date(2011, 2, 1),
                  warehouse=str(spy_warehouse))  # fmt: skip
    again = features_flow(["SPY"], start=date(2011, 1, 1), end=date(2011, 2, 1), warehouse=str(spy_warehouse))
    assert {r["interval"] for r in again["partitions"]} == {"1h"}  # was 1m (the interval with most bars)


def test_a_symbol_with_only_daily_bars_is_told_why_it_gets_no_features() -> None:
    from core.errors import ConfigError
    from flows.preflight import chosen_interval

    daily = [("1d", 5031, date(1999, 1, 4), date(2018, 12, 31))]
    with pytest.raises(
        ConfigError, match=r"GSPC: only daily \(1d\) bars are stored.*volrisk ingest realized"
    ):
        chosen_interval("GSPC", daily, None)
    hourly = [("1h", 10, date(2011, 1, 3), date(2011, 1, 4)), *daily]
    with pytest.raises(ConfigError, match=r"no intraday bars at interval '1m' \(stored: \['1h'\]\)"):
        chosen_interval("SPY", hourly, {"SPY": "1m"})
    assert chosen_interval("SPY", hourly, None)[0] == "1h"
