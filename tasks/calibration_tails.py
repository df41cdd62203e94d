"""Filtered historical simulation and EVT tails on standardized residuals (for calibration).

``z = (r - mean) / sqrt(variance)`` of realized targets, standardized by their own forecast.

FHS
    The quantile at level ``p`` is the empirical one of the window, ``np.quantile(z, p)`` (linear
    interpolation), as in :class:`tasks.models.families.FilteredHistorical`.
EVT (McNeil & Frey 2000)
    The body is FHS. In each tail, beyond the threshold ``u`` = the empirical quantile at ``tail``
    (lower) or ``1 - tail`` (upper), the exceedances ``y = u - z`` (lower) or ``z - u`` (upper)
    follow a generalized Pareto distribution fitted by maximum likelihood
    (``scipy.stats.genpareto.fit(y, floc=0)``, shape ``xi``, scale ``s``), so for ``p < tail``
    ``Q(p) = u - (s / xi) ((p / tail)^(-xi) - 1)`` (``-s log(p / tail)`` as ``xi -> 0``), and its mirror
    in the upper tail. The quantile is continuous at the threshold. A tail with fewer than
    :data:`MIN_EXCEEDANCES` exceedances, or whose fit fails or gives ``xi`` outside
    :data:`SHAPE_RANGE`, keeps the empirical quantiles.

Pure numpy/scipy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from core.errors import ConfigError

#: Fewest exceedances a GPD tail is fitted on.
MIN_EXCEEDANCES = 10
#: Accepted GPD shapes (a heavier tail than ``xi = 0.9`` has hardly a mean; below -0.5 the MLE is irregular).
SHAPE_RANGE: tuple[float, float] = (-0.5, 0.9)

Side = Literal["lower", "upper"]


@dataclass(frozen=True)
class GpdTail:
    """A fitted GPD tail of standardized residuals.

    Attributes
    ----------
    shape : float
        ``xi`` (``1 / nu`` for a Student-t with ``nu`` degrees of freedom).
    scale : float
        ``s > 0``.
    n_exceed : int
        Exceedances it was fitted on.
    """

    shape: float
    scale: float
    n_exceed: int


def fhs_standard_quantiles(z: np.ndarray, levels: Sequence[float] | np.ndarray) -> np.ndarray:
    """Empirical quantiles of ``z`` at ``levels`` (linear interpolation, non-decreasing)."""
    q = np.quantile(np.asarray(z, dtype=float), np.asarray(levels, dtype=float))
    return np.maximum.accumulate(q)


def exceedances(z: np.ndarray, tail: float, side: Side) -> tuple[float, np.ndarray]:
    """Threshold (empirical quantile at ``tail`` or ``1 - tail``) and the positive exceedances beyond it."""
    z = np.asarray(z, dtype=float)
    if side == "lower":
        u = float(np.quantile(z, tail))
        return u, u - z[z < u]
    u = float(np.quantile(z, 1.0 - tail))
    return u, z[z > u] - u


def fit_gpd_tail(z: np.ndarray, tail: float, side: Side) -> GpdTail | None:
    """GPD (``floc=0``) fitted to the exceedances of one tail; ``None`` when it is not usable.

    Parameters
    ----------
    z : np.ndarray
        Standardized residuals.
    tail : float
        Share of the sample in the tail (the threshold level), e.g. 0.10.
    side : {"lower", "upper"}
        Which tail.
    """
    if not (0.0 < tail < 0.5):
        raise ConfigError(f"tail must be in (0, 0.5); got {tail!r}")
    _, y = exceedances(z, tail, side)
    if y.size < MIN_EXCEEDANCES or not np.any(y > 0):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            shape, _, scale = stats.genpareto.fit(y, floc=0.0)
    except (ValueError, RuntimeError, FloatingPointError):
        return None
    lo, hi = SHAPE_RANGE
    if not (math.isfinite(shape) and math.isfinite(scale) and scale > 0 and lo <= shape <= hi):
        return None
    return GpdTail(float(shape), float(scale), int(y.size))


def gpd_excess_quantile(tail_fit: GpdTail, ratio: np.ndarray) -> np.ndarray:
    """Size beyond the threshold at tail probability ``ratio * tail``: ``(s / xi) (ratio^-xi - 1)``."""
    r = np.asarray(ratio, dtype=float)
    xi, s = tail_fit.shape, tail_fit.scale
    if abs(xi) < 1e-9:
        return -s * np.log(r)
    return (s / xi) * (r ** (-xi) - 1.0)


def evt_standard_quantiles(
    z: np.ndarray,
    levels: Sequence[float] | np.ndarray,
    tail: float = 0.10,
    fits: tuple[GpdTail | None, GpdTail | None] | None = None,
) -> np.ndarray:
    """EVT quantiles of ``z`` at ``levels``: FHS body, GPD tails beyond the ``tail`` thresholds.

    Parameters
    ----------
    z : np.ndarray
        Standardized residuals (the window).
    levels : Sequence[float] | np.ndarray
        Non-decreasing probabilities in (0, 1).
    tail : float
        Threshold level of each tail.
    fits : tuple | None
        (lower, upper) GPD tails to use (e.g. from an earlier refit); fitted on ``z`` when None.

    Returns
    -------
    np.ndarray
        Non-decreasing quantiles, shape ``(len(levels),)``.
    """
    z = np.asarray(z, dtype=float)
    p = np.asarray(levels, dtype=float)
    lower, upper = (
        fits if fits is not None else (fit_gpd_tail(z, tail, "lower"), fit_gpd_tail(z, tail, "upper"))
    )
    q = np.quantile(z, p)
    if lower is not None:
        lo = p < tail
        q[lo] = float(np.quantile(z, tail)) - gpd_excess_quantile(lower, p[lo] / tail)
    if upper is not None:
        hi = p > 1.0 - tail
        q[hi] = float(np.quantile(z, 1.0 - tail)) + gpd_excess_quantile(upper, (1.0 - p[hi]) / tail)
    return np.maximum.accumulate(q)


def rolling_standard_quantiles(
    z_events: np.ndarray,
    known: np.ndarray,
    levels: np.ndarray,
    *,
    method: Literal["fhs", "evt"],
    window: int,
    min_obs: int,
    tail: float = 0.10,
    refit: int = 20,
) -> np.ndarray:
    """Per row, FHS or EVT quantiles of the last ``window`` residuals known at its origin.

    Parameters
    ----------
    z_events : np.ndarray
        Standardized residuals of the realized targets, in target order.
    known : np.ndarray
        Per row (in origin order), how many of ``z_events`` were known at its origin (non-decreasing).
    levels : np.ndarray
        Probabilities.
    method : {"fhs", "evt"}
        Empirical quantiles, or EVT tails on an FHS body.
    window, min_obs : int
        Residuals used (the last ``window``), and fewest needed (rows with fewer are NaN: warm-up).
    tail, refit : float, int
        EVT threshold level, and how many rows (origins) a GPD fit serves before it is refitted.

    Returns
    -------
    np.ndarray
        Shape ``(len(known), len(levels))``, NaN in warm-up rows.
    """
    out = np.full((known.size, levels.size), np.nan)
    fits: tuple[GpdTail | None, GpdTail | None] | None = None
    since = refit
    for i, k in enumerate(np.asarray(known, dtype=np.int64)):
        if k < min_obs:
            continue
        zw = z_events[max(0, k - window) : k]
        if method == "fhs":
            out[i] = fhs_standard_quantiles(zw, levels)
            continue
        if since >= refit:
            fits, since = (fit_gpd_tail(zw, tail, "lower"), fit_gpd_tail(zw, tail, "upper")), 0
        out[i] = evt_standard_quantiles(zw, levels, tail, fits)
        since += 1
    return out
