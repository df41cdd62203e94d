"""The experiment spec: everything that defines one walk-forward evaluation, typed and validated.

``evaluate_flow`` takes one :class:`ExperimentSpec` instead of loose parameters; the CLI, the pipeline,
the weekly deployment and a Prefect UI run all build one. The evaluation stores it (its ``params``,
with the per-symbol test windows and fold counts the flow derived), and ``stack_flow`` reads it back
with :meth:`ExperimentSpec.from_params`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.symbols import validate_symbol
from tasks.risk_calibrated import check_calibration

#: The benchmark and the R^2 reference: every evaluation scores them.
ALWAYS_SCORED = ("har", "naive")


class ExperimentSpec(BaseModel):
    """One walk-forward evaluation.

    Attributes
    ----------
    symbols : list[str]
        Symbols with daily features in the warehouse.
    models : list[str] | None
        Registry names (default: every model but the ensemble); HAR-RV and naive are always added.
    test_start, test_end : str | None
        Test window of target sessions (ISO dates; default: the last two years of data).
    train_start : str | None
        Earliest training session (default: all history).
    refit_every : int
        Sessions per fold; every model is refitted each fold.
    name : str
        Evaluation name: the report is ``reports/eval-YYMMDD-<name>.md``.
    device : str
        Torch device for the neural models (``auto``, ``cpu``, ``cuda``, ``mps``).
    window : {"expanding", "rolling"}
        Training window kind; ``train_size`` sessions for ``rolling``.
    train_size : int | None
        Rolling window length in sessions.
    embargo : int | None
        Sessions between a fold's training end and its first target (default horizon + 1).
    stack : bool
        Also stack the models with LightGBM (the ``ensemble``).
    config : dict | None
        Per-model config overrides, e.g. ``{"voltransformer": {"epochs": 20}}``.
    cost_bps : float
        Strategy trading cost in basis points per unit of turnover.
    stack_warmup : int
        With ``stack``, the base models also forecast this many sessions before the test window (not
        scored) so the ensemble has out-of-fold rows to learn from at the first scored session.
    folds_per_task : int
        Folds of one (model, symbol) fitted by one task: the unit of caching and retries. Results do
        not depend on it; larger blocks spend less on orchestration, smaller ones cache finer.
    runner : {"auto", "thread", "process"}
        Where the fold tasks run: threads of the flow's process, worker processes (torch fits in
        parallel, one per core), or ``auto`` (processes for CPU runs with many neural folds).
    calibration : dict | None
        Calibration method per model for the risk backtests (:mod:`tasks.risk_calibrated`), e.g.
        ``{"*": "fhs+aci", "garch": "none"}``; None: the default (every model gets a
        ``<model>+fhs+aci`` twin).
    tuned_on : list[str] | None
        Assets whose results were used to choose settings (model configs, windows); the report counts
        them as in-sample and states the headline over the others apart. None: no asset was.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: list[str] = Field(min_length=1)
    models: list[str] | None = None
    test_start: str | None = None
    test_end: str | None = None
    train_start: str | None = None
    refit_every: int = Field(default=63, ge=1)
    name: str = "pipeline"
    device: str = "auto"
    window: Literal["expanding", "rolling"] = "expanding"
    train_size: int | None = None
    embargo: int | None = None
    stack: bool = True
    config: dict[str, dict[str, Any]] | None = None
    cost_bps: float = 5.0
    stack_warmup: int = Field(default=252, ge=0)
    folds_per_task: int = Field(default=10, ge=1)
    runner: Literal["auto", "thread", "process"] = "auto"
    tuned_on: list[str] | None = None
    calibration: dict[str, Any] | None = None

    @field_validator("models")
    @classmethod
    def _no_empty_model_list(cls, value: list[str] | None) -> list[str] | None:
        return value or None

    @field_validator("calibration")
    @classmethod
    def _known_methods(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        check_calibration(value)
        return value or None

    @field_validator("tuned_on")
    @classmethod
    def _tuned_on_symbols(cls, value: list[str] | None) -> list[str] | None:
        return sorted(dict.fromkeys(validate_symbol(s) for s in value)) if value else None

    def model_list(self, default: list[str]) -> tuple[list[str], bool]:
        """The models to fit (``default`` when none are named, plus HAR and naive) and whether to stack.

        Naming ``ensemble`` among the models turns stacking on; it is fitted by the stack stage.
        """
        names = list(dict.fromkeys([*(self.models or default), *ALWAYS_SCORED]))
        stack = self.stack or "ensemble" in names
        return [n for n in names if n != "ensemble"], stack

    def model_config_for(self, model: str) -> dict[str, Any]:
        """This spec's config overrides of ``model`` (empty when none)."""
        return dict((self.config or {}).get(model) or {})

    def params(
        self,
        models: list[str],
        stack: bool,
        windows: dict[str, list[str]],
        folds: dict[str, int],
        targets: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The stored form: what the report and ``stack_flow`` read back (``targets``: see
        :func:`tasks.evaluate.describe_targets`)."""
        return {
            "symbols": list(self.symbols),
            "models": models + (["ensemble"] if stack else []),
            "test_start": self.test_start,
            "test_end": self.test_end,
            "windows": windows,
            "stack_warmup": self.stack_warmup if stack else 0,
            "train_start": self.train_start,
            "refit_every": self.refit_every,
            "window": self.window,
            "train_size": self.train_size,
            "embargo": self.embargo,
            "cost_bps": self.cost_bps,
            "device": self.device,
            "folds": folds,
            "tuned_on": list(self.tuned_on) if self.tuned_on else None,
            "calibration": dict(self.calibration) if self.calibration else None,
            **({"targets": targets} if targets else {}),
        }

    @classmethod
    def from_params(cls, params: dict[str, Any], name: str) -> ExperimentSpec:
        """The spec of a stored evaluation (its ``params``)."""
        fields = set(cls.model_fields) - {"name", "models"}
        values = {k: v for k, v in params.items() if k in fields}
        values.setdefault("stack_warmup", 0)  # evaluations stored before the warm-up existed had none
        return cls(name=name, **values)
