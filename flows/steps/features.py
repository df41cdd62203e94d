"""Door of the features stage: the Prefect tasks that build and store daily and cross-asset features."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.orchestration import TASK_DEFAULTS
from tasks.features import build_daily_features, cross_asset_features, partition_read_window
from tasks.realized_features import REALIZED_INTERVAL, realized_daily_features
from warehouse.bars import read_bars
from warehouse.features import read_features, write_cross_asset, write_features
from warehouse.realized import read_realized
from warehouse.resource import Warehouse

_FEATURE_TASK = {**TASK_DEFAULTS, "cache_policy": TASK_DEFAULTS["cache_policy"] - "run_id"}


@task(name="build-features", task_run_name="features-{symbol}-{start}", **_FEATURE_TASK)
def build_features_partition(
    warehouse_path: str,
    warehouse_id: str,
    symbol: str,
    interval: str,
    calendar: str,
    start: str,
    end: str,
    data_version: str,
    run_id: str,
    resample: str | None = None,
) -> dict[str, Any]:
    """Build and store the daily features of one symbol's sessions in ``[start, end)``.

    Cached on (warehouse, symbol, interval, calendar, window, data_version): ``data_version`` hashes
    the bars the partition reads, so a changed bar recomputes exactly the partitions that read it.
    """
    lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
    read_lo, read_hi = partition_read_window(lo, hi)
    with Warehouse.at(warehouse_path).connection() as con:
        bars = read_bars(con, symbol, interval, read_lo, read_hi)
    daily = build_daily_features(bars, calendar, interval, resample=resample)
    first, last = lo.date(), hi.date() - timedelta(days=1)
    daily = daily.filter(pl.col("session_date").is_between(first, last))
    with Warehouse.at(warehouse_path).writing() as con:
        write_features(con, daily, symbol, first, last, interval=interval)
    return {
        "sessions": daily.height,
        "low_coverage": int(daily["low_coverage"].sum()) if daily.height else 0,
        "jump_days": int((daily["bns_p"] < 0.01).sum()) if daily.height else 0,
    }


@task(name="build-cross-asset", **{**TASK_DEFAULTS, "cache_policy": NO_CACHE, "persist_result": False})
def build_cross_asset(
    warehouse_path: str, symbols: list[str], start: str, end: str, run_id: str, window: int = 30
) -> dict[str, Any]:
    """Rolling cross-asset correlations over ``symbols`` for sessions in ``[start, end)``.

    Not cached: it reads the stored daily features of every symbol, which the partition tasks just
    rewrote; it is cheap (daily rows only).
    """
    lo, hi = date.fromisoformat(start), date.fromisoformat(end)
    with Warehouse.at(warehouse_path).connection() as con:
        daily = read_features(con, symbols, lo - timedelta(days=3 * window), hi)
    cross = cross_asset_features(daily, symbols, window)
    last = hi - timedelta(days=1)
    cross = cross.filter(pl.col("session_date").is_between(lo, last))
    with Warehouse.at(warehouse_path).writing() as con:
        write_cross_asset(con, cross, symbols, lo, last, window=window)
    return {"pairs": cross.select("symbol_a", "symbol_b").unique().height, "rows": cross.height}


@task(name="build-realized-features", task_run_name="features-{symbol}-realized", **_FEATURE_TASK)
def build_realized_features(
    warehouse_path: str,
    warehouse_id: str,
    symbol: str,
    calendar: str,
    source: str,
    first: str,
    last: str,
    data_version: str,
    run_id: str,
) -> dict[str, Any]:
    """Build and store one symbol's daily features from its imported realized measures.

    Cached on (warehouse, symbol, calendar, source, range, data_version): ``data_version`` hashes the
    realized rows read, so a re-import that changes a day rebuilds the symbol.
    """
    lo, hi = date.fromisoformat(first), date.fromisoformat(last)
    with Warehouse.at(warehouse_path).connection() as con:
        rows = read_realized(con, symbol, lo, hi + timedelta(days=1), source=source)
    daily, off_calendar = realized_daily_features(rows, calendar)
    with Warehouse.at(warehouse_path).writing() as con:
        write_features(con, daily, symbol, lo, hi, interval=REALIZED_INTERVAL)
    return {
        "sessions": daily.height,
        "low_coverage": 0,
        "jump_days": 0,
        "off_calendar": len(off_calendar),
        "off_calendar_dates": [d.isoformat() for d in off_calendar[:5]],
    }
