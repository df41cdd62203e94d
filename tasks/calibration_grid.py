"""The predictive distribution of a prediction row, read off its quantile grid (for calibration).

Every model stores its return quantiles at :data:`core.schema.QUANTILES` (0.01 ... 0.99). The
calibration layer needs the whole quantile function ``Q(u)`` of a row (ACI moves the level ``u``
away from the nominal one) and its inverse, the distribution function ``F(y)`` (the probability
integral transform of a realized return). Both come from the grid alone, whatever the family, the
same way :mod:`tasks.risk` treats a non-parametric row:

- between two schema levels ``Q`` is LINEAR in ``u``;
- below ``u0 = 0.01`` an exponential (Laplace-type) tail through ``q01`` and ``q025``:
  ``Q(u) = q01 + b log(u / 0.01)``, ``b = (q025 - q01) / log(2.5) >= 0``; above 0.99 its mirror
  through ``q975`` and ``q99``.

``F`` inverts that ``Q`` exactly, so ``y < Q(u)`` if and only if ``F(y) < u`` for a strictly
increasing grid: this is what makes the ACI recursion on ``F(y)`` the recursion on breaches of the
issued quantiles. Levels are clipped to ``[LEVEL_FLOOR, 1 - LEVEL_FLOOR]`` before evaluation.

Pure numpy.
"""

from __future__ import annotations

import math

import numpy as np

from core.schema import QUANTILES

#: The schema levels, in column order.
LEVELS = np.asarray(QUANTILES, dtype=float)
#: Working levels are clipped to ``[LEVEL_FLOOR, 1 - LEVEL_FLOOR]`` before a quantile is read.
LEVEL_FLOOR = 1e-6

_LO_LOG = math.log(LEVELS[1] / LEVELS[0])
_HI_LOG = math.log((1.0 - LEVELS[-2]) / (1.0 - LEVELS[-1]))


def tail_slopes(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scales ``b`` of the lower and upper exponential tails of each row of the grid ``q``."""
    b_lo = np.maximum((q[:, 1] - q[:, 0]) / _LO_LOG, 0.0)
    b_hi = np.maximum((q[:, -1] - q[:, -2]) / _HI_LOG, 0.0)
    return b_lo, b_hi


def grid_quantile(q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``Q_i(u[i, j])`` of each row ``i`` of the grid ``q``.

    Parameters
    ----------
    q : np.ndarray
        Non-decreasing quantile grid, shape ``(n, len(QUANTILES))``.
    u : np.ndarray
        Levels, shape ``(n, m)``; clipped to ``[LEVEL_FLOOR, 1 - LEVEL_FLOOR]``.

    Returns
    -------
    np.ndarray
        Shape ``(n, m)``; at a schema level it is the grid value itself.
    """
    q = np.asarray(q, dtype=float)
    u = np.clip(np.asarray(u, dtype=float), LEVEL_FLOOR, 1.0 - LEVEL_FLOOR)
    b_lo, b_hi = tail_slopes(q)
    rows = np.broadcast_to(np.arange(q.shape[0])[:, None], u.shape)
    j = np.clip(np.searchsorted(LEVELS, u, side="right") - 1, 0, LEVELS.size - 2)
    w = (u - LEVELS[j]) / (LEVELS[j + 1] - LEVELS[j])
    mid = q[rows, j] + w * (q[rows, j + 1] - q[rows, j])
    with np.errstate(divide="ignore"):
        below = q[:, :1] + b_lo[:, None] * np.log(u / LEVELS[0])
        above = q[:, -1:] - b_hi[:, None] * np.log((1.0 - u) / (1.0 - LEVELS[-1]))
    return np.where(u < LEVELS[0], below, np.where(u > LEVELS[-1], above, mid))


def grid_cdf(q: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``F_i(y[i])``: the inverse of :func:`grid_quantile` for row ``i`` at the value ``y[i]``.

    Parameters
    ----------
    q : np.ndarray
        Non-decreasing quantile grid, shape ``(n, len(QUANTILES))``.
    y : np.ndarray
        One value per row, shape ``(n,)``.

    Returns
    -------
    np.ndarray
        Probabilities in ``[0, 1]``, shape ``(n,)`` (0 or 1 beyond a flat tail).
    """
    q = np.asarray(q, dtype=float)
    y = np.asarray(y, dtype=float)
    b_lo, b_hi = tail_slopes(q)
    n = q.shape[0]
    j = np.clip(np.sum(q <= y[:, None], axis=1) - 1, 0, LEVELS.size - 2)
    idx = np.arange(n)
    span = q[idx, j + 1] - q[idx, j]
    safe = np.where(span > 0, span, 1.0)
    w = np.where(span > 0, np.clip((y - q[idx, j]) / safe, 0.0, 1.0), 1.0)
    mid = LEVELS[j] + w * (LEVELS[j + 1] - LEVELS[j])
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        below = np.where(b_lo > 0, LEVELS[0] * np.exp((y - q[:, 0]) / np.where(b_lo > 0, b_lo, 1.0)), 0.0)
        above = np.where(
            b_hi > 0, 1.0 - (1.0 - LEVELS[-1]) * np.exp(-(y - q[:, -1]) / np.where(b_hi > 0, b_hi, 1.0)), 1.0
        )
    return np.where(y < q[:, 0], below, np.where(y > q[:, -1], above, mid))
