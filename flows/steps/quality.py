"""The data-quality door: Prefect tasks that check a stored partition and record the verdict.

Each task takes partition keys and a warehouse path, reads through ``warehouse/`` on a
:class:`~warehouse.resource.Warehouse`, validates with the pure functions of :mod:`tasks.quality`,
upserts every outcome into ``dq_results``, publishes a table artifact and returns a small plain dict
(GX result objects break Prefect's result serialization).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from prefect import task

from core.errors import DataError, WarehouseError
from core.schema import interval_seconds
from core.symbols import validate_symbol
from flows.orchestration import TASK_DEFAULTS
from tasks.calendars import validate_calendar
from tasks.quality import validate_bars, validate_features
from tasks.quality_calendar import expected_session_windows, in_session_gaps, session_windows
from tasks.quality_gaps import gaps_outcome, missing_sessions_outcome
from tasks.quality_policy import BARS_SUITE, FEATURES_SUITE, QualityPolicy, load_policy
from tasks.quality_results import CheckOutcome, QualityReport
from tasks.quality_summary import artifact_key, artifact_table, dq_rows, task_summary
from tasks.quality_windows import features_partition_label, parse_window, partition_label
from warehouse.bars import read_bars
from warehouse.catalog import get_instrument
from warehouse.features import read_features
from warehouse.quality import find_gaps, missing_sessions, write_dq_results
from warehouse.resource import Warehouse

logger = logging.getLogger(__name__)

# run_id labels the results a run writes; it is not part of what the check depends on.
_DQ_TASK = {**TASK_DEFAULTS, "cache_policy": TASK_DEFAULTS["cache_policy"] - "run_id"}


def _existing_warehouse(path: str) -> Warehouse:
    if not Path(path).is_file():
        raise WarehouseError(f"warehouse {path} does not exist; ingest bars before checking their quality")
    return Warehouse.at(path)


def _publish(report: QualityReport, key: str) -> None:
    from prefect.artifacts import create_table_artifact

    description = f"**{'PASSED' if report.passed else 'FAILED'}** {report.summary()}"
    if report.notes:
        description += "\n\n" + "\n".join(f"- {n}" for n in report.notes)
    create_table_artifact(table=artifact_table(report), key=key, description=description)


def _log(report: QualityReport) -> None:
    try:
        from prefect import get_run_logger

        run_logger: Any = get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run (tests calling .fn): fall back to the module logger
        run_logger = logger
    level = logging.INFO if report.passed and not report.warnings else logging.WARNING
    run_logger.log(level, report.summary())
    for o in [*report.errors, *report.warnings]:
        run_logger.log(level, "  %s [%s] %s e.g. %s", o.severity, o.check, o.message, o.examples[:2])


def _record(wh: Warehouse, report: QualityReport, run_id: str, key: str, fail_on_error: bool) -> None:
    """Upsert the outcomes, publish the artifact, log; raise DataError on a failed verdict if asked."""
    with wh.writing() as con:  # serialized with every other writer
        write_dq_results(con, dq_rows(report, run_id))
    _publish(report, key)
    _log(report)
    if fail_on_error and not report.passed:
        raise DataError(report.summary(), location=report.partition)


@task(name="check-bars-partition", task_run_name="dq-bars-{symbol}-{interval}-{start}", **_DQ_TASK)
def check_bars_partition(
    warehouse_path: str,
    symbol: str,
    interval: str,
    start: str,
    end: str,
    data_version: str,
    run_id: str,
    policy: dict[str, Any] | None = None,
    calendar: str | None = None,
    fail_on_error: bool = False,
) -> dict[str, Any]:
    """Validate one stored bars partition, record the results and publish an artifact.

    Reads ``[start, end)``, runs the bars suite, adds the SQL checks ``bar_gaps`` and
    ``missing_sessions`` (sessions from ``calendar``, else the instrument's registered calendar;
    skipped with a note when neither is known), upserts every outcome into ``dq_results`` and
    publishes the table artifact ``dq-bars-<symbol>-<interval>``.

    Parameters
    ----------
    warehouse_path, symbol, interval : str
        DuckDB file and the partition.
    start, end : str
        ISO dates/datetimes (UTC) of the half-open window.
    data_version : str
        Content hash of the inputs; part of the cache key only.
    run_id : str
        Run recorded with the results.
    policy : dict | None
        :class:`~tasks.quality_policy.QualityPolicy` fields (severity overrides, thresholds).
    calendar : str | None
        Session calendar for ``missing_sessions`` (``"24x7"``, ``"fx"``, ``"XNYS"``, ...).
    fail_on_error : bool
        Raise :class:`DataError` (after recording the results) when the verdict is failed.

    Returns
    -------
    dict
        ``passed``, ``n_errors``, ``n_warnings``, ``errors``, ``warnings``, ``row_count``, ``n_gaps``,
        ``n_missing_sessions``, ``artifact_key``, ``partition``; plain JSON values only.
    """
    wh = _existing_warehouse(warehouse_path)
    validate_symbol(symbol)
    interval_seconds(interval)
    rules = load_policy(policy)
    lo, hi = parse_window(start, end)
    report = _validate_stored_bars(wh, symbol, interval, lo, hi, calendar, rules)
    key = artifact_key(BARS_SUITE, symbol, interval)
    _record(wh, report, run_id, key, fail_on_error)
    return task_summary(
        report,
        n_gaps=_unexpected(report, "bar_gaps"),
        n_missing_sessions=_unexpected(report, "missing_sessions"),
        artifact_key=key,
        data_version=data_version,
        run_id=run_id,
    )


def _validate_stored_bars(
    wh: Warehouse, symbol: str, interval: str, lo: datetime, hi: datetime, calendar: str | None,
    rules: QualityPolicy,
) -> QualityReport:  # fmt: skip
    """Read the bars of ``[lo, hi)``, run the bars suite and add the SQL checks' outcomes."""
    partition = partition_label(symbol, interval, lo, hi)
    # A plain connection, as every check always had: a read-only one cannot sit beside this
    # process's writer on the same file.
    with wh.connection() as con:
        bars = read_bars(con, symbol, interval, lo, hi)
        if calendar is None:
            instrument = get_instrument(con, symbol)
            calendar = instrument.calendar if instrument else None
        extra, notes = _calendar_checks(con, symbol, interval, lo, hi, calendar, rules, bars.height)
    return validate_bars(bars, lo, hi, rules, partition).with_outcomes(extra, notes)


def _unexpected(report: QualityReport, check: str) -> int | None:
    """The unexpected count of the SQL-side ``check`` (``None`` when it did not run)."""
    found = [o for o in report.outcomes if o.check == check and o.expectation_type.startswith("sql:")]
    return found[0].unexpected_count if found else None


def _calendar_checks(
    con: duckdb.DuckDBPyConnection, symbol: str, interval: str, lo: datetime, hi: datetime,
    calendar: str | None, rules: QualityPolicy, n_bars: int,
) -> tuple[list[CheckOutcome], list[str]]:  # fmt: skip
    """``bar_gaps`` (inside the calendar's sessions) and ``missing_sessions`` outcomes, and notes."""
    gaps = find_gaps(con, symbol, interval, lo, hi, factor=rules.gap_factor)
    if calendar is None:
        note = f"missing_sessions skipped: no calendar given and {symbol} is not in instruments"
        return [gaps_outcome(gaps, rules, n_bars)], [note]
    calendar = validate_calendar(calendar)
    gaps = in_session_gaps(gaps, session_windows(calendar, lo, hi), interval_seconds(interval))
    sessions, windows = expected_session_windows(calendar, lo, hi)
    missing = missing_sessions(con, symbol, interval, sessions, windows)
    return [gaps_outcome(gaps, rules, n_bars), missing_sessions_outcome(missing, len(sessions), rules)], []


def read_features_partition(
    con: duckdb.DuckDBPyConnection, symbol: str, start: datetime, end: datetime, version: str = "v1"
) -> pl.DataFrame:
    """One symbol's daily features with ``start <= session_date < end`` (half-open, UTC dates).

    Reads through :func:`warehouse.features.read_features`, whose bounds are inclusive.
    """
    last = (end - timedelta(microseconds=1)).date()
    frame = read_features(con, [symbol], start=start.date(), end=max(last, start.date()), version=version)
    if frame.height and "session_date" in frame.columns:
        frame = frame.filter(pl.col("session_date") < end.date())
    return frame


@task(name="check-features-partition", task_run_name="dq-features-{symbol}-{start}", **_DQ_TASK)
def check_features_partition(
    warehouse_path: str,
    symbol: str,
    start: str,
    end: str,
    data_version: str,
    run_id: str,
    version: str = "v1",
    policy: dict[str, Any] | None = None,
    fail_on_error: bool = False,
) -> dict[str, Any]:
    """Validate one symbol's stored daily features, record the results and publish an artifact.

    Parameters
    ----------
    warehouse_path : str
        DuckDB file.
    symbol : str
        The partition's symbol.
    start, end : str
        ISO dates: sessions ``start <= session_date < end``.
    data_version : str
        Content hash of the inputs; part of the cache key only.
    run_id : str
        Run recorded with the results.
    version : str
        Feature-set version passed to ``read_features``.
    policy : dict | None
        :class:`~tasks.quality_policy.QualityPolicy` fields.
    fail_on_error : bool
        Raise :class:`DataError` (after recording the results) when the verdict is failed.

    Returns
    -------
    dict
        ``passed``, ``n_errors``, ``n_warnings``, ``errors``, ``warnings``, ``row_count``,
        ``artifact_key``, ``partition``; plain JSON values only.
    """
    wh = _existing_warehouse(warehouse_path)
    validate_symbol(symbol)
    rules = load_policy(policy)
    lo, hi = parse_window(start, end)
    partition = features_partition_label(symbol, version, lo, hi)
    with wh.connection() as con:
        frame = read_features_partition(con, symbol, lo, hi, version)
    report = validate_features(frame, partition, rules)
    key = artifact_key(FEATURES_SUITE, symbol, version)
    _record(wh, report, run_id, key, fail_on_error)
    return task_summary(report, artifact_key=key, data_version=data_version, run_id=run_id)
