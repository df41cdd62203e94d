"""GARCH(1,1) and GJR-GARCH(1,1,1) with Student-t innovations, through ``arch``.

Estimation: ``arch.arch_model`` on the training returns in percent (``100 * r``; returns as in
``tasks/models/frames.py``), zero mean (``mean="zero"``) or a constant mean (``mean="train"``),
``dist="t"``, maximum likelihood (``fit``). Nothing after ``train_end`` is read.

Prediction never refits. For an origin ``t`` the fitted parameters are run through the returns from
the first training session up to ``t`` only: a fresh ``arch_model`` on exactly that prefix and
``ARCHModel.forecast(params, horizon=h, start=t)`` (analytic multi-step forecasts). One model per
origin, because ``arch`` derives its variance bounds from the whole series it is given, which would
otherwise let later returns touch earlier forecasts; the backcast (first 75 returns) is the one used
in fitting. ``var`` is the ``h``-step conditional variance (divided by 1e4), ``rv = var / c`` with the
training variance scale ``c``.

The natural family is ``student_t`` with ``arch``'s fitted ``nu`` (not re-estimated); ``gaussian`` or
``fhs`` are fitted on ``arch``'s standardized residuals of the training window.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from arch import arch_model

from core.errors import DataError
from tasks.models.base import register
from tasks.models.families import Family, StudentT
from tasks.models.variance import VarianceForecaster

logger = logging.getLogger(__name__)

#: Returns are modelled in percent: ``y = 100 * r``.
PERCENT = 100.0


@dataclass(frozen=True)
class GarchState:
    """Fitted parameters (``arch`` order), their names and the in-sample conditional variances."""

    params: np.ndarray
    names: tuple[str, ...]
    insample_var: np.ndarray  # return variance (not percent) per training row
    converged: bool

    def param(self, name: str) -> float:
        """One parameter by ``arch`` name (e.g. ``nu``, ``alpha[1]``)."""
        return float(self.params[self.names.index(name)])


class _GarchBase(VarianceForecaster):
    """Shared GARCH-t machinery; subclasses set the asymmetry order ``o``."""

    forecasts = "variance"
    default_family = "student_t"
    min_train = 250
    o = 0

    def _settings(self) -> dict[str, Any]:
        return {"p": 1, "o": self.o, "q": 1, "dist": "t"}

    def _arch(self, y: np.ndarray) -> Any:
        return arch_model(
            y,
            mean="Zero" if self.mean == "zero" else "Constant",
            vol="GARCH",
            p=1,
            o=self.o,
            q=1,
            dist="t",
            rescale=False,
        )

    def _fit_symbol(self, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> GarchState:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self._arch(PERCENT * ret).fit(disp="off", show_warning=False)
        converged = res.convergence_flag == 0
        if not converged:
            logger.warning(
                "%s on %s: optimizer did not converge (%s)",
                self.name,
                frame["symbol"][0],
                res.convergence_flag,
            )
        params = np.asarray(res.params, dtype=float)
        if not np.all(np.isfinite(params)):
            raise DataError(f"{self.name} on {frame['symbol'][0]!r}: non-finite parameters {params.tolist()}")
        var = np.asarray(res.conditional_volatility, dtype=float) ** 2 / PERCENT**2
        return GarchState(params=params, names=tuple(res.params.index), insample_var=var, converged=converged)

    def _state_mean(self, state: GarchState, mean: float) -> float:
        return state.param("mu") / PERCENT if self.mean == "train" else 0.0

    def _natural_family(self, state: GarchState) -> Family | None:
        return StudentT(df=state.param("nu")) if self.family == "student_t" else None

    def _insample(self, state: GarchState, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> np.ndarray:
        return state.insample_var

    def _forecast(
        self,
        state: GarchState,
        frame: pl.DataFrame,
        ret: np.ndarray,
        mean: float,
        positions: np.ndarray,
        horizon: int,
    ) -> np.ndarray:
        y = PERCENT * ret
        out = np.empty(positions.size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, p in enumerate(positions.tolist()):
                prefix = y[: p + 1]
                if not np.all(np.isfinite(prefix)):
                    day = frame["session_date"][int(np.argmax(~np.isfinite(prefix)))]
                    raise DataError(
                        f"{self.name}: non-finite return in session {day} of {frame['symbol'][0]!r}"
                    )
                fc = self._arch(prefix).forecast(state.params, horizon=horizon, start=p, reindex=False)
                out[i] = float(fc.variance.to_numpy()[-1, horizon - 1]) / PERCENT**2
        return out

    def parameters(self, symbol: str) -> dict[str, float]:
        """Fitted ``arch`` parameters of ``symbol`` by name (percent-return units)."""
        if symbol not in self._fits:
            raise DataError(f"model {self.name!r} was not fitted for {symbol!r}")
        state: GarchState = self._fits[symbol].state
        return dict(zip(state.names, state.params.tolist(), strict=True))


@register("garch")
class Garch(_GarchBase):
    """GARCH(1,1) with Student-t innovations."""

    name = "garch"
    o = 0


@register("gjr_garch")
class GjrGarch(_GarchBase):
    """GJR-GARCH(1,1,1) with Student-t innovations (leverage term ``gamma[1]``)."""

    name = "gjr_garch"
    o = 1
