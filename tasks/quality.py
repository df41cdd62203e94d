"""Data quality for bars and daily features: validate one partition and give its verdict.

Pure functions (polars in, plain Python out, no I/O and no Prefect). The Prefect ``@task`` entry
points that read a partition through ``warehouse/``, store the outcome in ``dq_results`` and publish
a table artifact are the stage door, :mod:`flows.steps.quality`.

How a partition is judged
-------------------------
Each partition's frame is converted with ``to_pandas()`` and validated by a great-expectations 1.x
suite built in code (:mod:`tasks.quality_suites`, run by :mod:`tasks.quality_gx`). Every expectation
carries a volrisk *check name* (``high_ge_close``, ``unique_key``, ...). A
:class:`~tasks.quality_policy.QualityPolicy` maps check names to a severity, ``"error"`` or
``"warning"``. A failing error-level check makes the verdict ``passed=False``; failing warning-level
checks are reported and the verdict stands. Nothing here drops or modifies rows: the return-outlier
check only flags (:mod:`tasks.quality_bar_scores`).

The module map
--------------
- :mod:`tasks.quality_policy`: suites, check names, default severities, thresholds;
- :mod:`tasks.quality_results`: :class:`CheckOutcome`, :class:`QualityReport`, JSON values;
- :mod:`tasks.quality_bar_scores`: stale bars, repeated closes, robust return z-scores;
- :mod:`tasks.quality_suites` and :mod:`tasks.quality_gx`: the GX suites and running them;
- :mod:`tasks.quality_calendar` and :mod:`tasks.quality_gaps`: session windows and the outcomes of
  the warehouse-side checks ``bar_gaps`` and ``missing_sessions``;
- :mod:`tasks.quality_windows`: partition windows and labels;
- :mod:`tasks.quality_summary`: ``dq_results`` rows, artifact table and key, the task's summary.

Everything a task returns is a plain dict of JSON-able values: GX result objects break Prefect's
result serialization.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl

from core.errors import DataError
from tasks.quality_bar_scores import STALE_COLUMN, add_return_zscore, add_staleness
from tasks.quality_gx import run_suite
from tasks.quality_policy import BARS_SUITE, FEATURES_SUITE, QualityPolicy, load_policy
from tasks.quality_results import QualityReport
from tasks.quality_suites import (
    BAR_REQUIRED_COLUMNS,
    FEATURE_REQUIRED_COLUMNS,
    REALIZED_FEATURE_REQUIRED_COLUMNS,
    bars_suite,
    features_suite,
)
from tasks.quality_windows import parse_window, partition_label


def _require_columns(frame: pl.DataFrame, required: Sequence[str], partition: str, what: str) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"{what} must be a polars DataFrame; got {type(frame).__name__}", location=partition)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} frame lacks columns {missing}; expected at least {list(required)}", location=partition
        )


def validate_bars(
    frame: pl.DataFrame,
    start: datetime | str,
    end: datetime | str,
    policy: QualityPolicy | Mapping[str, Any] | None = None,
    partition: str | None = None,
) -> QualityReport:
    """Validate one bars partition with the bars suite.

    Parameters
    ----------
    frame : pl.DataFrame
        Bars of one (symbol, interval) in the warehouse bar schema. Not modified.
    start, end : datetime | str
        The partition window ``[start, end)`` (UTC; naive values and ISO text are read as UTC).
    policy : QualityPolicy | Mapping | None
        Severities and thresholds.
    partition : str | None
        Label used in results; derived from the frame's symbol/interval and the window if omitted.

    Returns
    -------
    QualityReport
        The verdict; ``report.to_dict()`` is what tasks return.

    Raises
    ------
    DataError
        If the frame lacks a bar column (names the partition and the columns).
    ConfigError
        If the window or the policy is invalid.
    """
    policy = load_policy(policy)
    lo, hi = parse_window(start, end)
    if partition is None:
        symbol = _first_value(frame, "symbol")
        interval = _first_value(frame, "interval")
        partition = partition_label(symbol, interval, lo, hi)
    _require_columns(frame, BAR_REQUIRED_COLUMNS, partition, "bars")
    scored = add_staleness(add_return_zscore(frame))
    if scored.height < policy.stale_min_bars:  # a share of a handful of bars says nothing
        scored = scored.with_columns(pl.lit(0, pl.Int8).alias(STALE_COLUMN))
    return run_suite(scored, bars_suite(lo, hi, policy), BARS_SUITE, partition, policy, ("ts",))


def validate_features(
    frame: pl.DataFrame,
    partition: str,
    policy: QualityPolicy | Mapping[str, Any] | None = None,
) -> QualityReport:
    """Validate one daily-features partition with the features suite.

    Parameters
    ----------
    frame : pl.DataFrame
        Daily features (``tasks.features.DAILY_FEATURES_SCHEMA``). Not modified.
    partition : str
        Label used in results, e.g. ``"BTC-USDT/1h/2020-01-01..2021-01-01"``.
    policy : QualityPolicy | Mapping | None
        Severities and thresholds.

    Returns
    -------
    QualityReport

    Raises
    ------
    DataError
        If a required column is missing (:data:`FEATURE_REQUIRED_COLUMNS`, or for rows built from
        imported realized measures :data:`REALIZED_FEATURE_REQUIRED_COLUMNS`).
    """
    policy = load_policy(policy)
    intervals = frame["interval"] if "interval" in frame.columns else None
    realized = intervals is not None and frame.height > 0 and bool((intervals == "realized").all())
    required = REALIZED_FEATURE_REQUIRED_COLUMNS if realized else FEATURE_REQUIRED_COLUMNS
    _require_columns(frame, required, partition, "daily features")
    suite = features_suite(policy, realized=realized)
    return run_suite(frame, suite, FEATURES_SUITE, partition, policy, ("symbol", "session_date"))


def _first_value(frame: pl.DataFrame, column: str) -> str:
    if column in frame.columns:
        values = frame[column].drop_nulls()
        if values.len():
            return str(values[0])
    return "?"
