"""Outcomes of the warehouse-side checks: ``bar_gaps`` and ``missing_sessions``.

The door (``flows.steps.quality``) runs :func:`warehouse.quality.find_gaps` and
:func:`warehouse.quality.missing_sessions`; these functions turn their frames into
:class:`~tasks.quality_results.CheckOutcome` values that join the partition's report.
"""

from __future__ import annotations

import polars as pl

from tasks.quality_policy import BARS_SUITE, QualityPolicy
from tasks.quality_results import CheckOutcome, to_jsonable


def gaps_outcome(
    gaps: pl.DataFrame, policy: QualityPolicy | None = None, bar_count: int | None = None
) -> CheckOutcome:
    """The ``bar_gaps`` outcome from :func:`warehouse.quality.find_gaps`' result.

    Parameters
    ----------
    gaps : pl.DataFrame
        ``find_gaps`` output (one row per gap).
    policy : QualityPolicy | None
        Severity and example count.
    bar_count : int | None
        Bars in the partition (reported as the element count).

    Returns
    -------
    CheckOutcome
        Failed when there is at least one gap; examples are the longest gaps.
    """
    policy = policy or QualityPolicy()
    n = gaps.height
    missing = int(gaps["missing_bars"].sum()) if n else 0
    longest = gaps.sort("length", descending=True).head(policy.max_examples) if n else gaps
    examples = [
        {
            "gap_start": to_jsonable(row["gap_start"]),
            "gap_end": to_jsonable(row["gap_end"]),
            "hours": round(row["length"].total_seconds() / 3600, 3),
            "missing_bars": int(row["missing_bars"]),
        }
        for row in longest.iter_rows(named=True)
    ]
    longest_h = examples[0]["hours"] if examples else 0.0
    return CheckOutcome(
        suite=BARS_SUITE,
        check="bar_gaps",
        columns="ts",
        severity=policy.severity(BARS_SUITE, "bar_gaps", "ts"),
        success=n == 0,
        expectation_type="sql:find_gaps",
        element_count=bar_count,
        unexpected_count=n,
        observed_value={"gaps": n, "missing_bars": missing, "longest_hours": longest_h},
        examples=examples,
        message=(
            f"bar_gaps(ts): {n} gaps, {missing} missing bars, longest {longest_h:g} h"
            if n
            else "bar_gaps(ts): no gaps"
        ),
    )


def missing_sessions_outcome(
    missing: pl.DataFrame, n_expected: int, policy: QualityPolicy | None = None
) -> CheckOutcome:
    """The ``missing_sessions`` outcome from :func:`warehouse.quality.missing_sessions`' result.

    Parameters
    ----------
    missing : pl.DataFrame
        One row per expected session without bars (``session_date``).
    n_expected : int
        Sessions that were expected.
    policy : QualityPolicy | None
        Severity and example count.

    Returns
    -------
    CheckOutcome
    """
    policy = policy or QualityPolicy()
    n = missing.height
    dates = [to_jsonable(d) for d in missing["session_date"].to_list()] if n else []
    pct = 100.0 * n / n_expected if n_expected else None
    return CheckOutcome(
        suite=BARS_SUITE,
        check="missing_sessions",
        columns="ts",
        severity=policy.severity(BARS_SUITE, "missing_sessions", "ts"),
        success=n == 0,
        expectation_type="sql:missing_sessions",
        element_count=n_expected,
        unexpected_count=n,
        unexpected_percent=pct,
        observed_value=pct,
        examples=[{"session_date": d} for d in dates[: policy.max_examples]],
        message=(
            f"missing_sessions(ts): {n} of {n_expected} expected sessions have no bars"
            if n
            else f"missing_sessions(ts): all {n_expected} expected sessions have bars"
        ),
    )
