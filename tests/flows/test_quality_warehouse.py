"""Data quality against a real DuckDB file: dq_results idempotence, gaps, missing sessions, the task.

Hand-made hourly grids test the SQL logic exactly; the real Binance BTC/USDT file (``../shared/data``,
skipped when absent) must show its known 34-hour outage from 2018-02-08 00:00 to 2018-02-09 10:00 UTC.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError
from core.schema import DQ_SCHEMA
from tasks.calendars import session_bounds
from tasks.quality import validate_bars
from tasks.quality_summary import dq_rows
from warehouse.bars import upsert_bars
from warehouse.db import connect, session
from warehouse.quality import (
    GAP_SCHEMA,
    find_gaps,
    missing_sessions,
    read_dq_results,
    write_dq_results,
)

BTC_REL = Path("btcusdt_1h_binance") / "BTC_USDT-1h_binance_2017_2024.csv"
T0 = datetime(2021, 1, 4, tzinfo=UTC)  # a Monday


@pytest.fixture()
def con(warehouse_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(warehouse_path)
    try:
        yield connection
    finally:
        connection.close()


def _grid(
    start: datetime, hours: int, symbol: str = "TEST-USD", drop: set[int] | None = None
) -> pl.DataFrame:
    """Hourly bars ``start + i h`` for i in range(hours) minus ``drop``; a seeded Gaussian random walk."""
    keep = [i for i in range(hours) if i not in (drop or set())]
    walk = 100.0 * np.exp(np.cumsum(np.random.default_rng(7).normal(0.0, 0.002, hours)))
    close = [float(walk[i]) for i in keep]
    return pl.DataFrame(
        {
            "symbol": symbol,
            "interval": "1h",
            "ts": [start + timedelta(hours=i) for i in keep],
            "open": close,
            "high": [c + 0.5 for c in close],
            "low": [c - 0.5 for c in close],
            "close": close,
            "volume": 1.0,
            "source": "test",
        }
    )


def _load_btc(shared_data: Path) -> pl.DataFrame:
    raw = pl.read_csv(shared_data / BTC_REL)
    return raw.select(
        pl.lit("BTC-USDT").alias("symbol"),
        pl.lit("1h").alias("interval"),
        pl.col("time_utc").str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC").alias("ts"),
        "open",
        "high",
        "low",
        "close",
        pl.col("volume").cast(pl.Float64),
        pl.lit("binance").alias("source"),
    )


# --------------------------------------------------------------------------------------------------
# dq_results


def test_migration_creates_dq_results(con: duckdb.DuckDBPyConnection) -> None:
    versions = [r[0] for r in con.sql("SELECT version FROM schema_version ORDER BY version").fetchall()]
    assert 3 in versions
    assert read_dq_results(con).schema == pl.Schema(DQ_SCHEMA)


def test_writing_results_twice_changes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    frame = _grid(T0, 48)
    bad = frame.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(-1.0).otherwise("low").alias("low"))
    report = validate_bars(bad, T0, T0 + timedelta(days=2))
    rows = dq_rows(report, "run-1")
    assert write_dq_results(con, rows) == len(report.outcomes)
    first = read_dq_results(con, run_id="run-1")
    assert first.height == len(report.outcomes)

    again = dq_rows(report, "run-1", created_at=datetime.now(UTC) + timedelta(hours=1))
    write_dq_results(con, again)
    second = read_dq_results(con, run_id="run-1")
    assert second.height == first.height
    assert second.equals(first)  # created_at too: an identical outcome is not rewritten

    # Duplicate keys inside one batch keep the last row; a changed outcome updates in place.
    fixed = dq_rows(validate_bars(frame, T0, T0 + timedelta(days=2)), "run-1")
    write_dq_results(con, pl.concat([rows, fixed]))
    third = read_dq_results(con, run_id="run-1")
    assert third.height == first.height
    assert third.filter(~pl.col("success")).height == 0
    assert read_dq_results(con, run_id="run-2").height == 0

    failed = read_dq_results(con, suite="bars", failed_only=True)
    assert failed.height == 0
    details = json.loads(
        first.filter(pl.col("expectation") == "price_positive", pl.col("column_name") == "low")["details"][0]
    )
    assert details["examples"][0]["value"] == -1.0


def test_bad_dq_rows_are_rejected(con: duckdb.DuckDBPyConnection) -> None:
    rows = dq_rows(validate_bars(_grid(T0, 24), T0, T0 + timedelta(days=1)), "run-1")
    with pytest.raises(ConfigError, match="severity"):
        write_dq_results(con, rows.with_columns(pl.lit("fatal").alias("severity")))
    with pytest.raises(ConfigError, match="lack columns"):
        write_dq_results(con, rows.drop("details"))
    assert read_dq_results(con).height == 0


# --------------------------------------------------------------------------------------------------
# Gaps


def test_find_gaps_finds_an_inserted_gap(con: duckdb.DuckDBPyConnection) -> None:
    upsert_bars(con, _grid(T0, 72, drop={10, 11, 12, 13, 14, 40}), "run-1")
    gaps = find_gaps(con, "TEST-USD", "1h")
    assert gaps.schema == pl.Schema(GAP_SCHEMA)
    assert gaps.rows() == [
        ("TEST-USD", "1h", T0 + timedelta(hours=9), T0 + timedelta(hours=15), timedelta(hours=6), 5),
        ("TEST-USD", "1h", T0 + timedelta(hours=39), T0 + timedelta(hours=41), timedelta(hours=2), 1),
    ]
    # factor: only gaps longer than 3 bars; the window limits which bars are compared.
    assert find_gaps(con, "TEST-USD", "1h", factor=3.0).height == 1
    assert find_gaps(con, "TEST-USD", "1h", T0 + timedelta(hours=20), T0 + timedelta(hours=72)).height == 1
    assert find_gaps(con, "OTHER", "1h").height == 0
    with pytest.raises(ConfigError, match="interval"):
        find_gaps(con, "TEST-USD", "2h")
    with pytest.raises(ConfigError, match="symbol"):
        find_gaps(con, "x'; DROP TABLE bars; --", "1h")


def test_real_binance_outage_is_found(con: duckdb.DuckDBPyConnection, shared_data: Path) -> None:
    upsert_bars(con, _load_btc(shared_data), "run-1")
    gaps = find_gaps(con, "BTC-USDT", "1h")
    assert gaps.height == 28  # the MANIFEST's count of exchange outages
    longest = gaps.sort("length", descending=True).row(0, named=True)
    assert longest["gap_start"] == datetime(2018, 2, 8, 0, tzinfo=UTC)
    assert longest["gap_end"] == datetime(2018, 2, 9, 10, tzinfo=UTC)
    assert longest["length"] == timedelta(hours=34)
    assert longest["missing_bars"] == 33


# --------------------------------------------------------------------------------------------------
# Missing sessions


def test_missing_utc_day_sessions(con: duckdb.DuckDBPyConnection) -> None:
    day3 = set(range(48, 72))
    upsert_bars(con, _grid(T0, 24 * 5, drop=day3), "run-1")
    sessions = [T0.date() + timedelta(days=i) for i in range(7)]
    missing = missing_sessions(con, "TEST-USD", "1h", sessions)
    assert missing["session_date"].to_list() == [date(2021, 1, 6), date(2021, 1, 9), date(2021, 1, 10)]
    assert missing_sessions(con, "TEST-USD", "1h", []).height == 0


def test_missing_sessions_with_windows(con: duckdb.DuckDBPyConnection) -> None:
    """FX sessions roll at 17:00 New York: a bar on Sunday 22:00 UTC belongs to Monday's session."""
    sunday_evening = datetime(2021, 1, 3, 22, tzinfo=UTC)  # 17:00 New York (EST)
    bars = pl.concat(
        [
            _grid(sunday_evening, 1),  # Monday 2021-01-04 session, and nothing else that day
            _grid(datetime(2021, 1, 5, 12, tzinfo=UTC), 2),  # Tuesday
            _grid(datetime(2021, 1, 7, 12, tzinfo=UTC), 2),  # Thursday
        ]
    )
    upsert_bars(con, bars, "run-1")
    sessions = [date(2021, 1, 4) + timedelta(days=i) for i in range(5)]  # Mon..Fri
    windows = session_bounds("fx", sessions).select(
        "session_date", pl.col("open").alias("open_utc"), pl.col("close").alias("close_utc")
    )
    missing = missing_sessions(con, "TEST-USD", "1h", sessions, windows)
    assert missing["session_date"].to_list() == [date(2021, 1, 6), date(2021, 1, 8)]
    # By UTC day, 2021-01-04 itself would have no bars: the windows matter.
    by_day = missing_sessions(con, "TEST-USD", "1h", sessions)
    assert date(2021, 1, 4) in by_day["session_date"].to_list()
    with pytest.raises(ConfigError, match="no window"):
        missing_sessions(con, "TEST-USD", "1h", [*sessions, date(2021, 1, 11)], windows)


def test_missing_sessions_window_includes_bar_overlapping_the_open(con: duckdb.DuckDBPyConnection) -> None:
    """The hourly equity bar stamped 09:00 New York carries 09:30-10:00: it counts for the session."""
    upsert_bars(con, _grid(datetime(2021, 1, 4, 14, tzinfo=UTC), 1), "run-1")  # 09:00 EST
    windows = pl.DataFrame(
        {
            "session_date": [date(2021, 1, 4)],
            "open_utc": [datetime(2021, 1, 4, 14, 30, tzinfo=UTC)],
            "close_utc": [datetime(2021, 1, 4, 21, tzinfo=UTC)],
        }
    )
    assert missing_sessions(con, "TEST-USD", "1h", [date(2021, 1, 4)], windows).height == 0


# --------------------------------------------------------------------------------------------------
# The Prefect entry points, end to end


@pytest.mark.usefixtures("prefect_harness")
def test_check_bars_partition_task(tmp_path: Path, shared_data: Path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.steps.quality import check_bars_partition, check_features_partition
    from warehouse.catalog import Instrument, upsert_instrument

    wh = tmp_path / "task.duckdb"
    btc = _load_btc(shared_data).filter(pl.col("ts") < datetime(2018, 3, 1, tzinfo=UTC))
    with session(wh) as con:
        upsert_bars(con, btc, "ingest-1")
        upsert_instrument(con, Instrument("BTC-USDT", "crypto", "24x7"))

    @flow
    def dq_flow() -> dict:
        return check_bars_partition(
            str(wh), "BTC-USDT", "1h", "2018-02-01", "2018-03-01", data_version="v-test", run_id="dq-run-1"
        )

    result = dq_flow()
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert result["passed"] is True and result["n_errors"] == 0
    assert result["partition"] == "BTC-USDT/1h/2018-02-01..2018-03-01"
    assert result["n_missing_sessions"] == 0
    gap = next(w for w in result["warnings"] if w["check"] == "bar_gaps")
    assert gap["examples"][0]["hours"] == 34.0
    assert result["artifact_key"] == "dq-bars-btc-usdt-1h"
    with session(wh, read_only=True) as con:
        stored = read_dq_results(con, run_id="dq-run-1")
    assert stored.height == result["n_checks"]
    assert set(stored["expectation"]) >= {"bar_gaps", "missing_sessions", "high_ge_low"}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["dq-bars-btc-usdt-1h"]))
        )
    assert artifacts and artifacts[0].type == "table"

    # The features entry point reads through warehouse.features.
    from tasks.features import build_daily_features
    from warehouse.features import write_features

    feats = build_daily_features(btc, "24x7", "1h").filter(pl.col("session_date") >= date(2018, 1, 1))
    with session(wh) as con:
        write_features(con, feats, "BTC-USDT", date(2018, 1, 1), date(2018, 2, 28))

    @flow
    def features_dq_flow() -> dict:
        return check_features_partition(
            str(wh), "BTC-USDT", "2018-01-01", "2018-03-01", data_version="v-test", run_id="dq-run-1"
        )

    out = features_dq_flow()
    assert out["passed"] is True and out["row_count"] == 59
    assert [w["check"] for w in out["warnings"]] == ["coverage_low"]  # 2018-02-08: 1 of 24 bars
