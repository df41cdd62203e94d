"""The great-expectations suites, built in code: one for bars, one for daily features.

Bars suite (:data:`~tasks.quality_policy.BARS_SUITE`)
    keys not null; prices not null, finite and > 0; ``high >= low``, ``high >= open``,
    ``high >= close``, ``low <= open``, ``low <= close``; ``(symbol, ts)`` unique; ``ts`` inside the
    partition window ``[start, end)``; ``volume >= 0`` (nulls allowed); ``|log return|`` at most
    ``outlier_sigmas`` robust sigmas; stale-bar share; repeated closes; at least one row.
Daily features suite (:data:`~tasks.quality_policy.FEATURES_SUITE`)
    keys and :data:`FEATURE_REQUIRED_COLUMNS` not null (NaN counts as null); ``rv`` and ``bv``
    finite and >= 0; ``coverage`` in [0, 1]; ``(symbol, session_date)`` unique; ``coverage`` at least
    ``min_coverage`` (warning); at least one row.

Every expectation carries its volrisk check name, columns and order in ``meta``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tasks.quality_bar_scores import CLOSE_RUN_COLUMN, RETURN_Z_COLUMN, STALE_COLUMN
from tasks.quality_gx import gx_runtime
from tasks.quality_policy import BARS_SUITE, FEATURES_SUITE, QualityPolicy

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation import Expectation

#: Columns a bars partition must have.
BAR_REQUIRED_COLUMNS = ("symbol", "interval", "ts", "open", "high", "low", "close", "volume")
BAR_KEY_COLUMNS = ("symbol", "interval", "ts")
#: Uniqueness key of a bars partition (a partition holds one interval).
BAR_UNIQUE_KEY = ("symbol", "ts")
PRICE_COLUMNS = ("open", "high", "low", "close")

#: Columns a daily-features partition must have, none of them null or NaN. Aligned with
#: ``tasks.features.DAILY_FEATURES_SCHEMA`` (``n_bars`` is the bar count per session).
FEATURE_REQUIRED_COLUMNS = ("symbol", "session_date", "rv", "bv", "coverage", "close", "n_bars")
FEATURE_KEY_COLUMNS = ("symbol", "session_date")
#: Required columns of feature rows built from imported realized measures (``interval = "realized"``):
#: they have no bars, so no bar counts or coverage, and bv/close only when the file has them.
REALIZED_FEATURE_REQUIRED_COLUMNS = ("symbol", "session_date", "rv")

#: Upper bound used as "finite" for values GX compares (inf fails it, every real price passes).
_FINITE_MAX = 1e300


#: (check name, columns, GX expectation class name, keyword arguments)
_Spec = tuple[str, Sequence[str], str, dict[str, Any]]


def _suite(name: str, specs: list[_Spec], policy: QualityPolicy) -> ExpectationSuite:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    gx_runtime()  # GX resolves suites against the active (ephemeral) context
    suite = gx.ExpectationSuite(name=name)
    for order, (check, columns, kind, kwargs) in enumerate(specs):
        joined = ",".join(columns)
        severity = policy.severity(name, check, joined)
        expectation: Expectation = getattr(gxe, kind)(
            **kwargs,
            meta={"volrisk_check": check, "volrisk_columns": joined, "volrisk_order": order},
            severity="critical" if severity == "error" else "warning",
        )
        suite.add_expectation(expectation)
    return suite


def bars_suite(start: datetime, end: datetime, policy: QualityPolicy | None = None) -> ExpectationSuite:
    """The bars expectation suite for the window ``[start, end)``.

    Parameters
    ----------
    start, end : datetime
        The partition window (UTC).
    policy : QualityPolicy | None
        Severities and thresholds; defaults when ``None``.

    Returns
    -------
    great_expectations.ExpectationSuite
        Expectations tagged in ``meta`` with their volrisk check name and columns. The frame it
        validates must carry :data:`~tasks.quality_bar_scores.RETURN_Z_COLUMN` (see
        :func:`~tasks.quality_bar_scores.add_return_zscore`), ``STALE_COLUMN`` and
        ``CLOSE_RUN_COLUMN`` (see :func:`~tasks.quality_bar_scores.add_staleness`).
    """
    policy = policy or QualityPolicy()
    specs = [*_bar_row_specs(), *_bar_window_specs(start, end), *_bar_score_specs(policy)]
    specs.append(("non_empty", [], "ExpectTableRowCountToBeBetween", {"min_value": 1}))
    return _suite(BARS_SUITE, specs, policy)


def _bar_row_specs() -> list[_Spec]:
    """Keys and prices present, prices positive and finite, the OHLC order of each bar."""
    specs: list[_Spec] = []
    for col in BAR_KEY_COLUMNS:
        specs.append(("key_not_null", [col], "ExpectColumnValuesToNotBeNull", {"column": col}))
    for col in PRICE_COLUMNS:
        specs.append(("price_not_null", [col], "ExpectColumnValuesToNotBeNull", {"column": col}))
    for col in PRICE_COLUMNS:
        positive = {"column": col, "min_value": 0, "strict_min": True, "max_value": _FINITE_MAX}
        specs.append(("price_positive", [col], "ExpectColumnValuesToBeBetween", positive))
    for check, hi, lo in (
        ("high_ge_low", "high", "low"),
        ("high_ge_open", "high", "open"),
        ("high_ge_close", "high", "close"),
        ("low_le_open", "open", "low"),
        ("low_le_close", "close", "low"),
    ):
        pair = {"column_A": hi, "column_B": lo, "or_equal": True}
        specs.append((check, [hi, lo], "ExpectColumnPairValuesAToBeGreaterThanB", pair))
    return specs


def _bar_window_specs(start: datetime, end: datetime) -> list[_Spec]:
    """A unique key, every ``ts`` inside ``[start, end)`` and no negative volume."""
    import pandas as pd

    key = list(BAR_UNIQUE_KEY)
    window = {
        "column": "ts",
        "min_value": pd.Timestamp(start),
        "max_value": pd.Timestamp(end),
        "strict_max": True,
    }
    volume = {"column": "volume", "min_value": 0}
    return [
        ("unique_key", key, "ExpectCompoundColumnsToBeUnique", {"column_list": key}),
        ("ts_in_window", ["ts"], "ExpectColumnValuesToBeBetween", window),
        ("volume_non_negative", ["volume"], "ExpectColumnValuesToBeBetween", volume),
    ]


def _bar_score_specs(policy: QualityPolicy) -> list[_Spec]:
    """Return outliers, stale-bar shares and repeated closes, on the columns of ``quality_bar_scores``."""
    outlier = {"column": RETURN_Z_COLUMN, "max_value": policy.outlier_sigmas}
    specs: list[_Spec] = [("return_outlier", [RETURN_Z_COLUMN], "ExpectColumnValuesToBeBetween", outlier)]
    for check, share in (
        ("stale_bars", policy.max_stale_share),
        ("stale_bars_severe", policy.max_stale_share_error),
    ):
        stale = {"column": STALE_COLUMN, "max_value": 0, "mostly": 1.0 - share}
        specs.append((check, [STALE_COLUMN], "ExpectColumnValuesToBeBetween", stale))
    run = {"column": CLOSE_RUN_COLUMN, "max_value": policy.max_close_run}
    specs.append(("repeated_close", [CLOSE_RUN_COLUMN], "ExpectColumnValuesToBeBetween", run))
    return specs


def features_suite(policy: QualityPolicy | None = None, realized: bool = False) -> ExpectationSuite:
    """The daily-features expectation suite (see the module docstring).

    Parameters
    ----------
    policy : QualityPolicy | None
        Severities and thresholds; defaults when ``None``.
    realized : bool
        Rows built from imported realized measures: only keys and ``rv`` are required, and the bar
        coverage checks do not apply.

    Returns
    -------
    great_expectations.ExpectationSuite
    """
    policy = policy or QualityPolicy()
    required = REALIZED_FEATURE_REQUIRED_COLUMNS if realized else FEATURE_REQUIRED_COLUMNS
    specs: list[_Spec] = []
    for col in FEATURE_KEY_COLUMNS:
        specs.append(("key_not_null", [col], "ExpectColumnValuesToNotBeNull", {"column": col}))
    for col in required:
        if col not in FEATURE_KEY_COLUMNS:
            specs.append(("required_not_null", [col], "ExpectColumnValuesToNotBeNull", {"column": col}))
    for check, col in (("rv_non_negative", "rv"), ("bv_non_negative", "bv")):
        bounds = {"column": col, "min_value": 0, "max_value": _FINITE_MAX}
        specs.append((check, [col], "ExpectColumnValuesToBeBetween", bounds))
    key = list(FEATURE_KEY_COLUMNS)
    specs.append(("unique_key", key, "ExpectCompoundColumnsToBeUnique", {"column_list": key}))
    if not realized:  # coverage is bars present / bars expected: realized rows have no bars
        unit = {"column": "coverage", "min_value": 0, "max_value": 1}
        specs.append(("coverage_in_unit_interval", ["coverage"], "ExpectColumnValuesToBeBetween", unit))
        low = {"column": "coverage", "min_value": policy.min_coverage}
        specs.append(("coverage_low", ["coverage"], "ExpectColumnValuesToBeBetween", low))
    specs.append(("non_empty", [], "ExpectTableRowCountToBeBetween", {"min_value": 1}))
    return _suite(FEATURES_SUITE, specs, policy)
