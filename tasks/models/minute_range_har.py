"""Minute-mode range HAR: next-minute variance from the high-low ranges of recent bars.

A one-minute squared return is a very noisy measure of that minute's variance; the bar's high-low
range carries far more of it (Parkinson 1980; Alizadeh, Brandt & Diebold 2002). The model is a HAR
(Corsi 2009) in the log of the Parkinson variance ``RP_j = (ln H_j / L_j)^2 / (4 ln 2)`` averaged
over the last ``k`` minutes, one term per window in ``windows``::

    ln v[p] = b0 + sum_k b_k ln(eps + mean(RP[p - k .. p - 1]))

``eps`` (:data:`EPS_SHARE` of the mean training squared return) keeps a run of flat bars finite.
The coefficients minimise QLIKE ``mean(r^2 / v + ln v)`` on the training returns, which is convex in
them under this log link, so ``scipy.optimize`` finds the optimum. ``forecast(returns, ranges)[p]``
uses bars before ``p`` only (the window means are differences of a cumulative sum ending at
``p - 1``); ``p = 0`` gets the training variance. In minute mode both inputs are deseasonalised by
the same time-of-day factor.

The standardized training residuals fit the return family (``student_t`` by default).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from scipy import optimize

from core.errors import ConfigError, DataError
from tasks.models.families import Family, family_names, get_family

_log = logging.getLogger(__name__)

#: Default window lengths in minutes (one minute, five, a quarter hour, an hour, four hours).
DEFAULT_WINDOWS: tuple[int, ...] = (1, 5, 15, 60, 240)
#: Floor added to every window mean, as a share of the mean training squared return.
EPS_SHARE = 1e-3


def parkinson_variance(log_range: np.ndarray) -> np.ndarray:
    """``(ln H / L)^2 / (4 ln 2)``: the Parkinson variance of each bar from its log high-low range."""
    return np.asarray(log_range, dtype=float) ** 2 / (4.0 * math.log(2.0))


def window_means(values: np.ndarray, windows: tuple[int, ...]) -> np.ndarray:
    """Column ``j``, row ``p``: mean of ``values[p - k_j .. p - 1]`` (fewer at the start; 0 at ``p = 0``)."""
    csum = np.concatenate([[0.0], np.cumsum(values)])
    p = np.arange(values.size + 1)
    cols = []
    for k in windows:
        lo = np.maximum(p - k, 0)
        cols.append((csum[p] - csum[lo]) / np.maximum(p - lo, 1))
    return np.column_stack(cols)


def _qlike_fit(design: np.ndarray, r2: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Coefficients minimising ``mean(r2 exp(-X b) + X b)`` (QLIKE under the log link)."""

    def loss(b: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ b
        w = r2 * np.exp(-eta)
        return float(np.mean(w + eta)), design.T @ (1.0 - w) / r2.size

    res = optimize.minimize(loss, start, jac=True, method="L-BFGS-B")
    if not np.all(np.isfinite(res.x)):
        raise DataError("range_har: the QLIKE fit did not converge to finite coefficients")
    if not res.success:  # usually a line search stalled at the optimum; the forecasts are still usable
        _log.warning("range_har: the QLIKE fit stopped early (%s); loss %.6g", res.message, res.fun)
    return np.asarray(res.x)


class MinuteRangeHar:
    """HAR in log Parkinson range variance, fitted by QLIKE (module docstring).

    Parameters
    ----------
    windows : tuple[int, ...] | list[int]
        Window lengths in minutes, positive and distinct.
    family : str
        Standardized-return family.
    """

    name: str = "range_har_minute"
    #: Minute mode passes the bars' log high-low ranges to ``fit`` and ``forecast``.
    needs_ranges: bool = True

    def __init__(self, windows: Sequence[int] = DEFAULT_WINDOWS, family: str = "student_t") -> None:
        ws = tuple(windows) if isinstance(windows, list | tuple) else ()
        if not ws or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ws):
            raise ConfigError(f"windows must be a list of positive whole minutes; got {windows!r}")
        if len(set(ws)) != len(ws):
            raise ConfigError(f"windows must be distinct; got {list(ws)}")
        if family not in family_names():
            raise ConfigError(f"family must be one of {family_names()}; got {family!r}")
        self.windows: tuple[int, ...] = tuple(sorted(ws))
        self.family = family
        self.coef: np.ndarray = np.empty(0)
        self.eps: float = float("nan")
        self.unconditional: float = float("nan")
        self.family_fit: Family | None = None

    def config(self) -> dict[str, Any]:
        """JSON-able configuration and the fitted coefficients."""
        return {"windows": list(self.windows), "family": self.family,
                "coef": [float(c) for c in self.coef], "eps": self.eps}  # fmt: skip

    def _inputs(self, returns: Any, ranges: Any, least: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns and log ranges as float arrays of one length (at least ``least``), checked."""
        r = np.asarray(returns, dtype=np.float64).ravel()
        if ranges is None:
            raise DataError(f"{self.name}: needs each bar's high and low (log ranges); none given")
        hl = np.asarray(ranges, dtype=np.float64).ravel()
        if hl.size != r.size:
            raise DataError(f"{self.name}: {hl.size} ranges for {r.size} returns")
        bad = ~np.isfinite(hl) | (hl < 0)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{self.name}: {int(bad.sum())} bars have no valid high-low range (high < low or "
                f"missing), first at position {first}"
            )
        if r.size < least:
            raise DataError(f"{self.name}: {r.size} returns are too few (need {least})")
        return r, hl

    def _design(self, hl: np.ndarray) -> np.ndarray:
        """Row ``p``: 1 and the log window means of the Parkinson variance of the bars before ``p``."""
        means = window_means(parkinson_variance(hl), self.windows)
        return np.column_stack([np.ones(means.shape[0]), np.log(means + self.eps)])

    def fit(self, returns: Any, ranges: Any = None) -> Self:
        """Fit the coefficients by training QLIKE, then the family on the standardized residuals."""
        r, hl = self._inputs(returns, ranges, least=max(self.windows) + 200)
        if not np.isfinite(r).all():
            raise DataError(f"{self.name}: returns contain non-finite values")
        self.unconditional = float(np.mean(r**2))
        if not self.unconditional > 0:
            raise DataError(f"{self.name}: training returns have zero variance")
        self.eps = EPS_SHARE * self.unconditional
        design = self._design(hl)[: r.size]
        first = max(self.windows)
        start = np.zeros(design.shape[1])
        start[0] = math.log(self.unconditional)
        self.coef = _qlike_fit(design[first:], r[first:] ** 2, start)
        var = self._path(design)[: r.size]
        self.family_fit = get_family(self.family).fit(r / np.sqrt(var))
        return self

    def _path(self, design: np.ndarray) -> np.ndarray:
        """Variance forecasts of the design rows (the first, with no bar before it: the training mean)."""
        var = np.exp(design @ self.coef)
        var[0] = self.unconditional
        return var

    def forecast(self, returns: Any, ranges: Any = None) -> np.ndarray:
        """Variance forecasts, length ``len(returns) + 1`` (row ``p`` from bars before ``p``)."""
        if self.family_fit is None:
            raise ConfigError(f"{self.name} is not fitted: call fit(returns, ranges) first")
        _, hl = self._inputs(returns, ranges, least=1)
        return self._path(self._design(hl))
