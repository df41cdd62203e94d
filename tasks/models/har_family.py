"""Better-specified HARs in levels: WLS-HAR, HARQ, HARQ-F, SHAR and HAR-CJ.

Each is a :class:`~tasks.models.har_linear.LevelHarForecaster` (estimation ``window``, ``weighting``
OLS/WLS, the insanity filter; see that module). For origin ``t`` and horizon ``h``, ``RV = rv_d`` the
session's realized variance, ``RV_w`` and ``RV_m`` the 5- and 22-session means of ``tasks.features``
(``rv_w``, ``rv_m``), and ``X_w``/``X_m`` the same means of another measure over the last 5/22 rows::

    har_wls  RV(t+h) = b0 + bd RV + bw RV_w + bm RV_m                     (WLS, weights 1 / OLS fit)
    harq     RV(t+h) = b0 + (bd + bq sqrt(RQ)) RV + bw RV_w + bm RV_m
    harq_f   RV(t+h) = b0 + (bd + bqd sqrt(RQ)) RV + (bw + bqw sqrt(RQ_w)) RV_w
                          + (bm + bqm sqrt(RQ_m)) RV_m
    shar     RV(t+h) = b0 + b+ RS+ + b- RS- + bw RV_w + bm RV_m
    har_cj   RV(t+h) = b0 + bcd C + bcw C_w + bcm C_m + bjd J + bjw J_w + bjm J_m

- ``har_wls``: Clements & Preve (2021) -- the HAR in levels, estimated by WLS.
- ``harq``/``harq_f``: Bollerslev, Patton & Quaedvlieg (2016), with ``RQ = (n/3) sum r^4`` (``rq``) not
  demeaned; the measurement-error correction makes ``bq`` negative. Needs ``rq`` (bars, or imported).
- ``shar``: Patton & Sheppard (2015), the daily RV split into its semivariances ``rs_pos``/``rs_neg``.
- ``har_cj``: Andersen, Bollerslev & Diebold (2007). A day has a significant jump when the
  Huang-Tauchen ratio statistic ``Z = ((RV - BV)/RV) / sqrt(theta/n * max(1, TQ/BV^2))``,
  ``theta = pi^2/4 + pi - 5``, exceeds the standard normal ``alpha`` quantile (0.999 by default); then
  ``J = RV - BV`` and ``C = BV``, otherwise ``J = 0`` and ``C = RV``. ``TQ`` is the tripower quarticity
  (``tq``, from bars; the same Z as ``bns_z``); where it is null (imported realized measures) ``RQ``
  stands in, which is not jump-robust and so makes the test more conservative. A day whose Z cannot
  be formed (``bv`` or ``n_returns`` null) counts as having no jump.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl
from scipy.stats import norm

from core.errors import ConfigError
from tasks.models.base import register
from tasks.models.frames import BASE_COLUMNS
from tasks.models.har_linear import (
    Insanity,
    LevelHarForecaster,
    Weighting,
    column,
    require_values,
    rolling_mean,
)
from tasks.models.variance import MeanMode

#: ``mu_1^-4 + 2 mu_1^-2 - 5`` with ``mu_1 = sqrt(2/pi)``: the ratio statistic's variance factor.
JUMP_THETA = math.pi**2 / 4.0 + math.pi - 5.0
WEEK, MONTH = 5, 22


def har_inputs(frame: pl.DataFrame, fill: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``RV``, ``RV_w``, ``RV_m``; with ``fill``, ``har``'s fallbacks ``rv_w -> rv_d``, ``rv_m -> rv_w``."""
    daily, week, month = column(frame, "rv_d"), column(frame, "rv_w"), column(frame, "rv_m")
    if fill:
        week = np.where(np.isnan(week), daily, week)
        month = np.where(np.isnan(month), week, month)
    return daily, week, month


@register("har_wls")
class HarWls(LevelHarForecaster):
    """HAR-RV in levels by WLS, weights ``1 / fitted`` (Clements & Preve 2021; module docstring)."""

    name = "har_wls"
    columns = (*BASE_COLUMNS, "rv_w", "rv_m")
    default_weighting = "wls"

    def regressors(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        return np.column_stack(har_inputs(frame, fill))


@register("harq")
class Harq(LevelHarForecaster):
    """HARQ: the daily lag's coefficient moves with ``sqrt(RQ)`` (BPQ 2016; module docstring)."""

    name = "harq"
    columns = (*BASE_COLUMNS, "rv_w", "rv_m", "rq")
    required_inputs: ClassVar[tuple[str, ...]] = ("rq",)

    def check_inputs(self, symbol: str, frame: pl.DataFrame) -> None:
        require_values(self.name, symbol, frame, ("rq",), "realized quarticity, for the sqrt(RQ) interaction")

    def regressors(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        daily, week, month = har_inputs(frame, fill)
        root_rq = np.sqrt(np.maximum(column(frame, "rq"), 0.0))
        return np.column_stack([daily, root_rq * daily, week, month])


@register("harq_f")
class HarqF(Harq):
    """HARQ-F: all three lags interacted with their own ``sqrt(RQ)`` means (BPQ 2016)."""

    name = "harq_f"

    def regressors(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        daily, week, month = har_inputs(frame, fill)
        rq = np.maximum(column(frame, "rq"), 0.0)
        rq_w, rq_m = rolling_mean(rq, WEEK, fill), rolling_mean(rq, MONTH, fill)
        roots = [np.sqrt(rq), np.sqrt(rq_w), np.sqrt(rq_m)]
        return np.column_stack([daily, roots[0] * daily, week, roots[1] * week, month, roots[2] * month])


@register("shar")
class Shar(LevelHarForecaster):
    """SHAR: the daily RV split into positive and negative semivariance (Patton & Sheppard 2015)."""

    name = "shar"
    columns = (*BASE_COLUMNS, "rv_w", "rv_m", "rs_pos", "rs_neg")
    required_inputs: ClassVar[tuple[str, ...]] = ("rs_pos", "rs_neg")

    def check_inputs(self, symbol: str, frame: pl.DataFrame) -> None:
        require_values(self.name, symbol, frame, ("rs_pos", "rs_neg"), "realized semivariances")

    def regressors(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        _, week, month = har_inputs(frame, fill)
        return np.column_stack([column(frame, "rs_pos"), column(frame, "rs_neg"), week, month])


def jump_statistic(frame: pl.DataFrame) -> np.ndarray:
    """ABD's ratio statistic ``Z`` per row (TQ, or RQ where TQ is null); NaN where it cannot be formed."""
    rv, bv = column(frame, "rv_d"), column(frame, "bv")
    n = column(frame, "n_returns")
    quarticity = np.where(np.isnan(column(frame, "tq")), column(frame, "rq"), column(frame, "tq"))
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.sqrt(JUMP_THETA / n * np.maximum(1.0, quarticity / (bv * bv)))
        z = (rv - bv) / rv / scale
    valid = (n >= 3) & (rv > 0) & (bv > 0) & np.isfinite(z)
    return np.where(valid, z, np.nan)


def continuous_and_jumps(frame: pl.DataFrame, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(C, J)`` per row: ``J = RV - BV`` on days with ``Z > Phi^-1(alpha)``, else 0; ``C = RV - J``."""
    rv, bv = column(frame, "rv_d"), column(frame, "bv")
    z = jump_statistic(frame)
    with np.errstate(invalid="ignore"):
        significant = np.isfinite(z) & (z > norm.ppf(alpha))
    jumps = np.where(significant, np.maximum(rv - bv, 0.0), 0.0)
    jumps[np.isnan(rv)] = np.nan
    return rv - jumps, jumps


@register("har_cj")
class HarCj(LevelHarForecaster):
    """HAR-CJ: continuous and significant-jump components at 1, 5, 22 sessions (ABD 2007).

    Parameters
    ----------
    alpha : float
        Significance level of the jump test, in (0.5, 1).
    window, weighting, insanity, family, mean, var_scale, calendar
        As :class:`~tasks.models.har_linear.LevelHarForecaster`.
    """

    name = "har_cj"
    columns = (*BASE_COLUMNS, "bv", "rq", "tq", "n_returns")
    required_inputs: ClassVar[tuple[str, ...]] = ("bv", "n_returns")

    def __init__(
        self,
        alpha: float = 0.999,
        window: int | None = None,
        weighting: Weighting | None = None,
        insanity: Insanity = "mean",
        family: str | None = None,
        mean: MeanMode = "zero",
        var_scale: str | float = "fit",
        calendar: str | Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(window, weighting, insanity, family, mean, var_scale, calendar)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.5 < alpha < 1.0:
            raise ConfigError(f"alpha must be a number in (0.5, 1); got {alpha!r}")
        self.alpha = float(alpha)

    def _model_settings(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def check_inputs(self, symbol: str, frame: pl.DataFrame) -> None:
        require_values(self.name, symbol, frame, ("bv", "n_returns"), "bipower variation and return counts")

    def regressors(self, frame: pl.DataFrame, fill: bool) -> np.ndarray:
        cont, jumps = continuous_and_jumps(frame, self.alpha)
        parts = []
        for series in (cont, jumps):
            parts += [series, rolling_mean(series, WEEK, fill), rolling_mean(series, MONTH, fill)]
        return np.column_stack(parts)
