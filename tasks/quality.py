"""Data quality for bars and daily features: great-expectations suites, severities, verdicts.

Pure functions first (polars in, plain Python out, no I/O and no Prefect), then the Prefect ``@task``
entry points that read a partition through ``warehouse/``, validate it, store the outcome in
``dq_results`` and publish a table artifact.

How a partition is judged
-------------------------
Each partition's frame is converted with ``to_pandas()`` and validated by a great-expectations 1.x
suite built in code (GX validates pandas, not polars or DuckDB; see DESIGN.md). Every expectation
carries a volrisk *check name* (``high_ge_close``, ``unique_key``, ...). A :class:`QualityPolicy` maps
check names to a severity, ``"error"`` or ``"warning"``; defaults are in :data:`BAR_CHECKS` and
:data:`FEATURE_CHECKS`. A failing error-level check makes the verdict ``passed=False``; failing
warning-level checks are reported and the verdict stands. Nothing here drops or modifies rows: the
return-outlier check only flags.

Bars suite (:data:`BARS_SUITE`)
    keys not null; prices not null, finite and > 0; ``high >= low``, ``high >= open``,
    ``high >= close``, ``low <= open``, ``low <= close``; ``(symbol, ts)`` unique; ``ts`` inside the
    partition window ``[start, end)``; ``volume >= 0`` (nulls allowed); ``|log return|`` at most
    ``outlier_sigmas`` robust sigmas (median/MAD of the partition's close-to-close log returns); the
    partition holds at least one row. The SQL checks ``bar_gaps`` and ``missing_sessions``
    (``warehouse.quality``) join the same report in the task entry point.
Daily features suite (:data:`FEATURES_SUITE`)
    keys and :data:`FEATURE_REQUIRED_COLUMNS` not null (NaN counts as null); ``rv`` and ``bv``
    finite and >= 0; ``coverage`` in [0, 1]; ``(symbol, session_date)`` unique; ``coverage`` at least
    ``min_coverage`` (warning); at least one row.

Everything a task returns is a plain dict of JSON-able values: GX result objects break Prefect's
result serialization.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
from prefect import task
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError, DataError, WarehouseError
from flows.orchestration import TASK_DEFAULTS
from warehouse.quality import DQ_SCHEMA

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations.expectation import Expectation

logger = logging.getLogger(__name__)

Severity = Literal["error", "warning"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning")

BARS_SUITE = "bars"
FEATURES_SUITE = "daily_features"
SUITES = (BARS_SUITE, FEATURES_SUITE)

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

#: Added column holding |log return - median| / (1.4826 * MAD) within each (symbol, interval).
RETURN_Z_COLUMN = "abs_ret_z"
#: 1 where a bar is stale: open = high = low = close = the previous bar's close (a frozen feed).
STALE_COLUMN = "stale_bar"
#: Length of the run of identical closes that ends at each bar (1 for a bar whose close moved).
CLOSE_RUN_COLUMN = "close_run"
#: Upper bound used as "finite" for values GX compares (inf fails it, every real price passes).
_FINITE_MAX = 1e300

#: Check names of the bars suite and their default severity.
BAR_CHECKS: dict[str, Severity] = {
    "key_not_null": "error",
    "price_not_null": "error",
    "price_positive": "error",
    "high_ge_low": "error",
    "high_ge_open": "error",
    "high_ge_close": "error",
    "low_le_open": "error",
    "low_le_close": "error",
    "unique_key": "error",
    "ts_in_window": "error",
    "volume_non_negative": "warning",
    "return_outlier": "warning",
    "stale_bars": "warning",
    "stale_bars_severe": "error",
    "repeated_close": "warning",
    "non_empty": "warning",
    "bar_gaps": "warning",
    "missing_sessions": "warning",
}
#: Check names of the daily-features suite and their default severity.
FEATURE_CHECKS: dict[str, Severity] = {
    "key_not_null": "error",
    "required_not_null": "error",
    "rv_non_negative": "error",
    "bv_non_negative": "error",
    "coverage_in_unit_interval": "error",
    "unique_key": "error",
    "coverage_low": "warning",
    "non_empty": "warning",
}
_SUITE_CHECKS: dict[str, dict[str, Severity]] = {BARS_SUITE: BAR_CHECKS, FEATURES_SUITE: FEATURE_CHECKS}


# --------------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------------


class QualityPolicy(BaseModel):
    """Severity per check and the thresholds the suites use.

    Parameters
    ----------
    severities : dict[str, Severity]
        Overrides of the default severities. A key is a check name (``"volume_non_negative"``,
        applies to every suite that has it), ``"<suite>.<check>"`` (``"bars.unique_key"``), or either
        followed by ``":<column>"`` (``"price_positive:volume"``) to target one column. The most
        specific key wins. Unknown suites or checks raise :class:`ConfigError`.
    outlier_sigmas : float
        ``return_outlier`` flags ``|log return|`` beyond this many robust sigmas (default 10).
    min_coverage : float
        ``coverage_low`` flags sessions whose coverage is below this (default 0.8, the same as
        ``tasks.features``' ``coverage_threshold``).
    gap_factor : float
        ``bar_gaps`` reports consecutive bars further apart than this many intervals (default 1.5,
        i.e. any missing bar); only the time inside the instrument's sessions counts.
    max_stale_share : float
        ``stale_bars`` (a warning) flags a partition where more than this share of bars are stale:
        open = high = low = close = the previous close (default 0.10; the bundled real data stays
        under 0.013 in every month, 0.062 for SPY's minute bars with their pre- and post-market).
    max_stale_share_error : float
        ``stale_bars_severe`` (an error: the month is kept out of features) above this share
        (default 0.20).
    stale_min_bars : int
        Partitions with fewer bars skip the two stale-share checks: a share of a few bars says
        nothing (default 100; an hourly SPY month has about 150).
    max_close_run : int
        ``repeated_close`` flags a run of more than this many bars with the same close (default 30;
        the bundled real data's longest run is 11).
    max_examples : int
        Example unexpected values kept per failing check (default 5).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    severities: dict[str, Severity] = Field(default_factory=dict)
    outlier_sigmas: float = Field(default=10.0, gt=0)
    min_coverage: float = Field(default=0.8, ge=0, le=1)
    gap_factor: float = Field(default=1.5, gt=0)
    max_stale_share: float = Field(default=0.10, ge=0, le=1)
    stale_min_bars: int = Field(default=100, ge=0)
    max_stale_share_error: float = Field(default=0.20, ge=0, le=1)
    max_close_run: int = Field(default=30, ge=1)
    max_examples: int = Field(default=5, ge=1, le=100)

    @field_validator("severities")
    @classmethod
    def _known_checks(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        known = set(BAR_CHECKS) | set(FEATURE_CHECKS)
        for key in value:
            name = key.split(":", 1)[0]
            suite, _, check = name.rpartition(".")
            if suite and suite not in _SUITE_CHECKS:
                raise ValueError(f"unknown suite {suite!r} in severity key {key!r}; expected {SUITES}")
            checks = _SUITE_CHECKS[suite] if suite else known
            if check not in checks:
                raise ValueError(
                    f"unknown check {check!r} in severity key {key!r}; expected one of {sorted(checks)}"
                )
        return value

    def severity(self, suite: str, check: str, columns: str = "") -> Severity:
        """Severity of ``check`` (on ``columns``, comma-joined) in ``suite`` under this policy."""
        keys = []
        if columns:
            keys += [f"{suite}.{check}:{columns}", f"{check}:{columns}"]
        keys += [f"{suite}.{check}", check]
        for key in keys:
            if key in self.severities:
                return self.severities[key]
        return _SUITE_CHECKS.get(suite, {}).get(check, "error")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> QualityPolicy:
        """Build a policy from a plain mapping (e.g. parsed YAML/JSON); ``None`` gives the defaults.

        Raises
        ------
        ConfigError
            Naming the offending field, check or severity.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"quality policy must be a mapping; got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid quality policy: {problems}") from None

    @classmethod
    def from_yaml(cls, source: str | Path) -> QualityPolicy:
        """Load a policy from a YAML file path or YAML text.

        Raises
        ------
        ConfigError
            If the file is missing, the YAML does not parse or the policy is invalid.
        """
        import yaml

        text = source
        if isinstance(source, Path) or (
            isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
        ):
            path = Path(source)
            if not path.is_file():
                raise ConfigError(f"quality policy file {path} does not exist")
            text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(str(text))
        except yaml.YAMLError as exc:
            raise ConfigError(f"quality policy {source}: not valid YAML ({exc})") from None
        return cls.from_mapping(data or {})


def load_policy(policy: QualityPolicy | Mapping[str, Any] | str | Path | None) -> QualityPolicy:
    """Coerce a policy given as an object, mapping, YAML path/text or ``None`` (defaults)."""
    if isinstance(policy, QualityPolicy):
        return policy
    if isinstance(policy, str | Path):
        return QualityPolicy.from_yaml(policy)
    return QualityPolicy.from_mapping(policy)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckOutcome:
    """One check on one partition, in plain JSON-able values.

    Attributes
    ----------
    suite, check, columns : str
        Suite, volrisk check name and the column(s) it looked at (comma-joined, ``""`` for table).
    severity : Severity
        The level the policy gave the check.
    success : bool
        Whether the check held.
    expectation_type : str
        The GX expectation type, or ``"sql:<function>"`` for warehouse-side checks.
    element_count, unexpected_count : int | None
        Rows looked at and rows that broke the check.
    unexpected_percent : float | None
        Share of non-null rows that broke it, in percent.
    observed_value : Any
        What GX observed (aggregate checks) or the unexpected percent (row checks).
    examples : list[dict[str, Any]]
        A few unexpected values with their row number and key columns.
    message : str
        One line a person can act on.
    """

    suite: str
    check: str
    columns: str
    severity: Severity
    success: bool
    expectation_type: str
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (``json.dumps``-able)."""
        return asdict(self)


@dataclass(frozen=True)
class QualityReport:
    """The verdict on one partition.

    Attributes
    ----------
    suite, partition : str
        Which suite judged which partition (``"BTC-USDT/1h/2020-01-01..2020-02-01"``).
    row_count : int
        Rows validated.
    outcomes : list[CheckOutcome]
        Every check, in suite order.
    validation_seconds : float
        Wall time of the GX validation.
    notes : list[str]
        Checks that could not run, and why.
    """

    suite: str
    partition: str
    row_count: int
    outcomes: list[CheckOutcome]
    validation_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[CheckOutcome]:
        """Failed checks at error level."""
        return [o for o in self.outcomes if not o.success and o.severity == "error"]

    @property
    def warnings(self) -> list[CheckOutcome]:
        """Failed checks at warning level."""
        return [o for o in self.outcomes if not o.success and o.severity == "warning"]

    @property
    def passed(self) -> bool:
        """True unless an error-level check failed."""
        return not self.errors

    def with_outcomes(self, outcomes: Iterable[CheckOutcome], notes: Iterable[str] = ()) -> QualityReport:
        """A copy with more outcomes (e.g. the SQL checks) and notes appended."""
        return replace(self, outcomes=[*self.outcomes, *outcomes], notes=[*self.notes, *notes])

    def summary(self) -> str:
        """One line: verdict, counts and the failed check names."""
        verdict = "PASSED" if self.passed else "FAILED"
        failed = [f"{o.check}({o.columns})" if o.columns else o.check for o in self.errors]
        warned = [f"{o.check}({o.columns})" if o.columns else o.check for o in self.warnings]
        text = f"{self.suite} {self.partition}: {verdict}, {self.row_count} rows, {len(self.outcomes)} checks"
        if failed:
            text += f"; errors: {', '.join(failed)}"
        if warned:
            text += f"; warnings: {', '.join(warned)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain, ``json.dumps``-able dict: verdict, counts, errors, warnings and every check."""
        return {
            "suite": self.suite,
            "partition": self.partition,
            "passed": self.passed,
            "row_count": self.row_count,
            "n_checks": len(self.outcomes),
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "errors": [o.to_dict() for o in self.errors],
            "warnings": [o.to_dict() for o in self.warnings],
            "checks": [o.to_dict() for o in self.outcomes],
            "notes": list(self.notes),
            "validation_seconds": round(self.validation_seconds, 4),
        }


def to_jsonable(value: Any) -> Any:
    """Convert GX/numpy/pandas values to plain JSON values (NaN -> None, timestamps -> ISO text)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and not hasattr(value, "__len__"):
        try:
            return to_jsonable(item())
        except (TypeError, ValueError):
            pass
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamp
    if callable(isoformat):
        try:
            return str(isoformat())
        except (TypeError, ValueError):  # NaT
            return None
    if type(value).__name__ in {"NaTType", "NAType"}:
        return None
    return str(value)


# --------------------------------------------------------------------------------------------------
# great-expectations runtime (created once per process)
# --------------------------------------------------------------------------------------------------


@dataclass
class _GxRuntime:
    context: AbstractDataContext
    batch_definition: BatchDefinition
    import_seconds: float
    context_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)


_GX: _GxRuntime | None = None
_GX_INIT_LOCK = threading.Lock()


def _gx_runtime() -> _GxRuntime:
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
            _GX = _GxRuntime(context, batch_definition, t1 - t0, t2 - t1)
            logger.debug("great-expectations: import %.2fs, ephemeral context %.3fs", t1 - t0, t2 - t1)
    assert _GX is not None
    return _GX


def gx_runtime_stats() -> dict[str, float]:
    """Seconds spent importing great-expectations and creating the (cached) ephemeral context."""
    runtime = _gx_runtime()
    return {"import_seconds": runtime.import_seconds, "context_seconds": runtime.context_seconds}


# --------------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------------


#: (check name, columns, GX expectation class name, keyword arguments)
_Spec = tuple[str, Sequence[str], str, dict[str, Any]]


def _suite(name: str, specs: list[_Spec], policy: QualityPolicy) -> ExpectationSuite:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    _gx_runtime()  # GX resolves suites against the active (ephemeral) context
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
        validates must carry :data:`RETURN_Z_COLUMN` (see :func:`add_return_zscore`),
        :data:`STALE_COLUMN` and :data:`CLOSE_RUN_COLUMN` (see :func:`add_staleness`).
    """
    import pandas as pd

    policy = policy or QualityPolicy()
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
    key = list(BAR_UNIQUE_KEY)
    specs.append(("unique_key", key, "ExpectCompoundColumnsToBeUnique", {"column_list": key}))
    window = {
        "column": "ts",
        "min_value": pd.Timestamp(start),
        "max_value": pd.Timestamp(end),
        "strict_max": True,
    }
    specs.append(("ts_in_window", ["ts"], "ExpectColumnValuesToBeBetween", window))
    volume = {"column": "volume", "min_value": 0}
    specs.append(("volume_non_negative", ["volume"], "ExpectColumnValuesToBeBetween", volume))
    outlier = {"column": RETURN_Z_COLUMN, "max_value": policy.outlier_sigmas}
    specs.append(("return_outlier", [RETURN_Z_COLUMN], "ExpectColumnValuesToBeBetween", outlier))
    for check, share in (
        ("stale_bars", policy.max_stale_share),
        ("stale_bars_severe", policy.max_stale_share_error),
    ):
        stale = {"column": STALE_COLUMN, "max_value": 0, "mostly": 1.0 - share}
        specs.append((check, [STALE_COLUMN], "ExpectColumnValuesToBeBetween", stale))
    run = {"column": CLOSE_RUN_COLUMN, "max_value": policy.max_close_run}
    specs.append(("repeated_close", [CLOSE_RUN_COLUMN], "ExpectColumnValuesToBeBetween", run))
    specs.append(("non_empty", [], "ExpectTableRowCountToBeBetween", {"min_value": 1}))
    return _suite(BARS_SUITE, specs, policy)


def features_suite(policy: QualityPolicy | None = None) -> ExpectationSuite:
    """The daily-features expectation suite (see the module docstring).

    Parameters
    ----------
    policy : QualityPolicy | None
        Severities and thresholds; defaults when ``None``.

    Returns
    -------
    great_expectations.ExpectationSuite
    """
    policy = policy or QualityPolicy()
    specs: list[_Spec] = []
    for col in FEATURE_KEY_COLUMNS:
        specs.append(("key_not_null", [col], "ExpectColumnValuesToNotBeNull", {"column": col}))
    for col in FEATURE_REQUIRED_COLUMNS:
        if col not in FEATURE_KEY_COLUMNS:
            specs.append(("required_not_null", [col], "ExpectColumnValuesToNotBeNull", {"column": col}))
    for check, col in (("rv_non_negative", "rv"), ("bv_non_negative", "bv")):
        bounds = {"column": col, "min_value": 0, "max_value": _FINITE_MAX}
        specs.append((check, [col], "ExpectColumnValuesToBeBetween", bounds))
    unit = {"column": "coverage", "min_value": 0, "max_value": 1}
    specs.append(("coverage_in_unit_interval", ["coverage"], "ExpectColumnValuesToBeBetween", unit))
    key = list(FEATURE_KEY_COLUMNS)
    specs.append(("unique_key", key, "ExpectCompoundColumnsToBeUnique", {"column_list": key}))
    low = {"column": "coverage", "min_value": policy.min_coverage}
    specs.append(("coverage_low", ["coverage"], "ExpectColumnValuesToBeBetween", low))
    specs.append(("non_empty", [], "ExpectTableRowCountToBeBetween", {"min_value": 1}))
    return _suite(FEATURES_SUITE, specs, policy)


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def add_staleness(frame: pl.DataFrame) -> pl.DataFrame:
    """Add :data:`STALE_COLUMN` and :data:`CLOSE_RUN_COLUMN`, per (symbol, interval) in time order.

    A stale bar repeats the previous close with no range at all (open = high = low = close): a
    frozen feed or a vendor filling holes. A thin market's one-trade bar at a new price is not stale.
    """
    keys = [c for c in ("symbol", "interval") if c in frame.columns]
    ordered = frame.sort([*keys, "ts"]) if frame.height else frame
    prev = pl.col("close").shift(1).over(keys) if keys else pl.col("close").shift(1)
    flat = (
        (pl.col("open") == pl.col("high"))
        & (pl.col("high") == pl.col("low"))
        & (pl.col("low") == pl.col("close"))
    )
    moved = (pl.col("close") != prev).fill_null(True)
    run_id = moved.cast(pl.Int64).cum_sum().over(keys) if keys else moved.cast(pl.Int64).cum_sum()
    return ordered.with_columns(
        (flat & (pl.col("close") == prev).fill_null(False)).cast(pl.Int8).alias(STALE_COLUMN),
        pl.int_range(1, pl.len() + 1).over([*keys, run_id]).alias(CLOSE_RUN_COLUMN),
    )


def add_return_zscore(frame: pl.DataFrame, sigma_floor: float = 0.0) -> pl.DataFrame:
    """Add :data:`RETURN_Z_COLUMN`: the robust z-score of each bar's close-to-close log return.

    Returns are taken in time order within each (symbol, interval); the median and the MAD (scaled by
    1.4826 to a normal sigma) are those of the partition. The row order and every row are kept.
    The score is null for the first bar, for a non-positive or non-finite close on either side, and
    when the partition's robust sigma is not above ``sigma_floor`` (e.g. constant prices).

    Parameters
    ----------
    frame : pl.DataFrame
        Bars with ``symbol``, ``interval``, ``ts`` and ``close``.
    sigma_floor : float
        Robust sigmas at or below this are treated as unknown.

    Returns
    -------
    pl.DataFrame
        ``frame`` with the added column, same rows in the same order.
    """
    group = ["symbol", "interval"]
    close = pl.col("close")
    log_close = pl.when((close > 0) & close.is_finite()).then(close.log())
    single = frame.height == 0 or all(frame[c].n_unique() == 1 for c in group)
    in_order = single and frame["ts"].null_count() == 0 and frame["ts"].is_sorted()

    def score(ret: pl.Expr, by: list[str] | None) -> pl.Expr:
        def per(expr: pl.Expr) -> pl.Expr:
            return expr.over(by) if by else expr

        med = per(ret.median())
        sigma = per((ret - med).abs().median()) * 1.4826
        return pl.when(sigma > sigma_floor).then((ret - med).abs() / sigma)

    if in_order:  # the usual partition: one symbol and interval, in time order (numpy: O(n) medians)
        returns = frame.select((log_close - log_close.shift(1)).cast(pl.Float64))
        values = returns.to_series().to_numpy(allow_copy=True).astype(np.float64)
        z = np.full(values.shape, np.nan)
        if np.isfinite(values).any():
            med = float(np.nanmedian(values))
            dev = np.abs(values - med)
            sigma = 1.4826 * float(np.nanmedian(dev))
            if sigma > sigma_floor:
                z = dev / sigma
        return frame.with_columns(pl.Series(RETURN_Z_COLUMN, z, dtype=pl.Float64).fill_nan(None))
    idx = "__volrisk_row"
    ret = pl.col("__ret")
    return (
        frame.with_row_index(idx)
        .sort([*group, "ts"], nulls_last=True, maintain_order=True)
        .with_columns((log_close - log_close.shift(1).over(group)).alias("__ret"))
        .with_columns(score(ret, group).alias(RETURN_Z_COLUMN))
        .sort(idx)
        .drop(idx, "__ret")
    )


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


def _run_suite(
    frame: pl.DataFrame,
    suite: ExpectationSuite,
    suite_name: str,
    partition: str,
    policy: QualityPolicy,
    id_columns: Sequence[str],
) -> QualityReport:
    runtime = _gx_runtime()
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
        config = r.expectation_config
        meta = dict(config.meta or {}) if config is not None else {}
        check = str(meta.get("volrisk_check", config.type if config is not None else "unknown"))
        columns = str(meta.get("volrisk_columns", ""))
        res: Mapping[str, Any] = r.result or {}
        error = _exception_text(r.exception_info)
        success = bool(r.success) and error is None
        observed = res.get("observed_value", res.get("unexpected_percent"))
        outcomes.append(
            (
                int(meta.get("volrisk_order", len(outcomes))),
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
        )
    outcomes.sort(key=lambda pair: pair[0])
    return QualityReport(
        suite=suite_name,
        partition=partition,
        row_count=frame.height,
        outcomes=[o for _, o in outcomes],
        validation_seconds=seconds,
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


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
    return _run_suite(scored, bars_suite(lo, hi, policy), BARS_SUITE, partition, policy, ("ts",))


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
        If a column of :data:`FEATURE_REQUIRED_COLUMNS` is missing.
    """
    policy = load_policy(policy)
    _require_columns(frame, FEATURE_REQUIRED_COLUMNS, partition, "daily features")
    return _run_suite(
        frame, features_suite(policy), FEATURES_SUITE, partition, policy, ("symbol", "session_date")
    )


def _first_value(frame: pl.DataFrame, column: str) -> str:
    if column in frame.columns:
        values = frame[column].drop_nulls()
        if values.len():
            return str(values[0])
    return "?"


# --------------------------------------------------------------------------------------------------
# Warehouse-side checks, partitions, rows for dq_results and artifacts
# --------------------------------------------------------------------------------------------------


def in_session_gaps(gaps: pl.DataFrame, windows: pl.DataFrame | None, step_s: int) -> pl.DataFrame:
    """Keep the part of each gap that lies inside a session; drop gaps with no missing in-session bar.

    Weekends, overnight closes and holidays are not gaps: the instrument does not trade then.

    Parameters
    ----------
    gaps : pl.DataFrame
        :func:`warehouse.quality.find_gaps` output (``gap_start`` is the last bar before the gap).
    windows : pl.DataFrame | None
        ``[open_utc, close_utc]`` of every session around the partition; ``None`` for a calendar
        that trades all day (``24x7``), whose gaps all count.
    step_s : int
        The bar interval in seconds.

    Returns
    -------
    pl.DataFrame
        The same columns; ``missing_bars`` counts only bars missing inside sessions.
    """
    if windows is None or gaps.height == 0:
        return gaps
    # The missing bars are the slots gap_start + k * step (k >= 1) before gap_end; count those that
    # start inside a session: k from ceil((max(slot 1, open) - gap_start) / step) to
    # ceil((min(gap_end, close) - gap_start) / step) - 1.
    start_s = pl.col("gap_start").dt.epoch("s")
    lo_s = pl.max_horizontal(pl.col("gap_start").dt.epoch("s") + step_s, pl.col("open_utc").dt.epoch("s"))
    hi_s = pl.min_horizontal(pl.col("gap_end").dt.epoch("s"), pl.col("close_utc").dt.epoch("s"))
    first = -((start_s - lo_s) // step_s)  # ceil division
    after_last = -((start_s - hi_s) // step_s)
    counted = (
        gaps.with_row_index("_gap")
        .join(windows.select("open_utc", "close_utc"), how="cross")
        .with_columns((after_last - first).clip(lower_bound=0).alias("_slots"))
        .group_by("_gap", maintain_order=True)
        .agg(pl.col("_slots").sum())
    )
    kept = gaps.with_row_index("_gap").join(counted, on="_gap")
    kept = kept.with_columns(pl.col("_slots").cast(gaps["missing_bars"].dtype).alias("missing_bars"))
    return kept.filter(pl.col("missing_bars") > 0).drop("_gap", "_slots")


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


def parse_utc(value: datetime | date | str, name: str) -> datetime:
    """Read a UTC instant from a datetime, a date or ISO text (naive means UTC).

    Raises
    ------
    ConfigError
        Naming the parameter when the value cannot be read.
    """
    if isinstance(value, datetime):
        out = value
    elif isinstance(value, date):
        out = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            out = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"invalid {name} {value!r}: expected an ISO date or datetime such as '2020-01-01' "
                "or '2020-01-01T00:00:00Z'"
            ) from None
    else:
        raise ConfigError(f"invalid {name} {value!r}: expected a date, datetime or ISO text")
    return out.replace(tzinfo=UTC) if out.tzinfo is None else out.astimezone(UTC)


def parse_window(start: datetime | date | str, end: datetime | date | str) -> tuple[datetime, datetime]:
    """Parse a half-open UTC window ``[start, end)``; raises ConfigError unless ``start < end``."""
    lo, hi = parse_utc(start, "start"), parse_utc(end, "end")
    if not lo < hi:
        raise ConfigError(f"invalid window: start {lo.isoformat()} must be before end {hi.isoformat()}")
    return lo, hi


def _fmt(ts: datetime) -> str:
    return ts.date().isoformat() if ts.time() == datetime.min.time() else ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def partition_label(symbol: str, interval: str, start: datetime, end: datetime) -> str:
    """``"BTC-USDT/1h/2020-01-01..2020-02-01"`` (times shown only when not midnight UTC)."""
    return f"{symbol}/{interval}/{_fmt(start.astimezone(UTC))}..{_fmt(end.astimezone(UTC))}"


def artifact_key(suite: str, symbol: str, interval: str | None = None) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes): ``dq-bars-btc-usdt-1h``."""
    short = "bars" if suite == BARS_SUITE else "features"
    raw = "-".join(p for p in ("dq", short, symbol, interval) if p)
    key = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    return re.sub(r"-{2,}", "-", key)


def dq_rows(report: QualityReport, run_id: str, created_at: datetime | None = None) -> pl.DataFrame:
    """The report as ``dq_results`` rows (:data:`warehouse.quality.DQ_SCHEMA`).

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


def session_windows(calendar: str, start: datetime, end: datetime) -> pl.DataFrame | None:
    """``[open_utc, close_utc]`` of every session of ``calendar`` that overlaps ``[start, end)``.

    ``None`` for the ``24x7`` calendar (it never closes).
    """
    from tasks.calendars import CRYPTO, session_bounds, sessions_between

    if calendar == CRYPTO:
        return None
    days = sessions_between(calendar, (start - timedelta(days=4)).date(), (end + timedelta(days=4)).date())
    if not days:
        return pl.DataFrame(
            schema={"open_utc": pl.Datetime("us", "UTC"), "close_utc": pl.Datetime("us", "UTC")}
        )
    return (
        session_bounds(calendar, days)
        .filter(pl.col("open").is_not_null())
        .select(pl.col("open").alias("open_utc"), pl.col("close").alias("close_utc"))
    )


def expected_session_windows(
    calendar: str, start: datetime, end: datetime
) -> tuple[list[date], pl.DataFrame | None]:
    """Sessions of ``calendar`` lying wholly inside ``[start, end)`` and their UTC windows.

    Returns
    -------
    tuple[list[date], pl.DataFrame | None]
        The session dates, and ``[session_date, open_utc, close_utc]`` windows (``None`` for the
        ``24x7`` calendar, whose session is the UTC day).
    """
    from tasks.calendars import CRYPTO, session_bounds, sessions_between

    candidates = sessions_between(calendar, start.date(), end.date())
    if not candidates:
        return [], None
    bounds = session_bounds(calendar, candidates).filter(
        pl.col("open").is_not_null() & (pl.col("open") >= start) & (pl.col("close") <= end)
    )
    sessions = bounds["session_date"].to_list()
    if calendar == CRYPTO:
        return sessions, None
    return sessions, bounds.select(
        "session_date", pl.col("open").alias("open_utc"), pl.col("close").alias("close_utc")
    )


# --------------------------------------------------------------------------------------------------
# Prefect entry points
# --------------------------------------------------------------------------------------------------


# run_id labels the results a run writes; it is not part of what the check depends on.
_DQ_TASK = {**TASK_DEFAULTS, "cache_policy": TASK_DEFAULTS["cache_policy"] - "run_id"}


def _existing_warehouse(path: str) -> str:
    if not Path(path).is_file():
        raise WarehouseError(f"warehouse {path} does not exist; ingest bars before checking their quality")
    return path


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

    Reads ``[start, end)`` through :func:`warehouse.bars.read_bars`, runs the bars suite, adds the
    SQL checks ``bar_gaps`` and ``missing_sessions`` (sessions from ``calendar``, else the
    instrument's registered calendar; skipped with a note when neither is known), upserts every
    outcome into ``dq_results`` and publishes the table artifact ``dq-bars-<symbol>-<interval>``.

    Parameters
    ----------
    warehouse_path : str
        DuckDB file.
    symbol, interval : str
        The partition.
    start, end : str
        ISO dates/datetimes (UTC) of the half-open window.
    data_version : str
        Content hash of the inputs; part of the cache key only.
    run_id : str
        Run recorded with the results.
    policy : dict | None
        :class:`QualityPolicy` fields (severity overrides, thresholds).
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
    from core.symbols import validate_symbol
    from warehouse.bars import read_bars
    from warehouse.catalog import get_instrument
    from warehouse.db import session, writer
    from warehouse.quality import interval_seconds, write_dq_results

    _existing_warehouse(warehouse_path)
    validate_symbol(symbol)
    interval_seconds(interval)
    rules = load_policy(policy)
    lo, hi = parse_window(start, end)
    partition = partition_label(symbol, interval, lo, hi)
    with session(warehouse_path) as con:
        bars = read_bars(con, symbol, interval, lo, hi)
        if calendar is None:
            instrument = get_instrument(con, symbol)
            calendar = instrument.calendar if instrument else None
        extra, notes = _calendar_checks(con, symbol, interval, lo, hi, calendar, rules, bars.height)
    report = validate_bars(bars, lo, hi, rules, partition).with_outcomes(extra, notes)
    with writer(warehouse_path) as con:  # serialized with every other writer
        write_dq_results(con, dq_rows(report, run_id))
    key = artifact_key(BARS_SUITE, symbol, interval)
    _publish(report, key)
    _log(report)
    if fail_on_error and not report.passed:
        raise DataError(report.summary(), location=partition)
    return task_summary(
        report,
        n_gaps=extra[0].unexpected_count,
        n_missing_sessions=extra[1].unexpected_count if len(extra) > 1 else None,
        artifact_key=key,
        data_version=data_version,
        run_id=run_id,
    )


def _calendar_checks(
    con: Any, symbol: str, interval: str, lo: datetime, hi: datetime, calendar: str | None,
    rules: QualityPolicy, n_bars: int,
) -> tuple[list[CheckOutcome], list[str]]:  # fmt: skip
    """``bar_gaps`` (inside the calendar's sessions) and ``missing_sessions`` outcomes, and notes."""
    from tasks.calendars import validate_calendar
    from warehouse.quality import find_gaps, interval_seconds, missing_sessions

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
    con: Any, symbol: str, start: datetime, end: datetime, version: str = "v1"
) -> pl.DataFrame:
    """One symbol's daily features with ``start <= session_date < end`` (half-open, UTC dates).

    Reads through :func:`warehouse.features.read_features`, whose bounds are inclusive.
    """
    from warehouse.features import read_features

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
        :class:`QualityPolicy` fields.
    fail_on_error : bool
        Raise :class:`DataError` (after recording the results) when the verdict is failed.

    Returns
    -------
    dict
        ``passed``, ``n_errors``, ``n_warnings``, ``errors``, ``warnings``, ``row_count``,
        ``artifact_key``, ``partition``; plain JSON values only.
    """
    from core.symbols import validate_symbol
    from warehouse.db import session, writer
    from warehouse.quality import write_dq_results

    _existing_warehouse(warehouse_path)
    validate_symbol(symbol)
    rules = load_policy(policy)
    lo, hi = parse_window(start, end)
    partition = f"{symbol}/{version}/{_fmt(lo)}..{_fmt(hi)}"
    with session(warehouse_path) as con:
        frame = read_features_partition(con, symbol, lo, hi, version)
    report = validate_features(frame, partition, rules)
    with writer(warehouse_path) as con:  # serialized with every other writer
        write_dq_results(con, dq_rows(report, run_id))
    key = artifact_key(FEATURES_SUITE, symbol, version)
    _publish(report, key)
    _log(report)
    if fail_on_error and not report.passed:
        raise DataError(report.summary(), location=partition)
    return task_summary(report, artifact_key=key, data_version=data_version, run_id=run_id)
