"""Risk backtests: VaR and ES from the predicted return distribution, and the tests a risk team reads.

Pure functions, numpy/polars in, frames and :class:`TestResult` out; no I/O, no Prefect.

Sign convention
---------------
Everything is in RETURN space, for a long position of one unit. ``var95`` and ``var99`` are the 5% and
1% quantiles of the target session's return (``q05``, ``q01``), so they are usually NEGATIVE numbers;
``es975`` and ``es99`` are the expected return below the 2.5% and 1% quantiles, ``E[r | r <= q_a]``,
also negative and never above the matching quantile. A VaR *breach* (an exception, a hit) is
``ret < var``. Multiply by -1 for the loss-positive convention of Basel texts.

ES from a prediction row
------------------------
``gaussian`` and ``student_t`` rows: exact, from ``(mean, variance)`` and ``df`` (``params`` JSON):
``ES_a = mean - sd * phi(z_a) / a`` for the normal and, for the unit-variance t with ``nu`` degrees of
freedom, ``ES_a = mean - sd * s * f_nu(t_a) * (nu + t_a^2) / ((nu - 1) * a)`` with ``s = sqrt((nu-2)/nu)``.
Other families (``fhs``, ``quantile``): ``ES_a = (1/a) * integral_0^a Q(u) du`` of a quantile function
``Q`` that interpolates the predicted quantiles LINEARLY in ``u`` between the schema levels and, below
the lowest level ``u0 = 0.01``, follows an exponential (Laplace-type) tail through ``q01`` and ``q025``:
``Q(u) = q01 + b * log(u / 0.01)``, ``b = (q025 - q01) / log(2.5) >= 0``. Its integral below 0.01 is
``0.01 * (q01 - b)``. For a normal distribution this overstates the size of ES99 by about 2.3% and of
ES97.5 by about 1.6% (conservative; measured in the tests); the same ``Q`` drives the simulations of the
ES backtest for those families, so the test is consistent with the ES it checks.

Tests
-----
Kupiec (1995) proportion of failures and Christoffersen (1998) independence and conditional coverage
are likelihood-ratio tests with chi-square p-values (``0 * log 0 = 0``, so zero counts are fine); the
conditional-coverage statistic is ``LR_pof + LR_ind`` (chi-square, 2 df), as in Jorion and MATLAB's
``varbacktest``. The Basel traffic light counts 99% VaR exceptions in the last 250 sessions. The ES
backtest is Acerbi and Szekely (2014) test 2 (``Z2``) with a one-sided Monte-Carlo p-value from
simulations under the predicted distributions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import polars as pl
from scipy import special, stats

from core.errors import ConfigError, DataError
from core.schema import QUANTILES, quantile_column
from tasks.models.base import MinuteForecaster

#: ``(u, rows) -> Q_rows(u)``: the predictive return quantile of row ``rows[i]`` at level ``u[i]``.
QuantileFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: VaR levels (tail probabilities) and the quantile column each one is.
VAR_LEVELS: dict[str, float] = {"var95": 0.05, "var99": 0.01}
#: ES levels (tail probabilities).
ES_LEVELS: dict[str, float] = {"es975": 0.025, "es99": 0.01}
#: Return intervals scored: name -> (lower level, upper level).
INTERVALS: dict[str, tuple[float, float]] = {"80": (0.10, 0.90), "90": (0.05, 0.95)}
#: Families with an exact ES from (mean, variance, df).
PARAMETRIC_FAMILIES = ("gaussian", "student_t")

_LEVELS = np.asarray(QUANTILES, dtype=float)
_QCOLS = [quantile_column(q) for q in QUANTILES]


@dataclass(frozen=True)
class TestResult:
    """One statistical test: its name, statistic, p-value and details (counts, settings).

    Attributes
    ----------
    name : str
        ``kupiec_pof``, ``christoffersen_ind``, ``christoffersen_cc``, ``basel``, ``es_z2``.
    statistic : float
        The test statistic (NaN when undefined, e.g. no observations).
    pvalue : float
        Its p-value (NaN when undefined; ``basel`` has none).
    detail : dict
        Plain JSON-able extras.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str
    statistic: float
    pvalue: float
    detail: dict[str, Any] = field(default_factory=dict)

    def rejects(self, level: float = 0.05) -> bool:
        """Whether the test rejects at ``level`` (False when the p-value is undefined)."""
        return bool(np.isfinite(self.pvalue) and self.pvalue < level)


# ----------------------------------------------------------------------------------------- helpers
def _hits(hits: Sequence[bool] | np.ndarray) -> np.ndarray:
    arr = np.asarray(hits)
    if arr.ndim != 1:
        raise DataError(f"hits must be a 1-d sequence of 0/1; got shape {arr.shape}")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise DataError("hits must hold only 0/1 (or booleans)")
    return arr.astype(np.int64)


def _prob(p: float, name: str = "p") -> float:
    if not (isinstance(p, int | float) and 0.0 < float(p) < 1.0):
        raise ConfigError(f"{name} must be a probability strictly inside (0, 1); got {p!r}")
    return float(p)


def _bernoulli_ll(n0: float, n1: float, prob: float) -> float:
    """``n0 log(1 - prob) + n1 log(prob)`` with ``0 log 0 = 0``."""
    return float(special.xlogy(n0, 1.0 - prob) + special.xlogy(n1, prob))


# ------------------------------------------------------------------------------------------- tests
def kupiec_pof(hits: Sequence[bool] | np.ndarray, p: float) -> TestResult:
    """Kupiec (1995) proportion-of-failures likelihood-ratio test.

    ``LR = -2 [ (n-x) log(1-p) + x log p - (n-x) log(1-x/n) - x log(x/n) ]``, chi-square with 1 df.

    Parameters
    ----------
    hits : array-like of 0/1
        1 where the return fell below the VaR.
    p : float
        Expected exception probability (0.01 for 99% VaR).

    Returns
    -------
    TestResult
        ``detail``: ``n``, ``exceptions``, ``rate``, ``expected``. With ``n == 0`` the statistic and
        p-value are NaN.
    """
    h, p = _hits(hits), _prob(p)
    n, x = int(h.size), int(h.sum())
    detail: dict[str, Any] = {"n": n, "exceptions": x, "rate": x / n if n else math.nan, "expected": p * n}
    if n == 0:
        return TestResult("kupiec_pof", math.nan, math.nan, detail)
    pi = x / n
    lr = -2.0 * (_bernoulli_ll(n - x, x, p) - _bernoulli_ll(n - x, x, pi))
    lr = max(lr, 0.0)
    return TestResult("kupiec_pof", lr, float(stats.chi2.sf(lr, 1)), detail)


def transition_counts(hits: Sequence[bool] | np.ndarray) -> dict[str, int]:
    """Counts ``n00, n01, n10, n11`` of consecutive (previous, current) hit pairs."""
    h = _hits(hits)
    prev, cur = h[:-1], h[1:]
    return {
        "n00": int(np.sum((prev == 0) & (cur == 0))),
        "n01": int(np.sum((prev == 0) & (cur == 1))),
        "n10": int(np.sum((prev == 1) & (cur == 0))),
        "n11": int(np.sum((prev == 1) & (cur == 1))),
    }


def christoffersen_independence(hits: Sequence[bool] | np.ndarray) -> TestResult:
    """Christoffersen (1998) independence LR test against a first-order Markov chain of hits.

    ``pi01 = n01/(n00+n01)``, ``pi11 = n11/(n10+n11)``, ``pi = (n01+n11)/(n-1)``;
    ``LR = -2 [ log L(pi) - log L(pi01, pi11) ]``, chi-square with 1 df. Empty transition rows (no
    exception before the last session) contribute nothing (``0 log 0 = 0``).

    Parameters
    ----------
    hits : array-like of 0/1

    Returns
    -------
    TestResult
        ``detail``: the four transition counts and ``pi01``, ``pi11``. Fewer than two observations give
        NaN.
    """
    h = _hits(hits)
    c = transition_counts(h)
    n00, n01, n10, n11 = c["n00"], c["n01"], c["n10"], c["n11"]
    total = n00 + n01 + n10 + n11
    row0, row1 = n00 + n01, n10 + n11
    pi01 = n01 / row0 if row0 else 0.0
    pi11 = n11 / row1 if row1 else 0.0
    detail: dict[str, Any] = {**c, "pi01": pi01 if row0 else math.nan, "pi11": pi11 if row1 else math.nan}
    if total == 0:
        return TestResult("christoffersen_ind", math.nan, math.nan, detail)
    pi = (n01 + n11) / total
    ll0 = _bernoulli_ll(n00 + n10, n01 + n11, pi)
    ll1 = _bernoulli_ll(n00, n01, pi01) + _bernoulli_ll(n10, n11, pi11)
    lr = max(-2.0 * (ll0 - ll1), 0.0)
    return TestResult("christoffersen_ind", lr, float(stats.chi2.sf(lr, 1)), detail)


def christoffersen_cc(hits: Sequence[bool] | np.ndarray, p: float) -> TestResult:
    """Christoffersen (1998) conditional coverage: ``LR_cc = LR_pof + LR_ind``, chi-square with 2 df.

    Parameters
    ----------
    hits : array-like of 0/1
    p : float
        Expected exception probability.

    Returns
    -------
    TestResult
        ``detail``: ``lr_pof``, ``lr_ind`` and the counts of both parts.
    """
    pof = kupiec_pof(hits, p)
    ind = christoffersen_independence(hits)
    lr = pof.statistic + ind.statistic
    detail = {"lr_pof": pof.statistic, "lr_ind": ind.statistic, **pof.detail, **ind.detail}
    if not math.isfinite(lr):
        return TestResult("christoffersen_cc", math.nan, math.nan, detail)
    return TestResult("christoffersen_cc", lr, float(stats.chi2.sf(lr, 2)), detail)


def basel_thresholds(n: int, p: float = 0.01) -> tuple[int, int]:
    """First exception counts of the yellow and red zones for ``n`` observations.

    The Basel Committee (1996) zones are binomial: yellow starts at the smallest ``k`` with
    ``P(X <= k) >= 95%`` and red at the smallest ``k`` with ``P(X <= k) >= 99.99%``,
    ``X ~ Binomial(n, p)``. For ``n = 250, p = 0.01`` this is the familiar 5 and 10.
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1; got {n}")
    k = np.arange(n + 1)
    cdf = stats.binom.cdf(k, n, _prob(p))
    yellow = int(k[np.argmax(cdf >= 0.95)]) if np.any(cdf >= 0.95) else n + 1
    red = int(k[np.argmax(cdf >= 0.9999)]) if np.any(cdf >= 0.9999) else n + 1
    return yellow, red


def basel_zone(hits: Sequence[bool] | np.ndarray, window: int = 250, p: float = 0.01) -> TestResult:
    """Basel traffic light on the exceptions of the last ``window`` sessions of 99% VaR.

    With ``window`` (250) or more observations the zones are green 0-4, yellow 5-9, red 10+. With
    fewer, the thresholds are rescaled by the same binomial rule on the observations available
    (:func:`basel_thresholds`), and ``detail["scaled"]`` is True.

    Parameters
    ----------
    hits : array-like of 0/1
        Exceptions in time order.
    window : int
        Sessions counted (the last ones).
    p : float
        Tail probability of the VaR (0.01).

    Returns
    -------
    TestResult
        ``statistic`` = exceptions in the window, ``pvalue`` = ``P(X >= exceptions)`` under the
        binomial; ``detail``: ``zone`` (``green``/``yellow``/``red``, ``none`` without data),
        ``n_window``, ``yellow_from``, ``red_from``, ``scaled``.
    """
    if window < 1:
        raise ConfigError(f"window must be >= 1; got {window}")
    h = _hits(hits)[-window:]
    n, x = int(h.size), int(h.sum())
    if n == 0:
        detail0 = {"zone": "none", "n_window": 0, "exceptions": 0, "scaled": True}
        return TestResult("basel", math.nan, math.nan, detail0)
    yellow, red = basel_thresholds(n, p)
    zone = "green" if x < yellow else ("yellow" if x < red else "red")
    detail = {
        "zone": zone,
        "exceptions": x,
        "n_window": n,
        "yellow_from": yellow,
        "red_from": red,
        "scaled": n < window,
    }
    return TestResult("basel", float(x), float(stats.binom.sf(x - 1, n, p)), detail)


# -------------------------------------------------------------------------------------- VaR and ES
def normal_es(alpha: float) -> float:
    """ES (expected value below the ``alpha`` quantile) of the standard normal: ``-phi(z_a)/a``."""
    a = _prob(alpha, "alpha")
    return float(-stats.norm.pdf(stats.norm.ppf(a)) / a)


def student_t_es(alpha: float, df: np.ndarray | float) -> np.ndarray:
    """ES of the UNIT-VARIANCE Student-t with ``df`` (> 2) degrees of freedom at tail ``alpha``.

    ``-s * f(t_a) (df + t_a^2) / ((df - 1) a)``, ``t_a`` the t quantile, ``s = sqrt((df - 2)/df)``.
    """
    a = _prob(alpha, "alpha")
    nu = np.asarray(df, dtype=float)
    if np.any(~(nu > 2)):
        raise DataError("student_t ES needs df > 2")
    t = stats.t.ppf(a, nu)
    return np.asarray(-np.sqrt((nu - 2) / nu) * stats.t.pdf(t, nu) * (nu + t**2) / ((nu - 1) * a))


def _tail_slope(q: np.ndarray) -> np.ndarray:
    """``b`` of the exponential tail below level 0.01 (``q`` columns in QUANTILES order)."""
    return np.maximum((q[:, 1] - q[:, 0]) / math.log(_LEVELS[1] / _LEVELS[0]), 0.0)


def interpolated_quantile(q: np.ndarray, u: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The interpolated quantile function of the module docstring at ``(u[i], row rows[i])``.

    Linear in ``u`` between the schema levels, exponential tail below 0.01 and (mirrored) above 0.99.

    Parameters
    ----------
    q : np.ndarray
        Predicted quantiles, shape ``(n_rows, len(QUANTILES))``, columns in :data:`QUANTILES` order.
    u : np.ndarray
        Levels in (0, 1).
    rows : np.ndarray
        Row index of each level.
    """
    u = np.asarray(u, dtype=float)
    rows = np.asarray(rows, dtype=np.int64)
    qr = q[rows]
    out = np.empty(u.size)
    lo, hi = _LEVELS[0], _LEVELS[-1]
    below, above = u < lo, u > hi
    mid = ~(below | above)
    if below.any():
        b = _tail_slope(qr[below])
        out[below] = qr[below, 0] + b * np.log(u[below] / lo)
    if above.any():
        b_up = np.maximum((qr[above, -1] - qr[above, -2]) / math.log((1 - _LEVELS[-2]) / (1 - hi)), 0.0)
        out[above] = qr[above, -1] - b_up * np.log((1 - u[above]) / (1 - hi))
    if mid.any():
        j = np.clip(np.searchsorted(_LEVELS, u[mid], side="right") - 1, 0, _LEVELS.size - 2)
        w = (u[mid] - _LEVELS[j]) / (_LEVELS[j + 1] - _LEVELS[j])
        qm = qr[mid]
        idx = np.arange(qm.shape[0])
        out[mid] = qm[idx, j] + w * (qm[idx, j + 1] - qm[idx, j])
    return out


def interpolated_es(q: np.ndarray, alpha: float) -> np.ndarray:
    """``(1/a) * integral_0^a Q(u) du`` of :func:`interpolated_quantile`, per row (exact integral).

    ``alpha`` must be one of the schema levels at or below 0.5 (0.01, 0.025, 0.05, 0.10, 0.50).
    """
    a = _prob(alpha, "alpha")
    k = int(np.flatnonzero(np.isclose(_LEVELS, a))[0]) if np.any(np.isclose(_LEVELS, a)) else -1
    if k < 0 or a > 0.5:
        raise ConfigError(f"alpha must be a schema level <= 0.5 for interpolated ES; got {alpha}")
    q = np.asarray(q, dtype=float)
    total = _LEVELS[0] * (q[:, 0] - _tail_slope(q))
    for j in range(k):
        total = total + (_LEVELS[j + 1] - _LEVELS[j]) * 0.5 * (q[:, j] + q[:, j + 1])
    return np.asarray(total / a)


def _family_params(pred: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(family, df) arrays; df NaN where the family is not student_t or df is missing."""
    fam = np.asarray(pred["family"].fill_null("quantile").to_list(), dtype=object)
    df = np.full(pred.height, np.nan)
    params = pred["params"].to_list() if "params" in pred.columns else [None] * pred.height
    for i in np.flatnonzero(fam == "student_t"):
        try:
            value = json.loads(params[i] or "{}").get("df")
        except (json.JSONDecodeError, AttributeError):
            value = None
        if isinstance(value, int | float) and value > 2:
            df[i] = float(value)
    return fam, df


def _quantile_matrix(pred: pl.DataFrame) -> np.ndarray:
    missing = [c for c in _QCOLS if c not in pred.columns]
    if missing:
        raise DataError(f"prediction frame lacks quantile columns {missing}")
    return pred.select(_QCOLS).cast(pl.Float64).to_numpy()


def _parametric_mask(pred: pl.DataFrame, fam: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with an exact ES: gaussian, and student_t with a df; both need finite mean, variance > 0."""
    mean = pred["mean"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    variance = pred["variance"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    ok = np.isfinite(mean) & np.isfinite(variance) & (variance > 0)
    gauss = ok & (fam == "gaussian")
    stud = ok & (fam == "student_t") & np.isfinite(df)
    return gauss, stud


def var_es_frame(pred: pl.DataFrame) -> pl.DataFrame:
    """Add VaR and ES columns (return space, see the module docstring) to a prediction frame.

    Parameters
    ----------
    pred : pl.DataFrame
        Rows with the quantile columns, ``mean``, ``variance``, ``family`` and ``params``.

    Returns
    -------
    pl.DataFrame
        ``pred`` plus ``var95`` (= ``q05``), ``var99`` (= ``q01``), ``es975``, ``es99`` and
        ``es_method`` (``exact`` or ``interpolated``).
    """
    for col in ("mean", "variance", "family"):
        if col not in pred.columns:
            raise DataError(f"prediction frame lacks column {col!r}")
    q = _quantile_matrix(pred)
    fam, df = _family_params(pred)
    gauss, stud = _parametric_mask(pred, fam, df)
    mean = pred["mean"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    sd = np.sqrt(np.maximum(pred["variance"].cast(pl.Float64).fill_null(np.nan).to_numpy(), 0.0))
    cols: dict[str, np.ndarray] = {}
    for name, a in ES_LEVELS.items():
        es = interpolated_es(q, a)
        es[gauss] = mean[gauss] + sd[gauss] * normal_es(a)
        if stud.any():
            es[stud] = mean[stud] + sd[stud] * student_t_es(a, df[stud])
        cols[name] = es
    method = np.where(gauss | stud, "exact", "interpolated")
    return pred.with_columns(
        pl.col("q05").alias("var95"),
        pl.col("q01").alias("var99"),
        *(pl.Series(k, v, dtype=pl.Float64).fill_nan(None) for k, v in cols.items()),
        pl.Series("es_method", method.tolist(), dtype=pl.String),
    )


def predictive_quantile_fn(pred: pl.DataFrame) -> QuantileFn:
    """The predictive quantile function of each row: exact for gaussian/student_t, else interpolated.

    Parameters
    ----------
    pred : pl.DataFrame
        Prediction rows (as for :func:`var_es_frame`).

    Returns
    -------
    QuantileFn
        ``f(u, rows)``: return quantile of row ``rows[i]`` at level ``u[i]``; used by
        :func:`es_backtest` to simulate under the predicted distributions.
    """
    q = _quantile_matrix(pred)
    fam, df = _family_params(pred)
    gauss, stud = _parametric_mask(pred, fam, df)
    mean = pred["mean"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    sd = np.sqrt(np.maximum(pred["variance"].cast(pl.Float64).fill_null(np.nan).to_numpy(), 0.0))

    def quantile(u: np.ndarray, rows: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        rows = np.asarray(rows, dtype=np.int64)
        out = interpolated_quantile(q, u, rows)
        g = gauss[rows]
        if g.any():
            out[g] = mean[rows[g]] + sd[rows[g]] * stats.norm.ppf(u[g])
        s = stud[rows]
        if s.any():
            nu = df[rows[s]]
            out[s] = mean[rows[s]] + sd[rows[s]] * np.sqrt((nu - 2) / nu) * stats.t.ppf(u[s], nu)
        return out

    return quantile


def acerbi_szekely_z2(ret: np.ndarray, var: np.ndarray, es: np.ndarray, alpha: float) -> float:
    """Acerbi-Szekely (2014) ``Z2`` in return space (ES and VaR negative).

    ``Z2 = 1 - sum_t r_t 1{r_t < VaR_t} / (T * alpha * ES_t)``: 0 in expectation when the model is
    right, negative when the tail is worse than predicted (ES understated).
    """
    r, v, e = (np.asarray(x, dtype=float) for x in (ret, var, es))
    if r.size == 0:
        return math.nan
    hit = r < v
    return float(1.0 - np.sum(np.where(hit, r / e, 0.0)) / (r.size * alpha))


def _simulated_z2(
    quantile_fn: QuantileFn, idx: np.ndarray, e: np.ndarray, a: float, n_sims: int, seed: int
) -> np.ndarray:
    """``Z2`` of ``n_sims`` simulated histories of the sessions ``idx`` (predicted ES ``e``)."""
    n = int(e.size)
    rng = np.random.default_rng(seed)
    # Only draws with u < alpha matter: draw their count per simulation, then their positions and levels.
    sums = np.zeros(n_sims)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_sims, chunk):
        m = min(chunk, n_sims - start)
        u = rng.random((m, n))
        sim, col = np.nonzero(u < a)
        if sim.size:
            x = quantile_fn(u[sim, col], idx[col])
            np.add.at(sums, start + sim, x / e[col])
    return 1.0 - sums / (n * a)


def es_backtest(
    ret: np.ndarray,
    var: np.ndarray,
    es: np.ndarray,
    alpha: float,
    quantile_fn: QuantileFn,
    *,
    n_sims: int = 2000,
    seed: int = 0,
) -> TestResult:
    """Acerbi-Szekely (2014) Z2 ES backtest with a Monte-Carlo p-value under the predicted distributions.

    Each simulation draws ``u ~ U(0, 1)`` per session and a return ``Q_t(u)`` from that session's
    predictive quantile function, so a simulated exception is ``u < alpha`` (``VaR_t = Q_t(alpha)``)
    and only those draws are evaluated (vectorized over all sessions and simulations). The p-value
    is one-sided, ``(1 + #{Z2_sim <= Z2_obs}) / (1 + n_sims)``: small when the realized tail is worse
    than the model's.

    Parameters
    ----------
    ret : np.ndarray
        Realized returns.
    var, es : np.ndarray
        Predicted VaR (``alpha`` quantile) and ES per session (return space, negative).
    alpha : float
        Tail probability (0.025 for ES97.5, 0.01 for ES99).
    quantile_fn : QuantileFn
        Predictive quantile function (:func:`predictive_quantile_fn`).
    n_sims : int
        Simulations.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    TestResult
        ``name="es_z2"``, ``statistic = Z2``; ``detail``: ``n``, ``exceptions``, ``alpha``,
        ``n_sims``, ``mean_es``, ``sim_mean``.
    """
    a = _prob(alpha, "alpha")
    r, v, e = (np.asarray(x, dtype=float).ravel() for x in (ret, var, es))
    if not (r.size == v.size == e.size):
        raise DataError(f"ret, var and es must have one length; got {r.size}, {v.size}, {e.size}")
    if n_sims < 1:
        raise ConfigError(f"n_sims must be >= 1; got {n_sims}")
    ok = np.isfinite(r) & np.isfinite(v) & np.isfinite(e) & (e < 0)
    idx = np.flatnonzero(ok)
    r, v, e = r[ok], v[ok], e[ok]
    n = int(r.size)
    detail: dict[str, Any] = {
        "n": n,
        "exceptions": int(np.sum(r < v)),
        "alpha": a,
        "n_sims": n_sims,
        "mean_es": float(e.mean()) if n else math.nan,
        "dropped": int((~ok).sum()),
    }
    if n == 0:
        return TestResult("es_z2", math.nan, math.nan, detail)
    z_obs = acerbi_szekely_z2(r, v, e, a)
    z_sim = _simulated_z2(quantile_fn, idx, e, a, n_sims, seed)
    detail["sim_mean"] = float(z_sim.mean())
    pvalue = (1.0 + float(np.sum(z_sim <= z_obs))) / (1.0 + n_sims)
    return TestResult("es_z2", z_obs, pvalue, detail)


def pinball_loss(y: np.ndarray, q: np.ndarray, tau: float) -> float:
    """Mean pinball (quantile) loss ``mean(max(tau (y - q), (tau - 1)(y - q)))``."""
    d = np.asarray(y, dtype=float) - np.asarray(q, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan
    return float(np.mean(np.maximum(tau * d, (tau - 1.0) * d)))


def interval_scores(
    ret: np.ndarray,
    quantiles: Mapping[float, np.ndarray],
    intervals: Mapping[str, tuple[float, float]] = INTERVALS,
) -> dict[str, float]:
    """Coverage and pinball loss of central return intervals.

    Parameters
    ----------
    ret : np.ndarray
        Realized returns.
    quantiles : Mapping[float, np.ndarray]
        Level -> predicted quantiles (must hold every bound of ``intervals``).
    intervals : Mapping[str, tuple[float, float]]
        Name -> (lower, upper) level; default 80% (q10, q90) and 90% (q05, q95).

    Returns
    -------
    dict[str, float]
        ``cov<name>`` (share of ``lo <= ret <= hi``) and ``pinball<name>`` (mean of the two bounds'
        pinball losses) per interval.
    """
    r = np.asarray(ret, dtype=float)
    out: dict[str, float] = {}
    for name, (lo_level, hi_level) in intervals.items():
        lo = np.asarray(quantiles[lo_level], dtype=float)
        hi = np.asarray(quantiles[hi_level], dtype=float)
        ok = np.isfinite(r) & np.isfinite(lo) & np.isfinite(hi)
        out[f"cov{name}"] = float(np.mean((r[ok] >= lo[ok]) & (r[ok] <= hi[ok]))) if ok.any() else math.nan
        out[f"pinball{name}"] = 0.5 * (
            pinball_loss(r[ok], lo[ok], lo_level) + pinball_loss(r[ok], hi[ok], hi_level)
        )
    return out


# ------------------------------------------------------------------------------------ per-model table
RISK_COLUMNS: dict[str, pl.DataType] = {
    "model": pl.String(),
    "symbol": pl.String(),
    "n": pl.Int64(),
    **{
        f"{v}_{k}": t
        for v in VAR_LEVELS
        for k, t in (
            ("breaches", pl.Int64()),
            ("rate", pl.Float64()),
            ("kupiec_stat", pl.Float64()),
            ("kupiec_p", pl.Float64()),
            ("ind_stat", pl.Float64()),
            ("ind_p", pl.Float64()),
            ("cc_stat", pl.Float64()),
            ("cc_p", pl.Float64()),
            ("pass", pl.Boolean()),
        )
    },
    "basel_zone": pl.String(),
    "basel_exceptions": pl.Int64(),
    "basel_n": pl.Int64(),
    "basel_scaled": pl.Boolean(),
    **{f"{e}_{k}": pl.Float64() for e in ES_LEVELS for k in ("mean", "z2", "p")},
    "cov80": pl.Float64(),
    "pinball80": pl.Float64(),
    "cov90": pl.Float64(),
    "pinball90": pl.Float64(),
}


def var_level_stats(name: str, hits: np.ndarray, p: float, pass_level: float) -> dict[str, Any]:
    """Breaches, rate, Kupiec and Christoffersen figures and the pass flag of one VaR level.

    The columns are ``<name>_breaches``, ``_rate``, ``_kupiec_stat``/``_p``, ``_ind_stat``/``_p``,
    ``_cc_stat``/``_p`` and ``_pass`` (Kupiec p and CC p both above ``pass_level``).
    """
    pof, ind, cc = kupiec_pof(hits, p), christoffersen_independence(hits), christoffersen_cc(hits, p)
    return {
        f"{name}_breaches": int(hits.sum()),
        f"{name}_rate": float(hits.mean()) if hits.size else None,
        f"{name}_kupiec_stat": pof.statistic,
        f"{name}_kupiec_p": pof.pvalue,
        f"{name}_ind_stat": ind.statistic,
        f"{name}_ind_p": ind.pvalue,
        f"{name}_cc_stat": cc.statistic,
        f"{name}_cc_p": cc.pvalue,
        f"{name}_pass": bool(pof.pvalue > pass_level and cc.pvalue > pass_level)
        if math.isfinite(cc.pvalue)
        else None,
    }


def _basel_stats(hits: np.ndarray, window: int, p: float) -> dict[str, Any]:
    """The ``basel_*`` columns: traffic-light zone of the last ``window`` sessions."""
    basel = basel_zone(hits, window, p)
    return {
        "basel_zone": basel.detail["zone"],
        "basel_exceptions": basel.detail["exceptions"],
        "basel_n": basel.detail["n_window"],
        "basel_scaled": basel.detail["scaled"],
    }


def _es_stats(g: pl.DataFrame, r: np.ndarray, n_sims: int, seed: int) -> dict[str, Any]:
    """The ``es*_mean``, ``es*_z2`` and ``es*_p`` columns of one (model, symbol) group."""
    qfn = predictive_quantile_fn(g)
    row: dict[str, Any] = {}
    for name, a in ES_LEVELS.items():
        v = g[quantile_column(a)].cast(pl.Float64).fill_null(np.nan).to_numpy()
        e = g[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        res = es_backtest(r, v, e, a, qfn, n_sims=n_sims, seed=seed)
        row |= {
            f"{name}_mean": res.detail["mean_es"],
            f"{name}_z2": res.statistic,
            f"{name}_p": res.pvalue,
        }
    return row


def _risk_row(
    key: tuple[Any, ...], group: pl.DataFrame, n_sims: int, seed: int, basel_window: int, pass_level: float
) -> dict[str, Any]:
    """One :data:`RISK_COLUMNS` row for the (model, symbol) ``key`` and its rows ``group``."""
    model, symbol = key
    g = var_es_frame(group)
    r = g["ret"].to_numpy()
    row: dict[str, Any] = {"model": model, "symbol": symbol, "n": g.height}
    for name, p in VAR_LEVELS.items():
        v = g[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        ok = np.isfinite(v)
        hits = (r[ok] < v[ok]).astype(int)
        row |= var_level_stats(name, hits, p, pass_level)
        if name == "var99":
            row |= _basel_stats(hits, basel_window, p)
    row |= _es_stats(g, r, n_sims, seed)
    qs = {lvl: g[quantile_column(lvl)].cast(pl.Float64).fill_null(np.nan).to_numpy() for lvl in QUANTILES}
    row |= interval_scores(r, qs)
    return row


def risk_backtest(
    scored: pl.DataFrame,
    *,
    n_sims: int = 2000,
    seed: int = 0,
    basel_window: int = 250,
    pass_level: float = 0.05,
) -> pl.DataFrame:
    """VaR, ES and interval backtests per (model, symbol) of a scored frame.

    Parameters
    ----------
    scored : pl.DataFrame
        Prediction rows (``PREDICTION_SCHEMA``) plus ``ret`` (realized return of the target session);
        rows with a null ``ret`` are ignored. Sorted here by (model, symbol, target).
    n_sims : int
        Simulations of each ES test.
    seed : int
        Seed of the ES simulations (same for every group, so results are reproducible).
    basel_window : int
        Sessions counted by the traffic light.
    pass_level : float
        ``var95_pass``/``var99_pass`` = Kupiec p > level and Christoffersen cc p > level.

    Returns
    -------
    pl.DataFrame
        One row per (model, symbol) in :data:`RISK_COLUMNS`: ``n``; per VaR level (``var95``,
        ``var99``) ``breaches``, ``rate``, ``kupiec_stat/p``, ``ind_stat/p``, ``cc_stat/p``, ``pass``;
        the Basel zone of 99% VaR (``basel_zone``, ``basel_exceptions``, ``basel_n``,
        ``basel_scaled``); per ES level (``es975``, ``es99``) ``mean`` (average predicted ES), ``z2``
        and ``p``; ``cov80``, ``pinball80``, ``cov90``, ``pinball90``.
    """
    if "ret" not in scored.columns:
        raise DataError("scored frame lacks the realized return column 'ret'")
    frame = scored.filter(pl.col("ret").is_not_null() & pl.col("ret").is_finite())
    frame = frame.sort(["model", "symbol", "target"])
    rows = [
        _risk_row(key, group, n_sims, seed, basel_window, pass_level)
        for key, group in frame.group_by(["model", "symbol"], maintain_order=True)
    ]
    out = pl.DataFrame(rows, schema=RISK_COLUMNS) if rows else pl.DataFrame(schema=RISK_COLUMNS)
    return out.with_columns(pl.col(pl.Float64).fill_nan(None))


# ------------------------------------------------------------------------------------- minute mode
#: Default minute-mode config: a small encoder on the last 20k training windows (a minute or two on CPU).
MINUTE_DEFAULT_CONFIG: dict[str, Any] = {
    "window": 60,
    "d_model": 16,
    "heads": 2,
    "layers": 2,
    "ff": 32,
    "epochs": 3,
    "patience": 2,
    "batch_size": 256,
    "max_train_windows": 20_000,
    "family": "student_t",
    "seed": 0,
}
#: A tiny config for tests (seconds on CPU).
MINUTE_FAST_CONFIG: dict[str, Any] = {
    "window": 30,
    "d_model": 8,
    "heads": 2,
    "layers": 1,
    "ff": 16,
    "epochs": 1,
    "patience": 1,
    "batch_size": 128,
    "max_train_windows": 400,
    "family": "student_t",
    "seed": 0,
    "device": "cpu",
    "amp": False,
    "num_threads": 1,
}


def family_standard_es(family: Any, alpha: float) -> float:
    """ES at tail ``alpha`` of a fitted standardized family (``tasks.models.families``).

    Gaussian and Student-t exact; ``skew_t`` by numerical integration (``SkewT.standard_es``);
    ``fhs``: the mean of the training residuals at or below their ``alpha`` quantile.
    """
    a = _prob(alpha, "alpha")
    name = getattr(family, "name", None)
    if name == "gaussian":
        return normal_es(a)
    if name == "student_t":
        return float(student_t_es(a, float(family.df)))
    if name == "fhs":
        z = np.asarray(family.residuals, dtype=float)
        return float(np.mean(z[z <= np.quantile(z, a)]))
    if name == "skew_t":
        return float(family.standard_es(a))
    raise ConfigError(f"no ES for family {name!r}")


def _family_ppf(family: Any, u: np.ndarray) -> np.ndarray:
    name = getattr(family, "name", None)
    if name == "gaussian":
        return np.asarray(stats.norm.ppf(u))
    if name == "student_t":
        df = float(family.df)
        return np.asarray(stats.t.ppf(u, df) * math.sqrt((df - 2) / df))
    if name == "fhs":
        return np.asarray(np.quantile(np.asarray(family.residuals, dtype=float), u))
    if name == "skew_t":
        return np.asarray(family.standard_ppf(u))
    raise ConfigError(f"no quantile function for family {name!r}")


def _split_minute_returns(
    bars: pl.DataFrame, symbol: str | None, test_fraction: float
) -> tuple[pl.Series, np.ndarray, int]:
    """Timestamps, one-minute log returns and the number of training returns (a chronological split)."""
    from tasks.models.transformer import minute_returns

    ts, r = minute_returns(bars, symbol)
    if not np.isfinite(r).all():
        raise DataError("minute returns contain non-finite values")
    n_train = int(round(r.size * (1.0 - test_fraction)))
    if n_train >= r.size:
        raise DataError(f"{r.size} returns leave no hold-out at test_fraction={test_fraction}")
    return ts, r, n_train


def _fit_minute_model(
    cfg: dict[str, Any], r: np.ndarray, n_train: int
) -> tuple[MinuteForecaster, np.ndarray, np.ndarray]:
    """The minute Transformer fitted on ``r[:n_train]``, its variance forecasts and hold-out positions."""
    from tasks.models.transformer import MinuteTransformer

    model: MinuteForecaster = MinuteTransformer(**cfg).fit(r[:n_train])
    var_all = model.forecast(r)[: r.size]
    test = np.arange(n_train, r.size)
    test = test[np.isfinite(var_all[test])]
    if test.size == 0:
        raise DataError("no hold-out return has a variance forecast")
    return model, var_all, test


def _minute_span(ts: pl.Series, r: np.ndarray, n_train: int, test: np.ndarray) -> dict[str, Any]:
    """Sizes and dates of the training span and the hold-out."""
    return {
        "n_returns": int(r.size),
        "n_train": int(n_train),
        "n_test": int(test.size),
        "train_end": str(ts[n_train - 1]),
        "test_start": str(ts[int(test[0])]),
        "test_end": str(ts[int(test[-1])]),
        "split": "chronological",
    }


def _minute_tail_tests(
    model: Any, r: np.ndarray, var_all: np.ndarray, test: np.ndarray, a: float, n_sims: int, seed: int
) -> dict[str, Any]:
    """VaR breaches, coverage tests, average VaR/ES, the ES test and the model's description."""
    fam = model.family_fit
    assert fam is not None
    sd = np.sqrt(var_all[test])
    rt = r[test]
    var_q = sd * float(_family_ppf(fam, np.array([a]))[0])
    es = sd * family_standard_es(fam, a)
    hits = (rt < var_q).astype(int)
    pof, ind, cc = kupiec_pof(hits, a), christoffersen_independence(hits), christoffersen_cc(hits, a)

    def qfn(u: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return sd[rows] * _family_ppf(fam, u)

    z2 = es_backtest(rt, var_q, es, a, qfn, n_sims=n_sims, seed=seed)
    history = model.history
    return {
        "alpha": a,
        "breaches": int(hits.sum()),
        "rate": float(hits.mean()),
        "kupiec_stat": pof.statistic,
        "kupiec_p": pof.pvalue,
        "ind_stat": ind.statistic,
        "ind_p": ind.pvalue,
        "cc_stat": cc.statistic,
        "cc_p": cc.pvalue,
        "avg_var": float(np.mean(var_q)),
        "avg_es": float(np.mean(es)),
        "avg_es_gaussian": float(np.mean(sd) * normal_es(a)),
        "es_z2": z2.statistic,
        "es_p": z2.pvalue,
        "rmse_var": float(np.sqrt(np.mean((var_all[test] - rt**2) ** 2))),
        "family": fam.name,
        "family_params": fam.params() if fam.name != "fhs" else {"n": len(model.residuals)},
        "config": model.config(),
        "epochs_run": len(history.train_loss) if history is not None else None,
        "train_wall_s": history.wall_s if history is not None else None,
    }


def minute_var_backtest(
    bars: pl.DataFrame,
    *,
    config: Mapping[str, Any] | None = None,
    test_fraction: float = 0.2,
    alpha: float = 0.01,
    symbol: str | None = None,
    n_sims: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Minute mode of the research notebook: 99% VaR of next-minute returns from the minute Transformer.

    The one-minute log returns of ``bars`` are split CHRONOLOGICALLY (never at random): the first
    ``1 - test_fraction`` train :class:`tasks.models.transformer.MinuteTransformer` (its own
    validation tail is the end of that span), the rest is the hold-out. For hold-out return ``p`` the
    VaR is the ``alpha`` quantile of the fitted family scaled by the variance forecast from
    ``r[p - window : p]`` (zero mean); a breach is ``r[p] < VaR``. Reported: Kupiec, Christoffersen
    independence and conditional coverage, the average ``alpha`` ES (fitted family, and Gaussian as in
    the notebook), the Acerbi-Szekely Z2 test, and the notebook's RMSE of the variance forecast
    against squared returns.

    Parameters
    ----------
    bars : pl.DataFrame
        Minute bars with ``ts`` and ``close`` (e.g. ``read_bars_file(...).bars``).
    config : Mapping[str, Any] | None
        :class:`~tasks.models.transformer.MinuteConfig` fields; default
        :data:`MINUTE_DEFAULT_CONFIG` (use :data:`MINUTE_FAST_CONFIG` in tests).
    test_fraction : float
        Share of the returns held out at the end.
    alpha : float
        VaR/ES tail probability.
    symbol : str | None
        Which symbol when ``bars`` hold several.
    n_sims : int
        Simulations of the ES test.
    seed : int
        Seed of the ES simulations.

    Returns
    -------
    dict[str, Any]
        JSON-able: sizes and hold-out span, ``breaches``, ``rate``, ``kupiec_stat``/``kupiec_p``,
        ``ind_stat``/``ind_p``, ``cc_stat``/``cc_p``, ``avg_var``, ``avg_es``, ``avg_es_gaussian``,
        ``es_z2``/``es_p``, ``rmse_var``, ``family``, ``config``, ``epochs_run``.
    """
    if not (isinstance(test_fraction, float) and 0.0 < test_fraction < 1.0):
        raise ConfigError(f"test_fraction must be a float in (0, 1); got {test_fraction!r}")
    a = _prob(alpha, "alpha")
    cfg = dict(MINUTE_DEFAULT_CONFIG if config is None else config)
    ts, r, n_train = _split_minute_returns(bars, symbol, test_fraction)
    model, var_all, test = _fit_minute_model(cfg, r, n_train)
    span = _minute_span(ts, r, n_train, test)
    return span | _minute_tail_tests(model, r, var_all, test, a, n_sims, seed)
