"""The great-expectations runtime (created once per process) and running a suite over a frame.

GX validates pandas, not polars or DuckDB (see DESIGN.md): each partition's frame is converted with
``to_pandas()`` and validated in an ephemeral, in-memory context. :func:`run_suite` turns GX's
result into a :class:`~tasks.quality_results.QualityReport` of plain values.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from tasks.quality_policy import QualityPolicy
from tasks.quality_results import CheckOutcome, QualityReport, to_jsonable

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context import AbstractDataContext

logger = logging.getLogger(__name__)


@dataclass
class GxRuntime:
    """The process's ephemeral GX context, its pandas batch definition and what creating them cost."""

    context: AbstractDataContext
    batch_definition: BatchDefinition
    import_seconds: float
    context_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)


_GX: GxRuntime | None = None
_GX_INIT_LOCK = threading.Lock()


def gx_runtime() -> GxRuntime:
    """The GX runtime, created on first use (GX resolves suites against the active context)."""
    global _GX
    if _GX is not None:
        return _GX
    with _GX_INIT_LOCK:
        if _GX is None:
            t0 = time.perf_counter()
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            t1 = time.perf_counter()
            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(),
                progress_bars=ProgressBarsConfig(globally=False),
                analytics_enabled=False,
            )
            context = gx.get_context(mode="ephemeral", project_config=config)
            batch_definition = (
                context.data_sources.add_pandas("volrisk")
                .add_dataframe_asset("partition")
                .add_batch_definition_whole_dataframe("whole")
            )
            t2 = time.perf_counter()
            _GX = GxRuntime(context, batch_definition, t1 - t0, t2 - t1)
            logger.debug("great-expectations: import %.2fs, ephemeral context %.3fs", t1 - t0, t2 - t1)
    assert _GX is not None
    return _GX


def gx_runtime_stats() -> dict[str, float]:
    """Seconds spent importing great-expectations and creating the (cached) ephemeral context."""
    runtime = gx_runtime()
    return {"import_seconds": runtime.import_seconds, "context_seconds": runtime.context_seconds}


def _exception_text(info: Any) -> str | None:
    """Message of an exception GX caught while computing a check (its shapes vary by version)."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return None


def _examples(
    frame: pl.DataFrame, result: Mapping[str, Any], id_columns: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    values = list(result.get("partial_unexpected_list") or [])[:limit]
    rows = list(result.get("partial_unexpected_index_list") or [])[:limit]
    out: list[dict[str, Any]] = []
    for i, value in enumerate(values):
        example: dict[str, Any] = {}
        if i < len(rows) and isinstance(rows[i], int | float) and 0 <= int(rows[i]) < frame.height:
            row = int(rows[i])  # GX reports the pandas index: a RangeIndex, so the polars row number
            example["row"] = row
            for col in id_columns:
                if col in frame.columns:
                    example[col] = to_jsonable(frame[col][row])
        example["value"] = to_jsonable(value)
        out.append(example)
    return out


def _message(check: str, columns: str, success: bool, result: Mapping[str, Any], error: str | None) -> str:
    target = f"{check}({columns})" if columns else check
    if error:
        return f"{target}: could not be evaluated: {error}"
    if "observed_value" in result:
        return f"{target}: observed {to_jsonable(result['observed_value'])!r}" + (
            "" if success else " (failed)"
        )
    count, total = result.get("unexpected_count"), result.get("element_count")
    if success:
        return f"{target}: ok ({total} rows)"
    pct = result.get("unexpected_percent")
    pct_text = f", {pct:.3g}%" if isinstance(pct, int | float) else ""
    return f"{target}: {count} of {total} rows unexpected{pct_text}"


def run_suite(
    frame: pl.DataFrame,
    suite: ExpectationSuite,
    suite_name: str,
    partition: str,
    policy: QualityPolicy,
    id_columns: Sequence[str],
) -> QualityReport:
    """Validate ``frame`` with ``suite`` and return the report, checks in suite order.

    Parameters
    ----------
    frame : pl.DataFrame
        The partition (converted to pandas for GX; not modified).
    suite : ExpectationSuite
        Built by :mod:`tasks.quality_suites`.
    suite_name, partition : str
        Labels carried by every outcome.
    policy : QualityPolicy
        Severities and the number of examples kept.
    id_columns : Sequence[str]
        Columns quoted next to each unexpected example.

    Returns
    -------
    QualityReport
    """
    runtime = gx_runtime()
    pdf = frame.to_pandas()
    t0 = time.perf_counter()
    with runtime.lock:  # GX objects are not documented as thread-safe; Prefect may run tasks in threads
        batch = runtime.batch_definition.get_batch(batch_parameters={"dataframe": pdf})
        result = batch.validate(
            suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": policy.max_examples}
        )
    seconds = time.perf_counter() - t0
    outcomes: list[tuple[int, CheckOutcome]] = []
    for r in result.results:
        outcomes.append(_outcome(r, len(outcomes), frame, suite_name, policy, id_columns))
    outcomes.sort(key=lambda pair: pair[0])
    return QualityReport(
        suite=suite_name,
        partition=partition,
        row_count=frame.height,
        outcomes=[o for _, o in outcomes],
        validation_seconds=seconds,
    )


def _outcome(
    r: Any,
    position: int,
    frame: pl.DataFrame,
    suite_name: str,
    policy: QualityPolicy,
    id_columns: Sequence[str],
) -> tuple[int, CheckOutcome]:
    """One GX expectation result as ``(suite order, CheckOutcome)``."""
    config = r.expectation_config
    meta = dict(config.meta or {}) if config is not None else {}
    check = str(meta.get("volrisk_check", config.type if config is not None else "unknown"))
    columns = str(meta.get("volrisk_columns", ""))
    res: Mapping[str, Any] = r.result or {}
    error = _exception_text(r.exception_info)
    success = bool(r.success) and error is None
    observed = res.get("observed_value", res.get("unexpected_percent"))
    return (
        int(meta.get("volrisk_order", position)),
        CheckOutcome(
            suite=suite_name,
            check=check,
            columns=columns,
            severity=policy.severity(suite_name, check, columns),
            success=success,
            expectation_type=str(config.type) if config is not None else "unknown",
            element_count=_int_or_none(res.get("element_count")),
            unexpected_count=_int_or_none(res.get("unexpected_count")),
            unexpected_percent=to_jsonable(res.get("unexpected_percent")),
            observed_value=to_jsonable(observed),
            examples=[] if success else _examples(frame, res, id_columns, policy.max_examples),
            message=_message(check, columns, success, res, error),
        ),
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
