"""Data-quality policy: the suites, their check names and default severities, and the thresholds.

A :class:`QualityPolicy` maps check names to a severity, ``"error"`` or ``"warning"``; defaults are
in :data:`BAR_CHECKS` and :data:`FEATURE_CHECKS`. A failing error-level check makes a partition's
verdict ``passed=False``; failing warning-level checks are reported and the verdict stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError

Severity = Literal["error", "warning"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning")

BARS_SUITE = "bars"
FEATURES_SUITE = "daily_features"
SUITES = (BARS_SUITE, FEATURES_SUITE)

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
