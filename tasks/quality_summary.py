"""A report's outward forms: ``dq_results`` rows, the artifact table and key, the task's summary."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core.errors import ConfigError
from core.schema import DQ_SCHEMA
from tasks.quality_policy import BARS_SUITE
from tasks.quality_results import QualityReport, to_jsonable


def artifact_key(suite: str, symbol: str, interval: str | None = None) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes): ``dq-bars-btc-usdt-1h``."""
    short = "bars" if suite == BARS_SUITE else "features"
    raw = "-".join(p for p in ("dq", short, symbol, interval) if p)
    key = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    return re.sub(r"-{2,}", "-", key)


def dq_rows(report: QualityReport, run_id: str, created_at: datetime | None = None) -> pl.DataFrame:
    """The report as ``dq_results`` rows (:data:`core.schema.DQ_SCHEMA`).

    Parameters
    ----------
    report : QualityReport
        A validated partition.
    run_id : str
        The run the results belong to.
    created_at : datetime | None
        Row timestamp; now (UTC) by default.

    Returns
    -------
    pl.DataFrame
        One row per check; ``column_name`` is ``"*"`` for table-level checks.
    """
    if not run_id:
        raise ConfigError("run_id must be a non-empty string")
    now = created_at or datetime.now(UTC)
    records = [
        {
            "run_id": run_id,
            "suite": o.suite,
            "partition": report.partition,
            "expectation": o.check,
            "column_name": o.columns or "*",
            "severity": o.severity,
            "success": o.success,
            "observed_value": json.dumps(to_jsonable(o.observed_value)),
            "unexpected_count": o.unexpected_count,
            "element_count": o.element_count,
            "details": json.dumps(
                to_jsonable(
                    {
                        "expectation_type": o.expectation_type,
                        "unexpected_percent": o.unexpected_percent,
                        "examples": o.examples,
                        "message": o.message,
                    }
                )
            ),
            "created_at": now,
        }
        for o in report.outcomes
    ]
    if not records:
        return pl.DataFrame(schema=DQ_SCHEMA)
    return pl.DataFrame(records, schema=DQ_SCHEMA)


def artifact_table(report: QualityReport) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact: failures first, then passing checks."""
    rows = []
    for o in sorted(report.outcomes, key=lambda o: (o.success, o.severity != "error")):
        status = "ok" if o.success else ("ERROR" if o.severity == "error" else "WARN")
        example = json.dumps(o.examples[0]) if o.examples else ""
        rows.append(
            {
                "status": status,
                "check": o.check,
                "columns": o.columns or "*",
                "severity": o.severity,
                "unexpected": o.unexpected_count if o.unexpected_count is not None else "",
                "observed": json.dumps(o.observed_value) if o.observed_value is not None else "",
                "example": example[:200],
            }
        )
    return rows


def task_summary(report: QualityReport, **extra: Any) -> dict[str, Any]:
    """The small plain dict a task returns: verdict, counts, errors and warnings."""
    out = {
        "suite": report.suite,
        "partition": report.partition,
        "passed": report.passed,
        "row_count": report.row_count,
        "n_checks": len(report.outcomes),
        "n_errors": len(report.errors),
        "n_warnings": len(report.warnings),
        "errors": [o.to_dict() for o in report.errors],
        "warnings": [o.to_dict() for o in report.warnings],
        "notes": list(report.notes),
        "validation_seconds": round(report.validation_seconds, 4),
    }
    out.update(extra)
    result: dict[str, Any] = to_jsonable(out)
    return result
