"""Cheap minute-mode baselines behind :class:`tasks.models.base.MinuteForecaster`: EWMA and GARCH(1,1).

Both take one chronological array of one-minute returns (in minute mode: the DESEASONALISED returns)
and give ``forecast(returns)[p]``, the variance of ``returns[p]`` from returns before ``p`` only, with
one extra last entry for the next, unseen return, exactly like
:class:`tasks.models.transformer.MinuteTransformer`, so the minute backtest treats every model alike.

``ewma``
    RiskMetrics ``s2[p] = lam s2[p - 1] + (1 - lam) r[p - 1]^2``
    (:func:`tasks.models.baselines.ewma_variance`).
    ``lam`` is chosen on the TRAINING returns by QLIKE over a grid (``lam=None``, default) or fixed.
``garch``
    GARCH(1,1), zero mean, Student-t innovations, fitted by ``arch`` on the training returns scaled to
    unit variance; the fitted recursion is then run over the whole array with those parameters
    (never refitted), started from the training variance.

The standardized training residuals ``r / sqrt(forecast)`` fit the return family (``student_t`` by
default, :mod:`tasks.models.families`) that turns variances into quantiles.
"""

from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np
from scipy.signal import lfilter

from core.errors import ConfigError, DataError
from tasks.models.baselines import ewma_backcast, ewma_variance
from tasks.models.families import Family, family_names, get_family

#: The ``lam`` grid searched by :class:`MinuteEwma` on the training returns.
EWMA_GRID: tuple[float, ...] = (0.9, 0.94, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)


def _returns(returns: Any, name: str, least: int = 50) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64).ravel()
    if r.size < least:
        raise DataError(f"{name}: {r.size} returns are too few (need {least})")
    if not np.isfinite(r).all():
        raise DataError(f"{name}: returns contain non-finite values")
    return r


def _qlike(r: np.ndarray, var: np.ndarray) -> float:
    v = np.maximum(var, 1e-300)
    return float(np.mean(r**2 / v + np.log(v)))


def _check_family(family: str) -> str:
    if family not in family_names():
        raise ConfigError(f"family must be one of {family_names()}; got {family!r}")
    return family


class MinuteEwma:
    """EWMA variance of one-minute returns (module docstring).

    Parameters
    ----------
    lam : float | None
        Decay; None chooses it from :data:`EWMA_GRID` by training QLIKE.
    family : str
        Standardized-return family.
    """

    name: str = "ewma_minute"

    def __init__(self, lam: float | None = None, family: str = "student_t") -> None:
        if lam is not None and not (isinstance(lam, int | float) and 0 < lam < 1):
            raise ConfigError(f"lam must be None or a number in (0, 1); got {lam!r}")
        self.lam_setting = lam
        self.family = _check_family(family)
        self.lam: float = 0.97 if lam is None else float(lam)
        self.start: float = float("nan")
        self.family_fit: Family | None = None

    def config(self) -> dict[str, Any]:
        """JSON-able configuration (the chosen ``lam`` included)."""
        return {"lam": self.lam_setting, "lam_fitted": self.lam, "family": self.family}

    def _path(self, r: np.ndarray, lam: float) -> np.ndarray:
        out = np.empty(r.size + 1)
        out[0] = self.start
        out[1:] = ewma_variance(r**2, lam, self.start)
        return out

    def fit(self, returns: Any) -> Self:
        """Choose ``lam`` (when not fixed) and fit the family on the training returns."""
        r = _returns(returns, self.name)
        self.start = ewma_backcast(r**2, 0.97)
        if self.lam_setting is None:
            self.lam = min(EWMA_GRID, key=lambda lam: _qlike(r, self._path(r, lam)[:-1]))
        var = self._path(r, self.lam)[:-1]
        self.family_fit = get_family(self.family).fit(r / np.sqrt(var))
        return self

    def forecast(self, returns: Any) -> np.ndarray:
        """Variance forecasts, length ``len(returns) + 1`` (see the module docstring)."""
        if self.family_fit is None:
            raise ConfigError(f"{self.name} is not fitted: call fit(returns) first")
        r = np.asarray(returns, dtype=np.float64).ravel()
        return self._path(np.nan_to_num(r), self.lam)


class MinuteGarch:
    """GARCH(1,1) with Student-t innovations on one-minute returns (module docstring).

    Parameters
    ----------
    family : str
        Standardized-return family (fitted on the training residuals).
    """

    name: str = "garch_minute"

    def __init__(self, family: str = "student_t") -> None:
        self.family = _check_family(family)
        self.scale: float = 1.0
        self.params: dict[str, float] = {}
        self.family_fit: Family | None = None

    def config(self) -> dict[str, Any]:
        """JSON-able configuration and the fitted parameters (unit-variance scale)."""
        return {"family": self.family, "params": dict(self.params), "scale": self.scale}

    def _path(self, r: np.ndarray) -> np.ndarray:
        """``h[p]`` for ``p = 0 .. len(r)`` from the fitted recursion, ``h[0]`` = unconditional 1."""
        y2 = (r / self.scale) ** 2
        om, al, be = self.params["omega"], self.params["alpha"], self.params["beta"]
        c = om / (1.0 - be)  # h[p] - c = al y2[p - 1] + be (h[p - 1] - c)
        h0 = 1.0
        g, _ = lfilter([al], [1.0, -be], y2, zi=[be * (h0 - c)])
        h = np.concatenate([[h0], g + c])
        return h * self.scale**2

    def fit(self, returns: Any) -> Self:
        """Fit GARCH(1,1)-t by ``arch`` on the training returns scaled to unit variance."""
        from arch import arch_model

        r = _returns(returns, self.name, least=200)
        self.scale = float(np.std(r))
        if not self.scale > 0:
            raise DataError(f"{self.name}: training returns have zero variance")
        y = r / self.scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = arch_model(y, mean="Zero", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(
                disp="off", show_warning=False
            )
        p = res.params
        self.params = {
            "omega": float(p["omega"]),
            "alpha": float(p["alpha[1]"]),
            "beta": float(p["beta[1]"]),
            "nu": float(p["nu"]) if "nu" in p else float("nan"),
        }
        if not (self.params["beta"] < 1.0):
            raise DataError(f"{self.name}: fitted beta {self.params['beta']:.4f} is not below 1")
        var = self._path(r)[:-1]
        self.family_fit = get_family(self.family).fit(r / np.sqrt(var))
        return self

    def forecast(self, returns: Any) -> np.ndarray:
        """Variance forecasts, length ``len(returns) + 1``."""
        if self.family_fit is None:
            raise ConfigError(f"{self.name} is not fitted: call fit(returns) first")
        return self._path(np.nan_to_num(np.asarray(returns, dtype=np.float64).ravel()))
