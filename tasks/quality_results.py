"""What a data-quality check returns: :class:`CheckOutcome`, :class:`QualityReport`, plain JSON values.

Everything here is plain Python: GX result objects break Prefect's result serialization, so every
value a report carries goes through :func:`to_jsonable`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from tasks.quality_policy import Severity


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
