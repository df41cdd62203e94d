"""HAR-RV and HAR-RV-J on log realized variance (Corsi 2009; Andersen, Bollerslev & Diebold 2007).

Model, for origin session ``t`` and horizon ``h`` (the ``h``-th next row of the symbol)::

    log RV(t+h) = b0 + bd log rv_d(t) + bw log rv_w(t) + bm log rv_m(t) [+ bj log(1 + 1e4 jv(t))] + e

estimated by OLS (``numpy.linalg.lstsq``) directly for each horizon -- no iteration -- on the pairs
whose target session is itself a training session (``<= train_end``). ``rv_w`` and ``rv_m`` are the
5- and 22-session means of ``tasks.features``. The forecast undoes the log with the log-normal bias
correction ``rv = exp(x'b + s2 / 2)``, ``s2 = SSR / (n - k)`` the residual variance of that horizon's
regression, and ``var = c * rv`` with the training variance scale ``c``.

``har_j`` adds the jump variation ``jv = max(RV - BV, 0)`` as ``log(1 + 1e4 jv)``: ABD's
``log(1 + J)`` with ``J`` in percent-squared units, so the regressor is of order one rather than
``1e-4``, and it is 0 on days without a jump.

``window`` (default None: every training session) keeps the regression pairs whose target is one of
the newest ``window`` training sessions: a rolling estimation window (630 and 1000 are the usual
choices). The inputs and the variance scale still use every training session.

Realized variances are floored at ``RV_FLOOR`` before the log. Training uses only rows whose HAR
inputs are all present; at prediction a missing ``rv_w`` (first sessions of the data, long gaps) is
replaced by ``rv_d`` and a missing ``rv_m`` by ``rv_w``. Horizons are fitted lazily, on the training
rows kept at ``fit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import polars as pl

from core.errors import DataError
from tasks.models.base import register
from tasks.models.frames import BASE_COLUMNS, RV_FLOOR
from tasks.models.har_linear import check_window, training_pairs
from tasks.models.variance import MeanMode, VarianceForecaster

#: Units of the jump regressor: variance times 1e4 is percent squared.
JUMP_UNITS = 1e4


@dataclass(frozen=True)
class HarFit:
    """OLS result of one horizon: coefficients, residual variance, sample size."""

    coef: np.ndarray
    sigma2: float
    n: int


@dataclass
class HarState:
    """Training design (rows of complete inputs) and the fitted horizons."""

    design: np.ndarray  # (n, k) with the constant; NaN rows where an input is missing
    log_rv: np.ndarray  # (n,) log RV of each training session
    window: int | None = None  # estimation window in sessions (None: all)
    fits: dict[int, HarFit] = field(default_factory=dict)


def har_design(frame: pl.DataFrame, jumps: bool, fill: bool) -> np.ndarray:
    """HAR regressors ``[1, log rv_d, log rv_w, log rv_m (, log(1 + 1e4 jv))]`` per row.

    Parameters
    ----------
    frame : pl.DataFrame
        One symbol's features.
    jumps : bool
        Add the jump regressor (HAR-RV-J).
    fill : bool
        Replace a missing ``rv_w`` by ``rv_d`` and a missing ``rv_m`` by ``rv_w`` (prediction);
        otherwise such rows are NaN (training drops them).

    Returns
    -------
    np.ndarray
        Shape ``(rows, 4 or 5)``.
    """
    week = pl.coalesce("rv_w", "rv_d") if fill else pl.col("rv_w")
    month = pl.coalesce("rv_m", "rv_w", "rv_d") if fill else pl.col("rv_m")
    cols = [
        pl.col("rv_d").clip(lower_bound=RV_FLOOR).log().alias("d"),
        week.clip(lower_bound=RV_FLOOR).log().alias("w"),
        month.clip(lower_bound=RV_FLOOR).log().alias("m"),
    ]
    if jumps:
        cols.append((pl.col("jv").clip(lower_bound=0.0) * JUMP_UNITS).log1p().alias("j"))
    x = frame.select(cols).cast(pl.Float64).fill_null(np.nan).to_numpy()
    return np.column_stack([np.ones(frame.height), x])


def fit_har(design: np.ndarray, log_rv: np.ndarray, horizon: int, window: int | None = None) -> HarFit:
    """OLS of ``log_rv[i + horizon]`` on ``design[i]`` over complete pairs, targets in the last ``window``."""
    x, y = training_pairs(design, log_rv, horizon, window)
    k = x.shape[1]
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    return HarFit(coef=coef, sigma2=float(resid @ resid / (y.size - k)), n=int(y.size))


@register("har")
class Har(VarianceForecaster):
    """HAR-RV on log RV with log-normal bias correction (see the module docstring)."""

    name = "har"
    jumps = False
    columns = (*BASE_COLUMNS, "rv_w", "rv_m")
    min_train = 60

    def __init__(
        self,
        window: int | None = None,
        family: str | None = None,
        mean: MeanMode = "zero",
        var_scale: str | float = "fit",
        calendar: str | Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(family=family, mean=mean, var_scale=var_scale, calendar=calendar)
        self.window = check_window(window)

    def _settings(self) -> dict[str, Any]:
        # ``window`` enters the configuration only when set, so default runs keep their cache keys
        return {"jumps": self.jumps} | ({} if self.window is None else {"window": self.window})

    def _design(self, frame: pl.DataFrame, ret: np.ndarray, fill: bool) -> np.ndarray:
        """The regressors of every row of ``frame`` (``ret``: its session returns)."""
        return har_design(frame, self.jumps, fill)

    def _fit_symbol(self, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> HarState:
        log_rv = np.log(np.maximum(frame["rv_d"].cast(pl.Float64).to_numpy(), RV_FLOOR))
        state = HarState(self._design(frame, ret, fill=False), log_rv, self.window)
        self._horizon(state, 1)
        return state

    @staticmethod
    def _horizon(state: HarState, horizon: int) -> HarFit:
        if horizon not in state.fits:
            state.fits[horizon] = fit_har(state.design, state.log_rv, horizon, state.window)
        return state.fits[horizon]

    def _insample(self, state: HarState, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> np.ndarray:
        fit = self._horizon(state, 1)
        fc = np.exp(state.design @ fit.coef + fit.sigma2 / 2.0)
        return np.concatenate([[np.nan], fc[:-1]])

    def _forecast(
        self,
        state: HarState,
        frame: pl.DataFrame,
        ret: np.ndarray,
        mean: float,
        positions: np.ndarray,
        horizon: int,
    ) -> np.ndarray:
        fit = self._horizon(state, horizon)
        x = self._design(frame, ret, fill=True)[positions]
        # row by row (not ``x @ coef``: BLAS may sum a batch in another order than one row, and a
        # forecast must not depend, even in its last bit, on which other origins it was asked with)
        return np.exp((x * fit.coef).sum(axis=1) + fit.sigma2 / 2.0)

    def coefficients(self, symbol: str, horizon: int = 1) -> HarFit:
        """The fitted regression of ``symbol`` at ``horizon`` (fitted on demand)."""
        if symbol not in self._fits:
            raise DataError(f"model {self.name!r} was not fitted for {symbol!r}")
        state: HarState = self._fits[symbol].state
        return self._horizon(state, horizon)


@register("har_j")
class HarJ(Har):
    """HAR-RV-J: HAR-RV plus ``log(1 + 1e4 jv)`` (see the module docstring)."""

    name = "har_j"
    jumps = True
    columns = (*Har.columns, "jv")
    #: a data source without bipower variation (a daily range series) has no jump part to fit
    required_inputs: ClassVar[tuple[str, ...]] = ("jv",)
