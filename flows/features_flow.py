"""``features_flow``: bars quality gate, then daily features per (symbol, month), then cross-asset."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.futures import as_completed

from core.errors import ConfigError, VolriskError
from core.symbols import validate_symbol
from flows import progress
from flows.preflight import check_interval_change, chosen_interval
from flows.realized_plan import RealizedPlan, TargetSource, plan_realized, target_sources
from flows.steps.features import build_cross_asset, build_features_partition, build_realized_features
from flows.steps.quality import check_bars_partition, check_features_partition
from tasks.config import get_settings
from tasks.features import partition_read_window
from tasks.ingest import check_range, month_windows
from tasks.realized_features import REALIZED_INTERVAL
from warehouse.bars import bars_version, stored_intervals
from warehouse.catalog import get_instrument, warehouse_id
from warehouse.resource import Warehouse


@dataclass(frozen=True)
class FeaturePlan:
    """What the flow will compute for one symbol."""

    symbol: str
    interval: str
    calendar: str
    windows: list[tuple[datetime, datetime]]
    versions: list[str]


def _as_utc(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def plan_features(
    wh_path: str,
    symbols: list[str],
    start: date | None,
    end: date | None,
    intervals: dict[str, str] | None = None,
    replace_interval: bool = False,
) -> tuple[str, list[FeaturePlan]]:
    """Pick each symbol's bar interval and month partitions, and hash each partition's bars.

    The default interval is the one the symbol's stored features came from, else the intraday
    interval with the longest history (so SPY uses its 23 years of hourly bars rather than two
    months of minute bars); ``intervals`` overrides it. Sessions
    stored from another interval are rebuilt only with ``replace_interval`` (see
    :func:`flows.preflight.check_interval_change`).
    """
    from warehouse.catalog import feature_intervals, features_interval

    plans: list[FeaturePlan] = []
    with Warehouse.at(wh_path).connection() as con:
        wid = warehouse_id(con)
        for symbol in symbols:
            validate_symbol(symbol)
            inst = get_instrument(con, symbol)
            if inst is None:
                raise ConfigError(f"symbol {symbol!r} has no bars in {wh_path}; ingest it first")
            kept = features_interval(con, symbol)
            interval, _, first, last = chosen_interval(symbol, stored_intervals(con, symbol), intervals, kept)
            lo = max(_as_utc(start), first) if start else first
            day_after_last = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            hi = min(_as_utc(end), day_after_last) if end else day_after_last
            lo = lo.replace(hour=0, minute=0, second=0, microsecond=0)
            if hi <= lo:
                raise ConfigError(
                    f"{symbol}: no bars between {start} and {end} (stored {first:%Y-%m-%d}..{last:%Y-%m-%d})"
                )
            stored_from = feature_intervals(con, symbol, lo.date(), (hi - timedelta(days=1)).date())
            check_interval_change(symbol, interval, stored_from, replace_interval)
            windows = month_windows(lo, hi)
            versions = [bars_version(con, symbol, interval, *partition_read_window(a, b)) for a, b in windows]
            plans.append(FeaturePlan(symbol, interval, inst.calendar, windows, versions))
    return wid, plans


@dataclass(frozen=True)
class FeatureRun:
    """What every task of one features run shares."""

    warehouse: str
    run_id: str
    quality_policy: dict[str, Any] | None
    replace_interval: bool


DqFutures = dict[Any, tuple[FeaturePlan, datetime, datetime, str]]


def submit_bar_checks(run: FeatureRun, plans: list[FeaturePlan]) -> DqFutures:
    """One bar-quality task per (symbol, month) partition."""
    futures: DqFutures = {}
    for plan in plans:
        for (lo, hi), version in zip(plan.windows, plan.versions, strict=True):
            fut = check_bars_partition.submit(
                run.warehouse,
                plan.symbol,
                plan.interval,
                lo.isoformat(),
                hi.isoformat(),
                version,
                run.run_id,
                run.quality_policy,
                plan.calendar,
            )
            futures[fut] = (plan, lo, hi, version)
    return futures


def _quality_verdict(fut: Any, row: dict[str, Any]) -> bool:
    """Record a partition's quality result in ``row``; True when its features may be built."""
    try:
        dq = fut.result()
    except Exception as exc:  # noqa: BLE001 - reported per partition
        row.update(status="failed", error=f"quality check failed to run: {type(exc).__name__}: {exc}")
        return False
    row.update(dq_passed=dq["passed"], dq_errors=len(dq["errors"]), dq_warnings=len(dq["warnings"]))
    if not dq["passed"]:
        names = sorted({e["check"] for e in dq["errors"]})
        row.update(status="blocked", error=f"error-level data-quality checks failed: {names}")
        return False
    return True


def submit_builds(
    run: FeatureRun, wid: str, dq_futures: DqFutures
) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
    """As each quality check finishes, submit the partition's build if it passed.

    Returns the rows of partitions that stop here (failed or blocked) and the build futures.
    """
    # Switching a symbol's interval back must rewrite its months: a cached result (same bars, same
    # interval as an earlier build) would write nothing and leave the other interval's sessions.
    build = (
        build_features_partition.with_options(refresh_cache=True)
        if run.replace_interval
        else build_features_partition
    )
    rows: list[dict[str, Any]] = []
    feature_futures: dict[Any, dict[str, Any]] = {}
    for fut in as_completed(list(dq_futures)):
        plan, lo, hi, version = dq_futures[fut]
        row: dict[str, Any] = {
            "symbol": plan.symbol,
            "interval": plan.interval,
            "start": lo.date().isoformat(),
            "end": hi.date().isoformat(),
        }
        if not _quality_verdict(fut, row):
            rows.append(row)
            progress.report("features", item=row)
            continue
        ffut = build.submit(
            run.warehouse,
            wid,
            plan.symbol,
            plan.interval,
            plan.calendar,
            lo.isoformat(),
            hi.isoformat(),
            version,
            run.run_id,
        )
        feature_futures[ffut] = row
    return rows, feature_futures


def collect_builds(feature_futures: dict[Any, dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the built partitions, with their status (success, cached or failed)."""
    rows: list[dict[str, Any]] = []
    for ffut in as_completed(list(feature_futures)):
        row = feature_futures[ffut]
        try:
            out = ffut.result()
            row.update(status="cached" if ffut.state.name == "Cached" else "success", **out)
        except Exception as exc:  # noqa: BLE001
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        rows.append(row)
        progress.report("features", item=row)
    return rows


def _checked_ranges(
    plans: list[FeaturePlan], realized: list[RealizedPlan]
) -> list[tuple[str, date, date, str]]:
    """(symbol, first day, day after the last, data version) of every plan, bars and realized."""
    ranges = [
        (p.symbol, p.windows[0][0].date(), p.windows[-1][1].date(), "|".join(p.versions)) for p in plans
    ]
    return ranges + [(p.symbol, p.first, p.last + timedelta(days=1), p.version) for p in realized]


def check_built_features(run: FeatureRun, ranges: list[tuple[str, date, date, str]]) -> list[dict[str, Any]]:
    """The feature-quality check of each symbol that has built partitions, over its whole range."""
    checks: list[dict[str, Any]] = []
    for symbol, lo, hi, version in ranges:
        try:
            checks.append(
                {"symbol": symbol}
                | check_features_partition(
                    run.warehouse,
                    symbol,
                    lo.isoformat(),
                    hi.isoformat(),
                    version,
                    run.run_id,
                    policy=run.quality_policy,
                )
            )
        except VolriskError as exc:
            checks.append({"symbol": symbol, "passed": False, "error": str(exc)})
    return checks


def build_from_realized(run: FeatureRun, wid: str, plans: list[RealizedPlan]) -> list[dict[str, Any]]:
    """One build task per realized-only symbol (its whole range: daily rows are cheap); their rows."""
    futures = {
        build_realized_features.submit(
            run.warehouse, wid, p.symbol, p.calendar, p.source,
            p.first.isoformat(), p.last.isoformat(), p.version, run.run_id,
        ): p
        for p in plans
    }  # fmt: skip
    rows: list[dict[str, Any]] = []
    for fut in as_completed(list(futures)):
        p = futures[fut]
        row: dict[str, Any] = {
            "symbol": p.symbol,
            "interval": REALIZED_INTERVAL,
            "start": p.first.isoformat(),
            "end": (p.last + timedelta(days=1)).isoformat(),
        }
        try:
            row.update(status="cached" if fut.state.name == "Cached" else "success", **fut.result())
        except Exception as exc:  # noqa: BLE001 - reported per symbol
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        rows.append(row)
        progress.report("features", item=row)
    return rows


def plan_sources(
    wh_path: str, symbols: list[str], start: date | None, end: date | None,
    target_source: TargetSource | None, replace_interval: bool,
) -> tuple[list[str], list[RealizedPlan]]:  # fmt: skip
    """The symbols built from bars, and the plans of those built from imported realized measures."""
    with Warehouse.at(wh_path).connection() as con:
        sources = target_sources(con, symbols, target_source)
        realized = [
            plan_realized(con, s, start, end, replace_interval) for s in symbols if sources[s] == "realized"
        ]
    bars = [s for s in symbols if sources[s] == "bars"]
    return bars, realized


@flow(name="features", log_prints=True)
def features_flow(
    symbols: list[str],
    start: date | None = None,
    end: date | None = None,
    intervals: dict[str, str] | None = None,
    cross_asset: bool = True,
    warehouse: str | None = None,
    quality_policy: dict[str, Any] | None = None,
    replace_interval: bool = False,
    target_source: TargetSource | None = None,
) -> dict[str, Any]:
    """Quality-check bars, build daily features per (symbol, month), then cross-asset correlations.

    A symbol that has only imported realized measures gets its features from them (one task per
    symbol, see :mod:`tasks.realized_features`); ``target_source`` picks bars or realized for every
    symbol when it has both.

    Parameters
    ----------
    symbols : list[str]
        Symbols with bars in the warehouse.
    start, end : date | None
        Half-open range of session dates (defaults: all stored bars).
    intervals : dict[str, str] | None
        Bar interval per symbol (default: what its stored features came from, else the longest history).
    cross_asset : bool
        Also compute rolling cross-asset correlations when two or more symbols are given.
    warehouse : str | None
        DuckDB file; defaults to the configured warehouse.
    quality_policy : dict | None
        Severity overrides for the data-quality checks (see ``tasks.quality_policy.QualityPolicy``).
    replace_interval : bool
        Allow rebuilding sessions stored from another bar interval (refused otherwise).
    target_source : {"bars", "realized"} | None
        What the features, and so the forecast target, are built from (default: bars when the symbol
        has bars, else its imported realized measures). Switching a symbol's stored sessions from one
        source to the other needs ``replace_interval``, as between bar intervals.

    Returns
    -------
    dict
        ``partitions``: one row per (symbol, month) with its quality verdict and features status;
        ``feature_checks`` per symbol; ``cross_asset``; and ``failed``, the partitions that did not
        reach features and why.
    """
    check_range(start, end)
    wh_path = str(Path(warehouse) if warehouse else get_settings().warehouse)
    if not Path(wh_path).is_file():
        raise ConfigError(f"warehouse {wh_path} does not exist; ingest bars first")
    run = FeatureRun(wh_path, uuid.uuid4().hex[:12], quality_policy, replace_interval)
    bar_symbols, realized = plan_sources(wh_path, symbols, start, end, target_source, replace_interval)
    wid, plans = plan_features(wh_path, bar_symbols, start, end, intervals, replace_interval)
    progress.report("features", total=sum(len(p.windows) for p in plans) + len(realized))
    rows, feature_futures = submit_builds(run, wid, submit_bar_checks(run, plans))
    rows += collect_builds(feature_futures) + build_from_realized(run, wid, realized)
    built = {r["symbol"] for r in rows if r["status"] in ("success", "cached")}
    ranges = [r for r in _checked_ranges(plans, realized) if r[0] in built]
    checks = check_built_features(run, ranges)
    cross: dict[str, Any] | None = None
    if cross_asset and len(built) >= 2:
        lo, hi = min(r[1] for r in ranges), max(r[2] for r in ranges)
        cross = build_cross_asset(wh_path, sorted(built), lo.isoformat(), hi.isoformat(), run.run_id)
    failed = [r for r in rows if r["status"] in ("failed", "blocked")]
    return {
        "run_id": run.run_id,
        "partitions": sorted(rows, key=lambda r: (r["symbol"], r["start"])),
        "feature_checks": checks,
        "cross_asset": cross,
        "failed": failed,
    }
