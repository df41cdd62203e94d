"""The skeleton every per-symbol variance baseline shares: fitting, families, mean, scale, output.

A :class:`VarianceForecaster` is fitted per symbol on that symbol's sessions ``<= train_end``:

1. ``mean``: ``"zero"`` (default; daily mean returns are small and noisy, and a zero mean is the
   usual risk-model convention) or ``"train"``, the mean training return.
2. ``var_scale``: ``"fit"`` (default) estimates ``c = mean(r^2) / mean(RV)`` on the training window
   (:func:`~tasks.models.families.fit_variance_scale`); a number fixes it. An RV forecast becomes the
   return-variance forecast ``var = c * rv``; a return-variance forecast becomes ``rv = var / c``.
3. The subclass fits its own state and gives its in-sample one-step forecasts of the training
   sessions; the standardized residuals ``z = (r - mean) / sqrt(var)`` of those sessions fit the
   ``family`` (gaussian, student_t, skew_t or fhs; a subclass may supply a natural one, e.g. GARCH-t's nu).
   The family fitted on one-step residuals serves every horizon.

``predict`` never refits: for each origin it calls the subclass on the symbol's sessions from the
first training session through the last requested origin, and the subclass uses, for each origin,
only the rows up to it. Symbols present in the data but not fitted are ignored; origins that are not
a session of a symbol (or precede its first training session) produce no row for it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Literal, Self

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from tasks.models.base import ModelData
from tasks.models.families import Family, family_names, fit_variance_scale, get_family
from tasks.models.frames import (
    BASE_COLUMNS,
    RV_FLOOR,
    check_calendar,
    check_date,
    check_horizon,
    check_origins,
    concat_predictions,
    daily_returns,
    origin_positions,
    prediction_frame,
    require_columns,
    split_symbols,
    symbol_calendar,
    target_sessions,
)

MeanMode = Literal["zero", "train"]


@dataclass(frozen=True)
class SymbolFit:
    """What a fitted model keeps per symbol.

    Attributes
    ----------
    state : Any
        The subclass's fitted state.
    family : Family
        Fitted distribution family.
    mean : float
        Mean return forecast.
    var_scale : float
        ``mean(r^2) / mean(RV)`` of the training window (or the configured number).
    first : date
        First training session; forecasts start their recursions there.
    n_train : int
        Training sessions.
    """

    state: Any
    family: Family
    mean: float
    var_scale: float
    first: date
    n_train: int


class VarianceForecaster(ABC):
    """Base of the per-symbol baselines (naive, EWMA, HAR, GARCH).

    Parameters
    ----------
    family : str | None
        ``gaussian``, ``student_t``, ``skew_t`` or ``fhs``; ``None`` takes the model's default.
    mean : {"zero", "train"}
        Zero mean, or the training mean return.
    var_scale : "fit" | float
        Fit ``mean(r^2) / mean(RV)`` on the training window, or use this positive number.
    calendar : str | Mapping[str, str] | None
        Session calendar (one name, or per symbol) used only to date targets past the data's end.
    """

    name: str = "variance"
    #: Family used when ``family`` is None.
    default_family: ClassVar[str] = "gaussian"
    #: What the subclass forecasts: ``"rv"`` (realized variance) or ``"variance"`` (return variance).
    forecasts: ClassVar[Literal["rv", "variance"]] = "rv"
    #: Feature columns the model reads.
    columns: ClassVar[tuple[str, ...]] = BASE_COLUMNS
    #: Fewest training sessions per symbol.
    min_train: ClassVar[int] = 60

    def __init__(
        self,
        family: str | None = None,
        mean: MeanMode = "zero",
        var_scale: str | float = "fit",
        calendar: str | Mapping[str, str] | None = None,
    ) -> None:
        family = self.default_family if family is None else family
        if family not in family_names():
            raise ConfigError(f"family must be one of {family_names()}; got {family!r}")
        if mean not in ("zero", "train"):
            raise ConfigError(f"mean must be 'zero' or 'train'; got {mean!r}")
        if var_scale != "fit" and not (
            isinstance(var_scale, int | float)
            and not isinstance(var_scale, bool)
            and math.isfinite(var_scale)
            and var_scale > 0
        ):
            raise ConfigError(f"var_scale must be 'fit' or a positive finite number; got {var_scale!r}")
        self.family = family
        self.mean: MeanMode = mean
        self.var_scale = var_scale
        self.calendar = check_calendar(calendar)
        self._fits: dict[str, SymbolFit] = {}
        self._train_end: date | None = None

    # -- subclass interface ------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        """Model-specific settings for :meth:`config`."""
        return {}

    @abstractmethod
    def _fit_symbol(self, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> Any:
        """Fit on one symbol's training rows; return the state."""

    @abstractmethod
    def _insample(self, state: Any, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> np.ndarray:
        """One-step forecasts of every training row made at the row before (NaN where none)."""

    @abstractmethod
    def _forecast(
        self,
        state: Any,
        frame: pl.DataFrame,
        ret: np.ndarray,
        mean: float,
        positions: np.ndarray,
        horizon: int,
    ) -> np.ndarray:
        """Forecasts for the sessions ``horizon`` rows after ``positions``, each from rows ``<= position``."""

    def _natural_family(self, state: Any) -> Family | None:
        """A family the estimator itself fitted (GARCH-t's nu), or None to fit ``family`` on residuals."""
        return None

    def _state_mean(self, state: Any, mean: float) -> float:
        """The mean return forecast (a subclass whose estimator fits the mean overrides this)."""
        return mean

    # -- Forecaster --------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """JSON-able settings."""
        return {
            "family": self.family,
            "mean": self.mean,
            "var_scale": self.var_scale,
            "calendar": self.calendar,
            **self._settings(),
        }

    def fit(self, data: ModelData, train_end: date) -> Self:
        """Fit every symbol on its sessions ``<= train_end``.

        Parameters
        ----------
        data : ModelData
            ``features`` must hold :attr:`columns`; rows after ``train_end`` are never read.
        train_end : date
            Last training session.

        Returns
        -------
        Self
            The fitted model.
        """
        train_end = check_date(train_end, "train_end")
        require_columns(data.features, self.columns, self.name)
        train = data.features.filter(pl.col("session_date") <= train_end).select(self.columns)
        if train.height == 0:
            raise DataError(f"model {self.name!r}: no feature rows on or before train_end {train_end}")
        fits: dict[str, SymbolFit] = {}
        for symbol, frame in split_symbols(train).items():
            fits[symbol] = self._fit_one(symbol, frame)
        self._fits = fits
        self._train_end = train_end
        return self

    def _fit_one(self, symbol: str, frame: pl.DataFrame) -> SymbolFit:
        if frame.height < self.min_train:
            raise DataError(
                f"model {self.name!r} needs at least {self.min_train} training sessions for {symbol!r}; "
                f"got {frame.height}"
            )
        ret = daily_returns(frame)
        bad = ~np.isfinite(ret)
        if bad.any():
            first_bad = frame["session_date"][int(np.argmax(bad))]
            raise DataError(f"{symbol!r}: non-finite return in training session {first_bad}")
        mean = float(ret.mean()) if self.mean == "train" else 0.0
        rv = frame["rv_d"].cast(pl.Float64).to_numpy()
        scale = fit_variance_scale(ret, rv) if self.var_scale == "fit" else float(self.var_scale)
        state = self._fit_symbol(frame, ret, mean)
        mean = self._state_mean(state, mean)
        var_in = self._to_var(self._insample(state, frame, ret, mean), scale)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (ret - mean) / np.sqrt(var_in)
        natural = self._natural_family(state)
        family = natural if natural is not None else get_family(self.family).fit(z)
        return SymbolFit(state, family, mean, scale, frame["session_date"][0], frame.height)

    def _to_var(self, fc: np.ndarray, scale: float) -> np.ndarray:
        if self.forecasts == "rv":
            return scale * np.maximum(fc, RV_FLOOR)
        return fc

    def predict(self, data: ModelData, origins: Sequence[date], horizon: int = 1) -> pl.DataFrame:
        """One row per (fitted symbol, origin session) in ``PREDICTION_SCHEMA``.

        Parameters
        ----------
        data : ModelData
            Features of the fitted symbols; for each origin only rows up to it are used.
        origins : Sequence[date]
            Origin sessions.
        horizon : int
            Forecast the session this many rows after the origin.

        Returns
        -------
        pl.DataFrame
            Sorted by (symbol, origin).
        """
        if self._train_end is None:
            raise ConfigError(f"model {self.name!r} is not fitted: call fit(data, train_end) first")
        horizon = check_horizon(horizon)
        wanted = check_origins(origins)
        require_columns(data.features, self.columns, self.name)
        out: list[pl.DataFrame] = []
        for symbol, full in split_symbols(data.features.select(self.columns)).items():
            fit = self._fits.get(symbol)
            if fit is None:
                continue
            full = full.filter(pl.col("session_date") >= fit.first)
            pos, used = origin_positions(full["session_date"], wanted)
            if not pos.size:
                continue
            frame = full.head(int(pos.max()) + 1)  # nothing after the last origin is even passed on
            ret = daily_returns(frame)
            fc = self._forecast(fit.state, frame, ret, fit.mean, pos, horizon)
            if self.forecasts == "rv":
                rv = np.maximum(fc, RV_FLOOR)
                var = fit.var_scale * rv
            else:
                var = fc
                rv = var / fit.var_scale
            quantiles = fit.family.quantiles(fit.mean, var)
            calendar = symbol_calendar(self.calendar, symbol) or data.calendar_of(symbol)
            targets = target_sessions(full["session_date"], pos, horizon, calendar)
            out.append(
                prediction_frame(
                    model=self.name,
                    symbol=symbol,
                    origins=used,
                    targets=targets,
                    horizon=horizon,
                    variance=var,
                    rv=rv,
                    mean=np.full(pos.size, fit.mean),
                    quantiles=quantiles,
                    family=fit.family.name,
                    params=fit.family.params(),
                )
            )
        return concat_predictions(out)

    # -- introspection -----------------------------------------------------------------------------

    @property
    def fitted(self) -> dict[str, SymbolFit]:
        """Per-symbol fitted state (read-only view)."""
        return dict(self._fits)
