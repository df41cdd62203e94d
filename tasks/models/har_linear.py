"""Shared machinery of the HAR regressions in levels: inputs, OLS/WLS, estimation window, insanity filter.

A :class:`LevelHarForecaster` regresses, per symbol and horizon ``h``, the realized variance of the
session ``h`` rows after ``t`` on regressors known at the end of session ``t`` (the subclass builds
them; the constant is added here)::

    RV(t+h) = b0 + x(t)'b + e

- **Estimation window** (``window``): the regression uses the pairs whose target is one of the newest
  ``window`` training sessions (``None``: every training session; 630 and 1000 are the usual rolling
  choices). Inputs are still computed from the whole history given, so a monthly mean or a long EWMA
  at the window's first row is complete. The variance scale and the return family are fitted on all
  training sessions, as for every :class:`~tasks.models.variance.VarianceForecaster`.
- **Weighting**: ``"ols"``, or ``"wls"``: the feasible WLS of Clements & Preve (2021), a first OLS pass
  whose fitted values ``f`` give the weights ``1 / f`` of the second pass (``sum (y - x'b)^2 / f``;
  ``f`` floored at the smallest in-sample RV so a non-positive fit cannot flip or explode a weight).
- **Insanity filter** (Bollerslev, Patton & Quaedvlieg 2016, Swanson & White 1997): a forecast outside
  the range of the in-sample RV targets, or one that cannot be formed (an input missing at the
  origin), is replaced by their in-sample mean (``insanity="mean"``, the paper's rule). A levels
  regression can forecast a negative variance; this keeps every forecast inside what the model has
  seen. In a crisis that breaks the window's range (SPY, March 2020) the rule swaps the highest
  forecasts for the mean; ``insanity="clip"`` caps a forecast above the in-sample maximum at that
  maximum instead, while one below the minimum (a levels fit gone negative after a spike) or not
  finite still becomes the mean: clipping those to the minimum makes QLIKE explode.

Columns are scaled to unit root-mean-square before ``numpy.linalg.lstsq``: RV (~1e-4) and an RQ
interaction (~1e-8) would otherwise sit next to the constant and make the solution ill-conditioned.
An all-zero column (no significant jump in the window) gets a zero coefficient.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from tasks.models.frames import RV_FLOOR
from tasks.models.variance import MeanMode, VarianceForecaster

Weighting = Literal["ols", "wls"]
Insanity = Literal["mean", "clip"]
#: Fewest sessions an estimation window may hold.
MIN_WINDOW = 60
#: Share of a rolling window's sessions that must be present (as ``tasks.features`` HAR inputs).
MIN_FRACTION = 0.8


def check_window(window: object) -> int | None:
    """``window`` as None (all training sessions) or an int ``>= MIN_WINDOW``."""
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < MIN_WINDOW:
        raise ConfigError(f"window must be None or an integer >= {MIN_WINDOW} sessions; got {window!r}")
    return int(window)


def column(frame: pl.DataFrame, name: str) -> np.ndarray:
    """``frame[name]`` as float64, null as NaN."""
    return frame[name].cast(pl.Float64).fill_null(np.nan).to_numpy()


def rolling_mean(values: np.ndarray, window: int, fill: bool) -> np.ndarray:
    """Mean of the last ``window`` rows ending at each row (inclusive), ignoring NaN.

    Needs ``ceil(0.8 * window)`` finite values, or just one when ``fill`` (prediction). Each row's
    mean is computed from its own window only, so it never depends on later rows or on where the
    array ends.
    """
    need = 1 if fill else int(np.ceil(MIN_FRACTION * window))
    padded = np.concatenate([np.full(window - 1, np.nan), values])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    finite = np.isfinite(windows)
    count = finite.sum(axis=1)
    total = np.where(finite, windows, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= need, total / count, np.nan)


def solve_linear(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least squares ``argmin sum w (y - x b)^2`` on column-scaled ``x`` (all rows finite)."""
    scale = np.sqrt(np.mean(x * x, axis=0))
    scale[~(scale > 0)] = 1.0
    xs, ys = x / scale, y
    if weights is not None:
        root = np.sqrt(weights)
        xs, ys = xs * root[:, None], y * root
    coef, *_ = np.linalg.lstsq(xs, ys, rcond=None)
    return np.asarray(coef / scale)


def wls_weights(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Clements & Preve weights ``1 / f``: ``f`` the OLS fit, floored at the smallest positive ``y``."""
    fitted = x @ solve_linear(x, y)
    positive = y[y > 0]
    floor = float(positive.min()) if positive.size else RV_FLOOR
    return 1.0 / np.maximum(fitted, floor)


@dataclass(frozen=True)
class LevelFit:
    """One horizon's regression: coefficients (constant first) and the insanity-filter bounds."""

    coef: np.ndarray
    low: float
    high: float
    mean: float
    n: int


@dataclass
class LevelState:
    """Training design (constant first; NaN rows where an input is missing), RV, fitted horizons."""

    design: np.ndarray
    rv: np.ndarray
    fits: dict[int, LevelFit] = field(default_factory=dict)


def training_pairs(
    design: np.ndarray, target: np.ndarray, horizon: int, window: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Complete ``(design[i], target[i + horizon])`` pairs whose target is among the last ``window``.

    Raises ``DataError`` when there are no more than ``k + 10`` of them (``k`` regressors).
    """
    x, y = design[:-horizon], target[horizon:]
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    if window is not None:
        ok &= np.arange(horizon, target.size) >= target.size - window
    x, y = x[ok], y[ok]
    k = x.shape[1]
    if y.size <= k + 10:
        raise DataError(
            f"HAR needs more than {k + 10} complete training pairs at horizon {horizon}; got {y.size}"
        )
    return x, y


def fit_levels(
    design: np.ndarray, rv: np.ndarray, horizon: int, window: int | None, weighting: Weighting
) -> LevelFit:
    """Regress ``rv[i + horizon]`` on ``design[i]`` over the complete pairs in the window.

    Parameters
    ----------
    design : np.ndarray
        ``(n, k)`` regressors with the constant.
    rv : np.ndarray
        ``(n,)`` realized variance of each training session.
    horizon : int
        Target ``horizon`` rows ahead.
    window : int | None
        Keep pairs whose target is among the last ``window`` rows (None: all).
    weighting : {"ols", "wls"}
        Plain OLS, or Clements & Preve's WLS with weights ``1 / OLS fit``.

    Returns
    -------
    LevelFit
        Coefficients and the in-sample range and mean of the targets used.
    """
    x, y = training_pairs(design, rv, horizon, window)
    weights = wls_weights(x, y) if weighting == "wls" else None
    coef = solve_linear(x, y, weights)
    return LevelFit(coef=coef, low=float(y.min()), high=float(y.max()), mean=float(y.mean()), n=int(y.size))


def insanity_filter(forecast: np.ndarray, fit: LevelFit, how: Insanity = "mean") -> np.ndarray:
    """Forecasts outside ``[fit.low, fit.high]`` or not finite replaced by ``fit.mean``; with
    ``how="clip"`` one above ``fit.high`` is capped at ``fit.high`` instead."""
    with np.errstate(invalid="ignore"):
        sane = np.isfinite(forecast) & (forecast >= fit.low) & (forecast <= fit.high)
        out = np.where(sane, forecast, fit.mean)
        if how == "clip":
            out = np.where(forecast > fit.high, fit.high, out)
    return out


class LevelHarForecaster(VarianceForecaster):
    """Base of the HAR regressions in levels (see the module docstring).

    Parameters
    ----------
    window : int | None
        Estimation window in sessions (None: every training session given).
    weighting : {"ols", "wls"} | None
        ``None`` takes the model's default.
    insanity : {"mean", "clip"}
        What the insanity filter does with a forecast outside the in-sample range.
    family, mean, var_scale, calendar
        As :class:`~tasks.models.variance.VarianceForecaster`.
    """

    name = "level_har"
    min_train = 100
    #: Weighting used when ``weighting`` is None.
    default_weighting: ClassVar[Weighting] = "ols"

    def __init__(
        self,
        window: int | None = None,
        weighting: Weighting | None = None,
        insanity: Insanity = "mean",
        family: str | None = None,
        mean: MeanMode = "zero",
        var_scale: str | float = "fit",
        calendar: str | Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(family=family, mean=mean, var_scale=var_scale, calendar=calendar)
        weighting = self.default_weighting if weighting is None else weighting
        if weighting not in ("ols", "wls"):
            raise ConfigError(f"weighting must be 'ols' or 'wls'; got {weighting!r}")
        if insanity not in ("mean", "clip"):
            raise ConfigError(f"insanity must be 'mean' or 'clip'; got {insanity!r}")
        self.window = check_window(window)
        self.weighting: Weighting = weighting
        self.insanity: Insanity = insanity

    # -- subclass interface ------------------------------------------------------------------------

    @abstractmethod
    def regressors(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        """``(rows, k)`` regressors of each row from rows up to it (no constant).

        ``fill`` is False in training (a row with a missing input is NaN and dropped) and True at
        prediction (use what is there, as ``har``'s fallbacks do).
        """

    def _model_settings(self) -> dict[str, Any]:
        """Model-specific settings for :meth:`config`."""
        return {}

    def check_inputs(self, symbol: str, frame: pl.DataFrame) -> None:
        """Raise ``DataError`` when an input the model needs is absent for ``symbol``."""

    # -- VarianceForecaster ------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        settings = {"window": self.window, "weighting": self.weighting, "insanity": self.insanity}
        return settings | self._model_settings()

    def design(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        """Regressors with the constant first."""
        return np.column_stack([np.ones(frame.height), self.regressors(frame, fill)])

    def _fit_symbol(self, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> LevelState:
        self.check_inputs(str(frame["symbol"][0]), frame)
        state = LevelState(design=self.design(frame, fill=False), rv=column(frame, "rv_d"))
        self._horizon(state, 1)
        return state

    def _horizon(self, state: LevelState, horizon: int) -> LevelFit:
        if horizon not in state.fits:
            state.fits[horizon] = fit_levels(state.design, state.rv, horizon, self.window, self.weighting)
        return state.fits[horizon]

    def _insample(self, state: LevelState, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> np.ndarray:
        fit = self._horizon(state, 1)
        with np.errstate(invalid="ignore"):
            fc = insanity_filter(state.design @ fit.coef, fit, self.insanity)
        fc[~np.isfinite(state.design).all(axis=1)] = np.nan
        return np.concatenate([[np.nan], fc[:-1]])

    def _forecast(
        self,
        state: LevelState,
        frame: pl.DataFrame,
        ret: np.ndarray,
        mean: float,
        positions: np.ndarray,
        horizon: int,
    ) -> np.ndarray:
        fit = self._horizon(state, horizon)
        x = self.design(frame, fill=True)[positions]
        with np.errstate(invalid="ignore"):
            return insanity_filter(x @ fit.coef, fit, self.insanity)

    def coefficients(self, symbol: str, horizon: int = 1) -> LevelFit:
        """The fitted regression of ``symbol`` at ``horizon`` (fitted on demand)."""
        if symbol not in self._fits:
            raise DataError(f"model {self.name!r} was not fitted for {symbol!r}")
        state: LevelState = self._fits[symbol].state
        return self._horizon(state, horizon)


def require_values(model: str, symbol: str, frame: pl.DataFrame, columns: tuple[str, ...], why: str) -> None:
    """Raise ``DataError`` when any of ``columns`` is null in every row of ``symbol``'s ``frame``."""
    empty = [c for c in columns if frame[c].cast(pl.Float64).fill_nan(None).null_count() == frame.height]
    if empty:
        raise DataError(
            f"model {model!r} needs {', '.join(empty)} for {symbol!r} ({why}), but it is null in every "
            f"training session; build the features from bars, or import it with the realized measures"
        )
