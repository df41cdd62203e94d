"""Distribution families: from a (mean, variance) forecast to the return quantiles of the schema.

A family describes the *standardized* innovation ``z = (r - mean) / sqrt(var)`` of a return ``r``
whose forecast mean and variance are ``mean`` and ``var``. Its quantile at level ``p`` is
``mean + sqrt(var) * Q_z(p)``. Because ``sqrt(var) > 0`` and ``Q_z`` is non-decreasing, the quantiles
of every family are monotone in ``p``, and any model's variance forecast combines with any family.

Families
--------
``gaussian``
    ``z ~ N(0, 1)``; nothing to fit.
``student_t``
    Standardized Student-t: ``z = sqrt((nu - 2) / nu) * T_nu``, location 0 and unit variance, so
    ``var`` stays the return variance. ``nu`` is the maximum-likelihood estimate on the training
    standardized residuals, bounded to ``[2.1, 100]`` by default (``scipy.stats.t.logpdf`` maximised
    with ``scipy.optimize.minimize_scalar``; ``scipy.stats.t.fit`` cannot tie the scale to ``nu``).
    A model whose estimator already yields ``nu`` (GARCH-t) passes it in: ``StudentT(df=nu)``.
``skew_t``
    Standardized Jones-Faddy skew-t (``scipy.stats.jf_skew_t(a, b)``): ``z = (T - mu(a, b)) / sd(a, b)``,
    mean 0 and unit variance; ``a < b`` skews left (a heavier lower tail), ``a = b`` is a Student-t with
    ``2a`` degrees of freedom. ``(a, b)`` is the maximum-likelihood estimate on the training
    standardized residuals, each bounded to ``[1.05, 50]`` (``a, b > 1`` for a finite variance).
    ES: :meth:`SkewT.standard_es`.
``fhs``
    Filtered historical simulation: ``Q_z`` is the empirical quantile (``np.quantile``, linear
    interpolation) of the training standardized residuals themselves, not re-standardized, so a
    systematic bias of the variance forecast is carried into the quantiles.

Variance scale
--------------
Realized variance from intraday bars need not equal the variance of the close-to-close return: for
US equities RV covers regular hours only and misses the overnight gap; for 24x7 crypto on hourly bars
it slightly overstates it. :func:`fit_variance_scale` estimates ``c = mean(r^2) / mean(RV)`` on the
training window; an RV forecast becomes a return-variance forecast ``var = c * rv``, and a return-
variance forecast an RV forecast ``rv = var / c``.

Everything here is pure numpy/scipy. Fitting uses only the residuals given, which callers take from
the training window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from scipy import optimize, stats

from core.errors import ConfigError, DataError
from core.schema import QUANTILES

#: Fewest finite standardized residuals a fitted family accepts.
MIN_RESIDUALS = 30
#: Default bounds of the Student-t degrees of freedom (``nu > 2`` for a finite variance).
DF_BOUNDS: tuple[float, float] = (2.1, 100.0)
#: Default bounds of each Jones-Faddy skew-t shape ``a``, ``b`` (``> 1`` for a finite variance).
SKEW_T_BOUNDS: tuple[float, float] = (1.05, 50.0)


@runtime_checkable
class Family(Protocol):
    """A distribution of the standardized innovation, fitted on training residuals."""

    @property
    def name(self) -> str:
        """Family name stored with each prediction (``gaussian``, ``student_t``, ``skew_t``, ``fhs``)."""
        ...

    def fit(self, std_resid: np.ndarray) -> Family:
        """A fitted copy, estimated on TRAINING standardized residuals ``(r - mean) / sqrt(var)``."""
        ...

    def standard_quantiles(self, levels: Sequence[float] = QUANTILES) -> np.ndarray:
        """Quantiles of the standardized innovation at ``levels`` (non-decreasing)."""
        ...

    def quantiles(
        self, mean: np.ndarray | float, var: np.ndarray | float, levels: Sequence[float] = QUANTILES
    ) -> np.ndarray:
        """Return quantiles, shape ``(n, len(levels))``: ``mean + sqrt(var) * Q_z(levels)``."""
        ...

    def params(self) -> dict[str, Any]:
        """JSON-able fitted parameters."""
        ...


def _levels(levels: Sequence[float]) -> np.ndarray:
    arr = np.asarray(levels, dtype=float)
    if arr.ndim != 1 or arr.size == 0 or not np.all((arr > 0) & (arr < 1)):
        raise ConfigError(f"levels must be probabilities strictly inside (0, 1); got {list(levels)!r}")
    if np.any(np.diff(arr) < 0):
        raise ConfigError(f"levels must be non-decreasing; got {list(levels)!r}")
    return arr


def _residuals(std_resid: np.ndarray, family: str) -> np.ndarray:
    z = np.asarray(std_resid, dtype=float).ravel()
    z = z[np.isfinite(z)]
    if z.size < MIN_RESIDUALS:
        raise DataError(
            f"family {family!r} needs at least {MIN_RESIDUALS} finite standardized residuals; got {z.size}"
        )
    return z


def scale_quantiles(mean: np.ndarray | float, var: np.ndarray | float, std_q: np.ndarray) -> np.ndarray:
    """``mean + sqrt(var) * std_q`` row by row, shape ``(n, len(std_q))``.

    Parameters
    ----------
    mean, var : np.ndarray | float
        Forecast mean and variance, scalars or 1-d arrays of one length (broadcast).
    std_q : np.ndarray
        Non-decreasing quantiles of the standardized innovation.

    Returns
    -------
    np.ndarray
        Return quantiles; monotone along axis 1 because rounding preserves order.
    """
    m, v = np.broadcast_arrays(
        np.atleast_1d(np.asarray(mean, dtype=float)), np.atleast_1d(np.asarray(var, dtype=float))
    )
    if m.ndim != 1:
        raise DataError(f"mean and var must be scalars or 1-d arrays; got shapes {m.shape}")
    bad = ~(np.isfinite(v) & (v > 0)) | ~np.isfinite(m)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} forecast(s) have a non-finite mean or a variance that is not positive, "
            f"e.g. mean={m[bad][:3].tolist()}, var={v[bad][:3].tolist()}"
        )
    return m[:, None] + np.sqrt(v)[:, None] * np.asarray(std_q, dtype=float)[None, :]


@dataclass(frozen=True)
class Gaussian:
    """Standard normal innovations."""

    name: ClassVar[str] = "gaussian"

    def fit(self, std_resid: np.ndarray) -> Gaussian:
        """Nothing to estimate; returns ``self``."""
        return self

    def standard_quantiles(self, levels: Sequence[float] = QUANTILES) -> np.ndarray:
        """``scipy.stats.norm.ppf(levels)``."""
        return np.asarray(stats.norm.ppf(_levels(levels)), dtype=float)

    def quantiles(
        self, mean: np.ndarray | float, var: np.ndarray | float, levels: Sequence[float] = QUANTILES
    ) -> np.ndarray:
        """Return quantiles, shape ``(n, len(levels))``."""
        return scale_quantiles(mean, var, self.standard_quantiles(levels))

    def params(self) -> dict[str, Any]:
        """No parameters."""
        return {}


@dataclass(frozen=True)
class StudentT:
    """Standardized Student-t innovations (unit variance) with ``df`` degrees of freedom.

    Parameters
    ----------
    df : float | None
        Degrees of freedom; ``None`` until fitted.
    df_bounds : tuple[float, float]
        Search interval of the maximum-likelihood fit; the lower bound must exceed 2.
    """

    df: float | None = None
    df_bounds: tuple[float, float] = DF_BOUNDS
    name: ClassVar[str] = "student_t"

    def __post_init__(self) -> None:
        lo, hi = self.df_bounds
        if not (2.0 < lo < hi and math.isfinite(hi)):
            raise ConfigError(f"df_bounds must satisfy 2 < low < high < inf; got {self.df_bounds!r}")
        if self.df is not None and not (isinstance(self.df, int | float) and 2.0 < float(self.df) < math.inf):
            raise ConfigError(f"df must be a finite number > 2 (finite variance); got {self.df!r}")

    @staticmethod
    def unit_scale(df: float) -> float:
        """Scale ``sqrt((df - 2) / df)`` that gives a t distribution with ``df`` unit variance."""
        return math.sqrt((df - 2.0) / df)

    @staticmethod
    def log_likelihood(z: np.ndarray, df: float) -> float:
        """Log-likelihood of ``z`` under the standardized t with ``df`` degrees of freedom."""
        s = StudentT.unit_scale(df)
        return float(np.sum(stats.t.logpdf(z, df, loc=0.0, scale=s)))

    def fit(self, std_resid: np.ndarray) -> StudentT:
        """Maximum-likelihood ``df`` of the standardized t on the residuals, inside ``df_bounds``."""
        z = _residuals(std_resid, self.name)
        lo, hi = self.df_bounds
        res = optimize.minimize_scalar(
            lambda nu: -self.log_likelihood(z, nu), bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}
        )
        df = float(np.clip(res.x, lo, hi))
        return StudentT(df=df, df_bounds=self.df_bounds)

    def standard_quantiles(self, levels: Sequence[float] = QUANTILES) -> np.ndarray:
        """``scipy.stats.t.ppf(levels, df) * sqrt((df - 2) / df)``."""
        if self.df is None:
            raise ConfigError("student_t family has no df: fit it or pass df")
        return np.asarray(stats.t.ppf(_levels(levels), self.df), dtype=float) * self.unit_scale(self.df)

    def quantiles(
        self, mean: np.ndarray | float, var: np.ndarray | float, levels: Sequence[float] = QUANTILES
    ) -> np.ndarray:
        """Return quantiles, shape ``(n, len(levels))``."""
        return scale_quantiles(mean, var, self.standard_quantiles(levels))

    def params(self) -> dict[str, Any]:
        """``{"df": nu}``."""
        return {"df": self.df}


@dataclass(frozen=True)
class SkewT:
    """Standardized Jones-Faddy skew-t innovations (mean 0, unit variance) with shapes ``a``, ``b``.

    ``z = (T - mu) / sd`` with ``T ~ scipy.stats.jf_skew_t(a, b)`` and ``mu``, ``sd`` its mean and
    standard deviation, so ``var`` stays the return variance. ``a < b`` puts more mass in the lower
    tail; ``a = b`` is the standardized Student-t with ``2a`` degrees of freedom.

    Parameters
    ----------
    a, b : float | None
        Shapes; ``None`` until fitted (set both or neither).
    bounds : tuple[float, float]
        Search interval of each shape in the maximum-likelihood fit; the lower bound must exceed 1.
    """

    a: float | None = None
    b: float | None = None
    bounds: tuple[float, float] = SKEW_T_BOUNDS
    name: ClassVar[str] = "skew_t"

    def __post_init__(self) -> None:
        lo, hi = self.bounds
        if not (1.0 < lo < hi and math.isfinite(hi)):
            raise ConfigError(f"bounds must satisfy 1 < low < high < inf; got {self.bounds!r}")
        if (self.a is None) != (self.b is None):
            raise ConfigError("skew_t needs both shapes a and b, or neither")
        for v in (self.a, self.b):
            if v is not None and not (isinstance(v, int | float) and 1.0 < float(v) < math.inf):
                raise ConfigError(f"skew_t shapes must be finite numbers > 1 (finite variance); got {v!r}")

    @staticmethod
    def moments(a: float, b: float) -> tuple[float, float]:
        """Mean and standard deviation of ``jf_skew_t(a, b)`` (closed form, via scipy)."""
        mu, var = stats.jf_skew_t.stats(a, b, moments="mv")
        return float(mu), math.sqrt(float(var))

    @staticmethod
    def log_likelihood(z: np.ndarray, a: float, b: float) -> float:
        """Log-likelihood of ``z`` under the standardized skew-t with shapes ``a``, ``b``."""
        mu, sd = SkewT.moments(a, b)
        with np.errstate(divide="ignore"):
            return float(np.sum(stats.jf_skew_t.logpdf(mu + sd * z, a, b)) + z.size * math.log(sd))

    def fit(self, std_resid: np.ndarray) -> SkewT:
        """Maximum-likelihood ``(a, b)`` on the residuals (L-BFGS-B inside ``bounds``)."""
        z = _residuals(std_resid, self.name)
        lo, hi = self.bounds

        def nll(x: np.ndarray) -> float:
            ll = self.log_likelihood(z, float(x[0]), float(x[1]))
            return -ll if math.isfinite(ll) else 1e300

        start = np.clip([3.0, 3.0], lo, hi)
        res = optimize.minimize(nll, start, method="L-BFGS-B", bounds=[(lo, hi), (lo, hi)])
        a, b = (float(v) for v in np.clip(res.x, lo, hi))
        return SkewT(a=a, b=b, bounds=self.bounds)

    def _shapes(self) -> tuple[float, float]:
        if self.a is None or self.b is None:
            raise ConfigError("skew_t family has no shapes: fit it or pass a and b")
        return float(self.a), float(self.b)

    def standard_ppf(self, u: np.ndarray | float) -> np.ndarray:
        """Quantile function of the standardized innovation at levels ``u`` (any shape)."""
        a, b = self._shapes()
        mu, sd = self.moments(a, b)
        return np.asarray((stats.jf_skew_t.ppf(u, a, b) - mu) / sd, dtype=float)

    def standard_cdf(self, z: np.ndarray | float) -> np.ndarray:
        """Distribution function of the standardized innovation at ``z``."""
        a, b = self._shapes()
        mu, sd = self.moments(a, b)
        return np.asarray(stats.jf_skew_t.cdf(mu + sd * np.asarray(z, dtype=float), a, b), dtype=float)

    def standard_es(self, alpha: float) -> float:
        """ES ``E[z | z <= Q_z(alpha)]`` of the standardized innovation (numerical integration)."""
        a, b = self._shapes()
        if not (0.0 < alpha < 1.0):
            raise ConfigError(f"alpha must be inside (0, 1); got {alpha!r}")
        mu, sd = self.moments(a, b)
        q = float(stats.jf_skew_t.ppf(alpha, a, b))
        tail = stats.jf_skew_t.expect(lambda x: x, args=(a, b), ub=q, conditional=True)
        return (float(tail) - mu) / sd

    def standard_quantiles(self, levels: Sequence[float] = QUANTILES) -> np.ndarray:
        """``(jf_skew_t.ppf(levels, a, b) - mu) / sd``."""
        return self.standard_ppf(_levels(levels))

    def quantiles(
        self, mean: np.ndarray | float, var: np.ndarray | float, levels: Sequence[float] = QUANTILES
    ) -> np.ndarray:
        """Return quantiles, shape ``(n, len(levels))``."""
        return scale_quantiles(mean, var, self.standard_quantiles(levels))

    def params(self) -> dict[str, Any]:
        """``{"a": a, "b": b}``."""
        return {"a": self.a, "b": self.b}


@dataclass(frozen=True)
class FilteredHistorical:
    """Filtered historical simulation: empirical quantiles of training standardized residuals.

    Parameters
    ----------
    residuals : tuple[float, ...]
        The sorted finite training residuals; empty until fitted.
    """

    residuals: tuple[float, ...] = field(default=(), repr=False)
    name: ClassVar[str] = "fhs"

    def fit(self, std_resid: np.ndarray) -> FilteredHistorical:
        """Keep the finite residuals (sorted)."""
        z = _residuals(std_resid, self.name)
        return FilteredHistorical(residuals=tuple(np.sort(z).tolist()))

    def standard_quantiles(self, levels: Sequence[float] = QUANTILES) -> np.ndarray:
        """``np.quantile(residuals, levels)`` (linear interpolation)."""
        if not self.residuals:
            raise ConfigError("fhs family has no residuals: fit it first")
        q = np.quantile(np.asarray(self.residuals), _levels(levels))
        return np.maximum.accumulate(q)  # guards against interpolation round-off on ties

    def quantiles(
        self, mean: np.ndarray | float, var: np.ndarray | float, levels: Sequence[float] = QUANTILES
    ) -> np.ndarray:
        """Return quantiles, shape ``(n, len(levels))``."""
        return scale_quantiles(mean, var, self.standard_quantiles(levels))

    def params(self) -> dict[str, Any]:
        """Number of residuals, their mean and standard deviation, and the standardized quantiles."""
        if not self.residuals:
            return {"n": 0}
        z = np.asarray(self.residuals)
        q = self.standard_quantiles(QUANTILES)
        return {
            "n": int(z.size),
            "mean": float(z.mean()),
            "std": float(z.std()),
            "z_quantiles": [float(x) for x in q],
        }


FAMILIES: dict[str, type[Gaussian] | type[StudentT] | type[SkewT] | type[FilteredHistorical]] = {
    Gaussian.name: Gaussian,
    StudentT.name: StudentT,
    SkewT.name: SkewT,
    FilteredHistorical.name: FilteredHistorical,
}


def family_names() -> list[str]:
    """Names :func:`get_family` accepts."""
    return sorted(FAMILIES)


def get_family(name: str, **kwargs: Any) -> Family:
    """A new, unfitted family by name (``gaussian``, ``student_t``, ``skew_t`` or ``fhs``).

    Parameters
    ----------
    name : str
        Family name.
    **kwargs
        Constructor arguments, e.g. ``df_bounds`` or ``df`` for ``student_t``.

    Raises
    ------
    ConfigError
        For an unknown name (the message names the parameter ``family``) or bad arguments.
    """
    if name not in FAMILIES:
        raise ConfigError(f"family must be one of {family_names()}; got {name!r}")
    try:
        return FAMILIES[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for family {name!r}: {exc}") from None


def fit_variance_scale(ret: np.ndarray, rv_forecast_or_rv: np.ndarray) -> float:
    """Ratio ``mean(r^2) / mean(rv)`` that turns an RV (forecast) into a return variance.

    Use it on the training window only: pairs of a session's return and its realized variance (or
    the RV forecast for that session). Pairs with a non-finite member are ignored.

    Parameters
    ----------
    ret : np.ndarray
        Close-to-close returns.
    rv_forecast_or_rv : np.ndarray
        Realized variances (or RV forecasts) of the same sessions.

    Returns
    -------
    float
        The scale ``c``; a return-variance forecast is ``c * rv``.

    Raises
    ------
    DataError
        When fewer than two finite pairs remain, or either mean is not positive.
    """
    r = np.asarray(ret, dtype=float).ravel()
    v = np.asarray(rv_forecast_or_rv, dtype=float).ravel()
    if r.shape != v.shape:
        raise DataError(f"ret and rv must have one length; got {r.size} and {v.size}")
    ok = np.isfinite(r) & np.isfinite(v)
    if ok.sum() < 2:
        raise DataError(f"variance scale needs at least 2 finite (return, rv) pairs; got {int(ok.sum())}")
    num, den = float(np.mean(r[ok] ** 2)), float(np.mean(v[ok]))
    if not (num > 0 and den > 0):
        raise DataError(f"variance scale needs positive mean(r^2) and mean(rv); got {num!r} and {den!r}")
    return num / den
