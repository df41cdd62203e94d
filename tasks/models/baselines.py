"""The two simplest baselines: ``naive`` (last RV) and ``ewma`` (RiskMetrics).

Targets (all baselines; see ``tasks/models/frames.py``): for origin session ``t`` and horizon ``h``
the forecast is of session ``t+h`` -- the ``h``-th next row of the symbol in ``features_daily`` --
namely the variance ``var`` of its return ``ret_cc`` (``ret_oc`` where ``ret_cc`` is null) and its
realized variance ``rv``. The quantiles come from the model's family (``tasks/models/families.py``)
applied to ``(mean, var)``; the mean is 0 unless ``mean="train"``.

``naive``
    ``rv(t+h) = rv_d(t)``, the origin session's RV, for every ``h``; ``var = c * rv`` with the
    training variance scale ``c``.
``ewma``
    RiskMetrics on daily returns: ``s2(t+1) = lam * s2(t) + (1 - lam) * (r(t) - mean)^2`` with
    ``lam = 0.94``, started at the first training session from the exponentially weighted mean of
    the first (up to) 75 training squared returns (the ``arch`` backcast), and run through the origin
    (``scipy.signal.lfilter``). The forecast is flat in ``h``: ``var(t+h) = s2(t+1)``;
    ``rv = var / c``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from core.errors import ConfigError, DataError
from tasks.models.base import register
from tasks.models.frames import floored
from tasks.models.variance import MeanMode, VarianceForecaster

#: Observations of the EWMA start value (as ``arch``'s backcast).
BACKCAST_OBS = 75


@register("naive")
class Naive(VarianceForecaster):
    """Random walk on RV: tomorrow's RV is today's (``rv_d`` at the origin)."""

    name = "naive"
    min_train = 30

    def _fit_symbol(self, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> None:
        return None

    def _insample(self, state: Any, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> np.ndarray:
        rv = floored(frame["rv_d"].cast(pl.Float64).to_numpy())
        return np.concatenate([[np.nan], rv[:-1]])

    def _forecast(
        self,
        state: Any,
        frame: pl.DataFrame,
        ret: np.ndarray,
        mean: float,
        positions: np.ndarray,
        horizon: int,
    ) -> np.ndarray:
        return floored(frame["rv_d"].cast(pl.Float64).to_numpy()[positions])


def ewma_backcast(sq: np.ndarray, lam: float, obs: int = BACKCAST_OBS) -> float:
    """Start value: ``lam``-weighted mean of the first ``min(obs, n)`` squared residuals."""
    tau = min(obs, sq.size)
    w = lam ** np.arange(tau)
    return float(np.sum(sq[:tau] * w) / np.sum(w))


def ewma_variance(sq: np.ndarray, lam: float, start: float) -> np.ndarray:
    """RiskMetrics recursion: ``out[i] = lam * out[i-1] + (1 - lam) * sq[i]``, ``out[-1] = start``.

    ``out[i]`` is the variance forecast for the row after ``i``, made with rows ``<= i``.
    """
    y, _ = lfilter([1.0 - lam], [1.0, -lam], sq, zi=[lam * start])
    return np.asarray(y, dtype=float)


@register("ewma")
class Ewma(VarianceForecaster):
    """RiskMetrics EWMA variance of daily returns.

    Parameters
    ----------
    lam : float
        Decay in (0, 1); 0.94 is RiskMetrics' daily value.
    family, mean, var_scale, calendar
        See :class:`~tasks.models.variance.VarianceForecaster`.
    """

    name = "ewma"
    forecasts = "variance"
    min_train = 30

    def __init__(
        self,
        lam: float = 0.94,
        family: str | None = None,
        mean: MeanMode = "zero",
        var_scale: str | float = "fit",
        calendar: str | dict[str, str] | None = None,
    ) -> None:
        if (
            isinstance(lam, bool)
            or not isinstance(lam, int | float)
            or not (0.0 < lam < 1.0)
            or math.isnan(lam)
        ):
            raise ConfigError(f"lam must be a number strictly between 0 and 1; got {lam!r}")
        self.lam = float(lam)
        super().__init__(family=family, mean=mean, var_scale=var_scale, calendar=calendar)

    def _settings(self) -> dict[str, Any]:
        return {"lam": self.lam}

    def _squares(self, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> np.ndarray:
        sq = (ret - mean) ** 2
        bad = ~np.isfinite(sq)
        if bad.any():
            day = frame["session_date"][int(np.argmax(bad))]
            raise DataError(f"ewma: non-finite return in session {day} of {frame['symbol'][0]!r}")
        return sq

    def _fit_symbol(self, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> float:
        return ewma_backcast((ret - mean) ** 2, self.lam)

    def _insample(self, state: float, frame: pl.DataFrame, ret: np.ndarray, mean: float) -> np.ndarray:
        path = ewma_variance(self._squares(frame, ret, mean), self.lam, state)
        return np.concatenate([[state], path[:-1]])

    def _forecast(
        self,
        state: float,
        frame: pl.DataFrame,
        ret: np.ndarray,
        mean: float,
        positions: np.ndarray,
        horizon: int,
    ) -> np.ndarray:
        path = ewma_variance(self._squares(frame, ret, mean), self.lam, state)
        return path[positions]
