"""HExp and HExpGl (Bollerslev, Hood, Huss & Pedersen 2018, "Risk Everywhere").

For origin ``t`` and horizon ``h``, in levels (:class:`~tasks.models.har_linear.LevelHarForecaster`:
estimation ``window``, OLS/WLS, the insanity filter)::

    hexp     RV(t+h) = b0 + sum_k bk ExpRV_k(t)
    hexp_gl  RV(t+h) = b0 + sum_k bk ExpRV_k(t) + bg GlRV(t)

``ExpRV_k`` is the exponentially weighted mean of the symbol's RV (``rv_d``) with centre of mass
``CoM_k`` sessions (1, 5, 25 and 125 as in the paper): weights ``d^i`` on ``RV(t - i)``,
``d = CoM / (1 + CoM)``, normalized over the sessions available (a missing RV is skipped). The paper
truncates the sum at 500 lags; here it is not truncated (the weight beyond 500 lags is under 2% at
CoM 125), so it runs as a recursion (``scipy.signal.lfilter``) whose value at ``t`` depends on rows up
to ``t`` alone.

``GlRV(t)`` is the market factor (:func:`tasks.models.market_factor.global_factor`): the
cross-sectional mean, over every symbol in ``data.features``, of each symbol's ``ExpRV`` at centre
of mass ``global_com`` (5) as of its last session dated BEFORE ``t`` (at most ``stale_days``
calendar days before, so a symbol that stopped trading drops out). Lagging by one session date means
no market that closes later on the same date leaks into an earlier one. The mean is arithmetic, as
the paper's within-asset-class average (``factor_mean="geometric"`` takes the mean of logs instead,
for symbols of very different scales). With one symbol in the data the factor is that symbol's own
``ExpRV`` of the previous session. HExpGl therefore reads every symbol's features
(``panel_inputs``) and forecasts every symbol in ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl

from core.errors import ConfigError
from tasks.models.base import ModelData, register
from tasks.models.frames import BASE_COLUMNS, check_date, require_columns
from tasks.models.har_linear import Insanity, LevelHarForecaster, Weighting, column
from tasks.models.market_factor import FACTOR, FactorMean, ewma_rv, global_factor
from tasks.models.variance import MeanMode

#: Centres of mass (sessions) of the paper's four EWMAs.
CENTRES: tuple[float, ...] = (1.0, 5.0, 25.0, 125.0)


@register("hexp")
class HExp(LevelHarForecaster):
    """HExp: RV on its EWMAs at centres of mass 1, 5, 25, 125 sessions (BHHP 2018; module docstring)."""

    name = "hexp"
    columns = BASE_COLUMNS
    min_train = 200

    def regressors(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        rv = column(frame, "rv_d")
        return np.column_stack([ewma_rv(rv, com) for com in CENTRES])


@register("hexp_gl")
class HExpGl(HExp):
    """HExpGl: HExp plus the lagged cross-sectional market factor ``GlRV`` (BHHP 2018).

    Parameters
    ----------
    global_com : float
        Centre of mass of the EWMAs averaged into the factor.
    factor_mean : {"arithmetic", "geometric"}
        How the symbols' EWMAs are averaged.
    stale_days : int
        Calendar days after its last session that a symbol still counts in the factor.
    window, weighting, insanity, family, mean, var_scale, calendar
        As :class:`~tasks.models.har_linear.LevelHarForecaster`.
    """

    name = "hexp_gl"
    columns = (*BASE_COLUMNS, FACTOR)
    #: Wants every evaluated symbol's features in ``data`` (the factor is a cross-section).
    panel_inputs: ClassVar[bool] = True

    def __init__(
        self,
        global_com: float = 5.0,
        factor_mean: FactorMean = "arithmetic",
        stale_days: int = 10,
        window: int | None = None,
        weighting: Weighting | None = None,
        insanity: Insanity = "mean",
        family: str | None = None,
        mean: MeanMode = "zero",
        var_scale: str | float = "fit",
        calendar: str | Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(window, weighting, insanity, family, mean, var_scale, calendar)
        if isinstance(global_com, bool) or not isinstance(global_com, int | float) or not global_com > 0:
            raise ConfigError(f"global_com must be a positive number; got {global_com!r}")
        if factor_mean not in ("arithmetic", "geometric"):
            raise ConfigError(f"factor_mean must be 'arithmetic' or 'geometric'; got {factor_mean!r}")
        if isinstance(stale_days, bool) or not isinstance(stale_days, int) or stale_days < 1:
            raise ConfigError(f"stale_days must be an integer >= 1; got {stale_days!r}")
        self.global_com = float(global_com)
        self.factor_mean: FactorMean = factor_mean
        self.stale_days = stale_days
        self.too_short: dict[str, int] = {}

    def _model_settings(self) -> dict[str, Any]:
        return {"global_com": self.global_com, "factor_mean": self.factor_mean, "stale_days": self.stale_days}

    def with_factor(self, data: ModelData, last: date | None = None) -> ModelData:
        """``data`` with :data:`FACTOR` joined on by session date (from rows ``<= last`` if given)."""
        require_columns(data.features, BASE_COLUMNS, self.name)
        feats = data.features.drop(FACTOR, strict=False)
        if last is not None:
            feats = feats.filter(pl.col("session_date") <= last)
        factor = global_factor(feats, self.global_com, self.factor_mean, self.stale_days)
        joined = feats.join(factor, on="session_date", how="left", maintain_order="left")
        return replace(data, features=joined)

    def fit(self, data: ModelData, train_end: date) -> Self:
        """Fit each symbol on its sessions ``<= train_end`` (the factor from those sessions only).

        A symbol with fewer than ``min_train`` training sessions still feeds the factor but gets no
        regression of its own (``too_short`` records it with its count); with none long enough, the
        usual error is raised.
        """
        train_end = check_date(train_end, "train_end")
        joined = self.with_factor(data, train_end)
        counts = joined.features.group_by("symbol").len()
        short = counts.filter(pl.col("len") < self.min_train)
        self.too_short = dict(zip(short["symbol"], short["len"], strict=True))
        if short.height < counts.height:
            keep = pl.col("symbol").is_in(list(self.too_short)).not_()
            joined = replace(joined, features=joined.features.filter(keep))
        return super().fit(joined, train_end)

    def predict(self, data: ModelData, origins: Sequence[date], horizon: int = 1) -> pl.DataFrame:
        """Forecasts as :meth:`VarianceForecaster.predict`, the factor joined on first."""
        return super().predict(self.with_factor(data), origins, horizon)

    def regressors(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        factor = column(frame, FACTOR)
        if fill:
            own = np.concatenate([[np.nan], ewma_rv(column(frame, "rv_d"), self.global_com)[:-1]])
            factor = np.where(np.isnan(factor), own, factor)
        return np.column_stack([super().regressors(frame, fill), factor])
