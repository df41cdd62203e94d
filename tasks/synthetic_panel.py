"""A seeded synthetic panel of daily realized measures with a common volatility factor.

The panel gives the pooled models, the panel tests (DM, MCS across assets) and the benchmarks data
whose truth is known: N symbols, each on its own exchange calendar, whose log realized variances
follow a HAR recursion and share a market factor. Pure: parameters in, frames and CSV text out.

Model, for symbol ``i`` on its session ``t`` (the sessions of its calendar), with
``x_t = log RV_t - mu_i``::

    x_t = b_d x_{t-1} + b_w mean(x_{t-5..t-1}) + b_m mean(x_{t-22..t-1})
          + lambda_i f_{d(t)} + gamma (max(-z_{t-1}, 0) - E max(-z, 0)) + sigma_eta eta_t

- ``mu_i = log(vol_i**2 / 252)``: ``vol_i`` (``annual_vol``) is the annualised volatility at the
  mean log RV, so the median daily RV of a symbol is about ``vol_i**2 / 252``.
- ``f_d``: the market factor, an AR(1) on the UTC calendar-day grid,
  ``f_d = phi f_{d-1} + sigma_f sqrt(1 - phi**2) e_d`` (stationary s.d. ``sigma_f``). A session dated
  ``d`` reads ``f_d``, whatever its calendar, so the symbols' log RVs are correlated through it;
  ``lambda_i`` (``loading``) is the symbol's exposure (0: independent of every other symbol).
- ``z_t``: iid Student-t(``t_df``) scaled to unit variance; the close-to-close log return is
  ``ret_t = sqrt(RV_t) z_t``, so ``E[ret**2 | RV] = RV`` (what the importer's unit check expects).
- leverage: a negative standardised return raises the next log RV by ``gamma |z|``; the term is
  centred (``E max(-z, 0)`` in closed form), so ``mu_i`` stays the mean of log RV.
- ``eta_t``: iid N(0, 1), the symbol's own shock.

The HAR recursion is the AR(22) filter with coefficients :func:`har_ar_coefficients`, run by
``scipy.signal.lfilter`` from ``x = 0`` through ``burn_in`` sessions that are dropped.

Regimes (``PanelParams.regimes``, none by default; :data:`CRISIS_REGIMES` is a preset). A
:class:`Regime` holds on every symbol's own sessions dated inside ``[start, end]``. On those sessions
it scales the factor loading by ``s_t = loading_scale`` (1 outside), draws the return shocks from a
Student-t(``nu_t = t_df``) (the panel's ``t_df`` outside, or when the regime leaves it ``None``)
and adds an intercept ``u_t`` (0 outside) to the recursion::

    x_t = b_d x_{t-1} + b_w mean(x_{t-5..t-1}) + b_m mean(x_{t-22..t-1}) + u_t
          + s_t lambda_i f_{d(t)} + gamma (max(-z_{t-1}, 0) - E_{nu_{t-1}} max(-z, 0)) + sigma_eta eta_t

    ramp None:   u_t = (1 - b_d - b_w - b_m) m                    (m = level)
    ramp tau:    u_t = p_t - sum_k a_k p_{t-k},  p_t = m (1 - exp(-j_t / tau))

with ``a_k`` the 22 AR coefficients and ``j_t = 1, 2, ..`` the session's rank inside the regime
(``p = 0`` before it). Either way the level shifts the mean the recursion reverts to (once ``u_t``
is ``(1 - sum b) m``, the mean of ``x`` is ``m``), and after the regime's last session ``u = 0`` and
the excess decays through the HAR memory: no step in or out. Because the filter is linear, ``log RV``
with regimes is the path without them plus the deterministic response ``r = lfilter(1, [1, -a], u)``
(exactly so where ``t_df`` and ``loading_scale`` keep their defaults; otherwise the leverage term
differs too). With the default HAR ``(0.35, 0.35, 0.20)``:

- ``ramp=None``: the onset is the HAR's own step response, slow: ``r / m`` is 0.10 on the first
  session, 0.47 after 22 sessions, 0.80 after 64 and 0.97 after 141 (a calm setting in);
- ``ramp=tau``: ``r = p`` inside the regime, so ``r / m`` is 0.63 after ``tau`` sessions and 0.95
  after ``3 tau`` (a crisis breaking out);
- after a regime at its full level, 0.53 of it is left 22 sessions after its end, 0.19 after 64 and
  0.03 after 141.

Regime returns come from their own stream, keyed ``(seed, symbol + "/regimes")``, so the other
draws, and every output without a regime in range, are unchanged. Regimes must not overlap; sessions
outside ``[first, last]`` (the burn-in included) are never in one.

The other measures are drawn around RV, consistently with their definitions:

- jumps: with probability ``jump_prob`` a day has a jump share ``J ~ U(0.1, 0.5)`` of RV (else 0);
- ``bv = RV (1 - J) exp(e)``, ``e ~ N(bv_bias, bv_noise)``: below RV on jump days, and on most other
  days (``bv > rv`` on about 10% of days with the defaults, as measured BV sometimes is);
- ``rs_neg = RV s``, ``s = clip(0.5 - semi_slope z_t + 0.05 u, 0.02, 0.98)``, ``rs_pos = RV - rs_neg``:
  the downside semivariance is the larger part on a down day, and ``rs_pos + rs_neg = rv`` exactly;
- ``rq = RV**2 k``, ``log k = rq_log_mean + rq_log_sd u' + 2 J``: realized quarticity is ``RV**2``
  under constant intraday volatility and more with intraday variation and jumps;
- prices: ``close = 1000 exp(cumsum(ret))``, ``open = close / exp(ret)`` (no overnight gap, so
  ``open_to_close`` equals ``ret``).

Randomness is keyed by ``(seed, symbol)`` (and ``(seed, "market")`` for the factor): the same
arguments give identical frames and text, and adding a symbol does not change the others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.signal import lfilter
from scipy.special import gammaln

from core.errors import ConfigError
from core.schema import REALIZED_SCHEMA
from core.symbols import validate_symbol
from tasks.calendars import calendar_coverage, session_bounds, sessions_between, validate_calendar
from tasks.instruments import calendar_timezone

FloatArray = npt.NDArray[np.float64]

#: Exchange calendars the default symbols cycle through (New York, London, Frankfurt, Tokyo, Hong
#: Kong, Mumbai, Paris, Sydney, Toronto, Zurich): closes spread over the whole UTC day.
DEFAULT_CALENDARS = ("XNYS", "XLON", "XFRA", "XTKS", "XHKG", "XBOM", "XPAR", "XASX", "XTSE", "XSWX")
#: Columns of the generic realized layout that ``volrisk ingest realized`` reads.
SIMPLE_COLUMNS = ("date", "symbol", "rv", "bv", "rq", "rs_pos", "rs_neg", "ret")
#: Header of the Oxford-Man layout written here (the first column, the local stamp, has no name).
OXFORDMAN_HEADER = ",Symbol,rv5,bv,rsv,open_to_close,open_price,close_price,nobs"
#: 5-minute returns in a 6.5-hour session: the ``nobs`` written to the Oxford-Man layout.
OXFORDMAN_NOBS = 78


@dataclass(frozen=True)
class PanelSymbol:
    """One symbol of the panel.

    Attributes
    ----------
    symbol : str
        The name written to the files.
    calendar : str
        Its session calendar (``24x7``, ``fx`` or an exchange code such as ``XNYS``).
    annual_vol : float
        Annualised volatility at the mean log RV.
    loading : float
        Exposure ``lambda_i`` to the market factor (0: no commonality).
    """

    symbol: str
    calendar: str
    annual_vol: float = 0.18
    loading: float = 1.0


@dataclass(frozen=True)
class Regime:
    """A volatility regime: on every symbol's sessions dated in ``[start, end]`` (module docstring).

    Attributes
    ----------
    start, end : date
        Inclusive range of session dates the regime holds on.
    level : float
        ``m``: added to the mean log RV the HAR recursion reverts to (+1.5: variance about
        ``exp(1.5) = 4.5`` times its normal level once the ramp is over; negative: a calm regime).
    t_df : float | None
        Degrees of freedom of the Student-t return shocks inside the regime (> 2; ``None``: the
        panel's ``t_df``).
    loading_scale : float
        Multiplies every symbol's market-factor loading inside the regime (> 1: more commonality).
    ramp : float | None
        Onset time in sessions: the excess log RV is ``level (1 - exp(-j / ramp))`` on the regime's
        ``j``-th session. None: the onset is the HAR recursion's own (slow) response to the shifted
        mean. The exit always decays through the HAR memory.
    name : str
        A label for the manifest and the panel's ``regime`` column (default ``start..end``).
    """

    start: date
    end: date
    level: float
    t_df: float | None = None
    loading_scale: float = 1.0
    ramp: float | None = None
    name: str = ""

    @property
    def label(self) -> str:
        """``name``, or ``start..end`` when it has none."""
        return self.name or f"{self.start}..{self.end}"

    def check(self) -> Regime:
        """Return ``self``, or raise :class:`ConfigError` naming the field out of range."""
        dates_ok = all(isinstance(d, date) and not isinstance(d, datetime) for d in (self.start, self.end))
        problems = [
            ("start", dates_ok, "a date (and so must end)"),
            ("end", dates_ok and self.end >= self.start, f"on or after start {self.start}"),
            ("level", _finite(self.level), "a finite number"),
            ("t_df", self.t_df is None or (_finite(self.t_df) and self.t_df > 2.0), "None or > 2"),
            ("loading_scale", _finite(self.loading_scale) and self.loading_scale >= 0.0, "finite, >= 0"),
            ("ramp", self.ramp is None or (_finite(self.ramp) and self.ramp > 0.0), "None or > 0 sessions"),
        ]
        for name, ok, expected in problems:
            if not ok:
                value = getattr(self, name)
                raise ConfigError(
                    f"synthetic panel: regime {self.label!r} {name}={value!r} must be {expected}"
                )
        return self

    def describe(self) -> dict[str, Any]:
        """The regime as a JSON-ready dict (dates as ISO text)."""
        return {
            "name": self.label,
            "start": str(self.start),
            "end": str(self.end),
            "level": self.level,
            "t_df": self.t_df,
            "loading_scale": self.loading_scale,
            "ramp": self.ramp,
        }


def _finite(value: object) -> bool:
    """Whether ``value`` is a real, finite number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_regimes(regimes: Sequence[Regime]) -> None:
    """Check every regime, and that none overlaps another; raise :class:`ConfigError` otherwise."""
    for regime in regimes:
        if not isinstance(regime, Regime):
            raise ConfigError(f"synthetic panel: regimes must hold Regime values; got {regime!r}")
        regime.check()
    ordered = sorted(regimes, key=lambda r: r.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start <= a.end:
            raise ConfigError(f"synthetic panel: regimes {a.label!r} and {b.label!r} overlap")


#: The 2008 crisis (log RV +1.5, reached over about 10 sessions; t(4) returns; factor exposure x1.3),
#: a calm 2017 (-0.5, setting in at the HAR's own pace) and the 2020 crash (+2.0 over about 5
#: sessions; t(3.5); x1.5): a risk model must adapt both ways. The 2008 regime lies before the dev
#: panel's default range (2011-2021): start the panel in 2005 or so to get it.
CRISIS_REGIMES: tuple[Regime, ...] = (
    Regime(
        date(2008, 9, 15), date(2009, 3, 31), 1.5, t_df=4.0, loading_scale=1.3, ramp=10.0, name="gfc_2008"
    ),
    Regime(date(2017, 1, 1), date(2017, 12, 31), -0.5, name="calm_2017"),
    Regime(
        date(2020, 2, 24), date(2020, 4, 30), 2.0, t_df=3.5, loading_scale=1.5, ramp=5.0, name="covid_2020"
    ),
)
#: Named regime presets (``volrisk dev-panel --regimes NAME``).
REGIME_PRESETS: dict[str, tuple[Regime, ...]] = {"none": (), "crisis": CRISIS_REGIMES}


def regime_preset(name: str) -> tuple[Regime, ...]:
    """The regimes of a preset of :data:`REGIME_PRESETS`; :class:`ConfigError` naming the choices."""
    if name not in REGIME_PRESETS:
        raise ConfigError(f"unknown regime preset {name!r}; choices: {', '.join(REGIME_PRESETS)}")
    return REGIME_PRESETS[name]


def regimes_in_range(regimes: Sequence[Regime], first: date, last: date) -> tuple[list[Regime], list[str]]:
    """The regimes that overlap ``[first, last]``, and a note for each one clipped or left out."""
    applied: list[Regime] = []
    notes: list[str] = []
    for r in regimes:
        span = f"regime {r.label} ({r.start}..{r.end})"
        if r.end < first or r.start > last:
            notes.append(f"{span} is outside the synthetic range {first}..{last}: not applied")
            continue
        applied.append(r)
        if r.start < first or r.end > last:
            notes.append(f"{span} is only partly inside {first}..{last}: applied to the sessions inside")
    return applied, notes


@dataclass(frozen=True)
class PanelParams:
    """Parameters of the panel shared by every symbol (see the module docstring for the model).

    Attributes
    ----------
    har : tuple[float, float, float]
        ``(b_d, b_w, b_m)``: daily, weekly (5) and monthly (22) HAR coefficients on log RV.
    noise_sd : float
        ``sigma_eta``, s.d. of a symbol's own log-RV shock.
    factor_ar : float
        ``phi``, AR(1) coefficient of the market factor per calendar day.
    factor_sd : float
        ``sigma_f``, stationary s.d. of the market factor.
    leverage : float
        ``gamma``: log-RV response to a negative standardised return.
    t_df : float
        Degrees of freedom of the Student-t return shocks (> 2).
    jump_prob, bv_bias, bv_noise : float
        Jump-day probability; mean and s.d. of BV's log noise around ``RV (1 - J)``.
    semi_slope : float
        How much the downside share of RV rises per unit of negative standardised return.
    rq_log_mean, rq_log_sd : float
        Mean and s.d. of ``log(rq / rv**2)`` on a day without a jump.
    burn_in : int
        Sessions simulated (from ``x = 0``) and dropped before the first date.
    regimes : tuple[Regime, ...]
        Volatility regimes (none by default; module docstring): level shifts of log RV, return tails
        and factor exposure on the sessions inside each regime's dates.
    """

    har: tuple[float, float, float] = (0.35, 0.35, 0.20)
    noise_sd: float = 0.30
    factor_ar: float = 0.90
    factor_sd: float = 0.15
    leverage: float = 0.10
    t_df: float = 6.0
    jump_prob: float = 0.10
    bv_bias: float = -0.04
    bv_noise: float = 0.03
    semi_slope: float = 0.15
    rq_log_mean: float = 0.10
    rq_log_sd: float = 0.20
    burn_in: int = 300
    regimes: tuple[Regime, ...] = ()

    def check(self) -> PanelParams:
        """Return ``self``, or raise :class:`ConfigError` naming the parameter out of range."""
        problems = [
            ("har", sum(self.har) < 1.0 and min(self.har) >= 0.0, "non-negative, summing below 1"),
            ("noise_sd", self.noise_sd >= 0.0, ">= 0"),
            ("factor_ar", -1.0 < self.factor_ar < 1.0, "in (-1, 1)"),
            ("factor_sd", self.factor_sd >= 0.0, ">= 0"),
            ("t_df", self.t_df > 2.0, "> 2 (finite variance)"),
            ("jump_prob", 0.0 <= self.jump_prob <= 1.0, "in [0, 1]"),
            ("burn_in", self.burn_in >= 22, ">= 22 (the HAR's monthly lag)"),
        ]
        for name, ok, expected in problems:
            if not ok:
                raise ConfigError(f"synthetic panel: {name}={getattr(self, name)!r} must be {expected}")
        check_regimes(self.regimes)
        return self


def default_symbols(n: int) -> list[PanelSymbol]:
    """``n`` symbols ``SYN_01``.. cycling through :data:`DEFAULT_CALENDARS`.

    Volatilities (0.14..0.22) and loadings (0.6..1.4) vary deterministically with the index, so the
    panel is heterogeneous without another random stream.
    """
    if n < 1:
        raise ConfigError(f"a synthetic panel needs at least one symbol; got {n}")
    return [
        PanelSymbol(
            symbol=f"SYN_{i + 1:02d}",
            calendar=DEFAULT_CALENDARS[i % len(DEFAULT_CALENDARS)],
            annual_vol=0.14 + 0.02 * (i % 5),
            loading=0.6 + 0.2 * (i % 5),
        )
        for i in range(n)
    ]


def har_ar_coefficients(har: tuple[float, float, float]) -> FloatArray:
    """The 22 AR coefficients of the HAR recursion on ``x_{t-1}..x_{t-22}``.

    ``b_d x_{t-1} + b_w mean(x_{t-5..t-1}) + b_m mean(x_{t-22..t-1})`` puts ``b_d + b_w/5 + b_m/22``
    on lag 1, ``b_w/5 + b_m/22`` on lags 2-5 and ``b_m/22`` on lags 6-22.
    """
    b_d, b_w, b_m = har
    coef = np.full(22, b_m / 22.0)
    coef[:5] += b_w / 5.0
    coef[0] += b_d
    return coef


def _rng(seed: int, key: str) -> np.random.Generator:
    """An independent stream per ``(seed, key)``."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([seed, digest]))


def market_factor(first: date, last: date, params: PanelParams, seed: int) -> dict[date, float]:
    """The AR(1) market factor on every calendar day from ``first - burn_in`` days to ``last``."""
    start = first - timedelta(days=params.burn_in)
    days = pl.date_range(start, last, interval="1d", eager=True).to_list()
    rng = _rng(seed, "market")
    phi = params.factor_ar
    shocks = params.factor_sd * math.sqrt(1.0 - phi**2) * rng.standard_normal(len(days))
    shocks[0] = params.factor_sd * rng.standard_normal()  # start from the stationary law
    values = lfilter([1.0], [1.0, -phi], shocks)
    return dict(zip(days, values.tolist(), strict=True))


def _negative_part_mean(df: float) -> float:
    """``E max(-z, 0)`` for a Student-t(df) scaled to unit variance."""
    abs_t = 2.0 * math.sqrt(df) * math.exp(gammaln((df + 1) / 2) - gammaln(df / 2))
    abs_t /= math.sqrt(math.pi) * (df - 1.0)
    return 0.5 * abs_t * math.sqrt((df - 2.0) / df)


@dataclass(frozen=True)
class RegimePath:
    """The regimes along one symbol's sessions (burn-in first): what the recursion reads.

    Attributes
    ----------
    intercept, loading_scale : FloatArray
        ``u_t`` (0 outside a regime; module docstring) and ``s_t`` (1 outside) per session.
    t_df : FloatArray
        ``nu_t``: the return shocks' degrees of freedom per session.
    z : FloatArray
        Unit-variance Student-t(``nu_t``) shocks drawn for the sessions of a regime with its own
        ``t_df``; NaN elsewhere (those sessions keep the symbol's own draws).
    label : list[str | None]
        The regime's label per session (None outside).
    """

    intercept: FloatArray
    loading_scale: FloatArray
    t_df: FloatArray
    z: FloatArray
    label: list[str | None]


def _unit_t(rng: np.random.Generator, df: float, n: int) -> FloatArray:
    """``n`` Student-t(``df``) draws scaled to unit variance."""
    return np.asarray(rng.standard_t(df, size=n), dtype=np.float64) / math.sqrt(df / (df - 2.0))


def regime_path(
    regimes: Sequence[Regime], days: Sequence[date], params: PanelParams, rng: np.random.Generator
) -> RegimePath | None:
    """Where each regime holds along ``params.burn_in`` undated sessions then ``days``; None if nowhere.

    ``rng`` (the symbol's regime stream) draws the return shocks of the regimes with their own
    ``t_df``, regime by regime in the order given.
    """
    n = params.burn_in + len(days)
    dated = np.array([d.toordinal() for d in days], dtype=np.int64)
    intercept, scale, target = np.zeros(n), np.ones(n), np.zeros(n)
    t_df, z = np.full(n, params.t_df), np.full(n, np.nan)
    ramped = np.zeros(n, dtype=bool)
    label: list[str | None] = [None] * n
    for r in regimes:
        inside = params.burn_in + np.flatnonzero(
            (dated >= r.start.toordinal()) & (dated <= r.end.toordinal())
        )
        scale[inside] = r.loading_scale
        for i in inside.tolist():
            label[i] = r.label
        if r.ramp is None:
            intercept[inside] = (1.0 - sum(params.har)) * r.level
        else:
            target[inside] = r.level * -np.expm1(-np.arange(1, inside.size + 1) / r.ramp)
            ramped[inside] = True
        if r.t_df is not None and inside.size:
            t_df[inside], z[inside] = r.t_df, _unit_t(rng, r.t_df, int(inside.size))
    if all(v is None for v in label):
        return None
    if ramped.any():  # the intercept that puts the excess on the target: p_t - sum_k a_k p_{t-k}
        steer = lfilter(np.r_[1.0, -har_ar_coefficients(params.har)], [1.0], target)
        intercept = np.where(ramped, steer, intercept)
    return RegimePath(intercept, scale, t_df, z, label)


def simulate_log_rv(
    factor: FloatArray,
    loading: float,
    params: PanelParams,
    rng: np.random.Generator,
    path: RegimePath | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Demeaned log RV ``x`` and the standardised returns ``z`` of one symbol, burn-in included.

    Parameters
    ----------
    factor : FloatArray
        The market factor at each of the symbol's sessions (burn-in sessions first).
    loading : float
        The symbol's factor loading.
    params : PanelParams
        The panel's parameters.
    rng : np.random.Generator
        The symbol's stream.
    path : RegimePath | None
        The regimes along the sessions (:func:`regime_path`); None: no regime (the draws and the
        arithmetic are then exactly those of a panel without regimes).

    Returns
    -------
    tuple[FloatArray, FloatArray]
        ``x`` and ``z``, one value per session.
    """
    n = int(factor.shape[0])
    df = params.t_df
    z = _unit_t(rng, df, n)
    centre: float | FloatArray = _negative_part_mean(df)
    exposure: float | FloatArray = loading
    if path is not None:
        z = np.where(np.isnan(path.z), z, path.z)
        dfs, where = np.unique(path.t_df, return_inverse=True)
        centre = np.r_[0.0, np.array([_negative_part_mean(float(d)) for d in dfs])[where][:-1]]
        exposure = loading * path.loading_scale
    downside = np.maximum(-np.r_[0.0, z[:-1]], 0.0) - centre
    downside[0] = 0.0
    drive = exposure * factor + params.leverage * downside + params.noise_sd * rng.standard_normal(n)
    if path is not None:
        drive = drive + path.intercept
    x = lfilter([1.0], np.r_[1.0, -har_ar_coefficients(params.har)], drive)
    return np.asarray(x, dtype=np.float64), z


def realized_measures(
    rv: FloatArray, z: FloatArray, params: PanelParams, rng: np.random.Generator
) -> dict[str, FloatArray]:
    """``bv``, ``rq``, ``rs_pos``, ``rs_neg`` and ``ret`` drawn around ``rv`` (module docstring)."""
    n = rv.shape[0]
    jump = (rng.random(n) < params.jump_prob) * rng.uniform(0.1, 0.5, n)
    bv = rv * (1.0 - jump) * np.exp(params.bv_bias + params.bv_noise * rng.standard_normal(n))
    share = np.clip(0.5 - params.semi_slope * z + 0.05 * rng.standard_normal(n), 0.02, 0.98)
    rs_neg = rv * share
    log_kurt = params.rq_log_mean + params.rq_log_sd * rng.standard_normal(n) + 2.0 * jump
    return {
        "bv": bv,
        "rq": rv**2 * np.exp(log_kurt),
        "rs_pos": rv - rs_neg,
        "rs_neg": rs_neg,
        "ret": np.sqrt(rv) * z,
    }


def clipped_range(calendar: str, first: date, last: date) -> tuple[date, date]:
    """``[first, last]`` cut to the sessions ``calendar`` knows (exchange calendars start in 2006 or so)."""
    coverage = calendar_coverage(calendar)
    if coverage is None:
        return first, last
    return max(first, coverage[0]), min(last, coverage[1])


def _symbol_frame(
    spec: PanelSymbol,
    span: tuple[date, date],
    factor: dict[date, float],
    params: PanelParams,
    seed: int,
) -> pl.DataFrame:
    """One symbol's rows on its sessions in ``span`` (inside the factor's range)."""
    first, last = span
    days = sessions_between(spec.calendar, first, last) if first <= last else []
    if not days:
        raise ConfigError(f"synthetic panel: calendar {spec.calendar} has no session in {first}..{last}")
    burn_days = sorted(factor)[: params.burn_in]  # the burn-in reads the factor's first days
    f = np.array([factor[d] for d in [*burn_days, *days]])
    rng = _rng(seed, spec.symbol)
    path = regime_path(params.regimes, days, params, _rng(seed, f"{spec.symbol}/regimes"))
    x, z = simulate_log_rv(f, spec.loading, params, rng, path)
    mu = math.log(spec.annual_vol**2 / 252.0)
    rv = np.exp(mu + x[params.burn_in :])
    z = z[params.burn_in :]
    measures = realized_measures(rv, z, params, rng)
    close = 1000.0 * np.exp(np.cumsum(measures["ret"]))
    ends = session_bounds(spec.calendar, days)["close"]
    return pl.DataFrame(
        {
            "symbol": spec.symbol,
            "calendar": spec.calendar,
            "date": pl.Series(days, dtype=pl.Date),
            "session_end": ends,
            "rv": rv,
            **measures,
            "open_price": close / np.exp(measures["ret"]),
            "close_price": close,
            "factor": f[params.burn_in :],
            "regime": pl.Series(path.label[params.burn_in :] if path else [None] * len(days), dtype=pl.Utf8),
        }
    )


def simulate_panel(
    symbols: Sequence[PanelSymbol],
    first: date,
    last: date,
    params: PanelParams | None = None,
    seed: int = 0,
    clip_to_calendars: bool = False,
) -> pl.DataFrame:
    """The synthetic panel: one row per symbol and session in ``[first, last]``.

    Parameters
    ----------
    symbols : Sequence[PanelSymbol]
        The symbols, their calendars, volatilities and factor loadings (:func:`default_symbols`).
    first, last : date
        Inclusive range of session dates.
    params : PanelParams | None
        Model parameters (defaults: :class:`PanelParams`).
    seed : int
        Seed; the same arguments give the same frame.
    clip_to_calendars : bool
        False: a range outside an exchange calendar's coverage is a :class:`ConfigError`. True: such
        a symbol's rows start (or end) where its calendar does (:func:`clipped_range`); ranges its
        calendar covers give the same frame either way.

    Returns
    -------
    pl.DataFrame
        ``symbol, calendar, date, session_end`` (UTC close), ``rv, bv, rq, rs_pos, rs_neg, ret``
        (decimal variances, quarticity and log return), ``open_price, close_price``, ``factor``
        (the market factor the session read: the truth, for tests) and ``regime`` (the label of the
        regime the session is in, null outside), sorted by symbol and date.
    """
    params = (params or PanelParams()).check()
    if first > last:
        raise ConfigError(f"synthetic panel: first {first} is after last {last}")
    names = [validate_symbol(s.symbol) for s in symbols]
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"synthetic panel: symbols must be distinct and at least one; got {names}")
    for spec in symbols:
        validate_calendar(spec.calendar)
        if spec.annual_vol <= 0:
            raise ConfigError(f"synthetic panel: {spec.symbol} annual_vol must be > 0")
    factor = market_factor(first, last, params, seed)
    spans = {s.symbol: clipped_range(s.calendar, first, last) if clip_to_calendars else (first, last)
             for s in symbols}  # fmt: skip
    frames = [_symbol_frame(spec, spans[spec.symbol], factor, params, seed) for spec in symbols]
    return pl.concat(frames).sort("symbol", "date")


def realized_rows(panel: pl.DataFrame, source: str = "simple") -> pl.DataFrame:
    """The panel as :data:`~core.schema.REALIZED_SCHEMA` rows, as the importer stores its generic file.

    For tests that skip the file: ``tasks.realized_features.realized_daily_features`` takes one
    symbol's rows. ``ret_oc``, ``close_price`` and ``nobs`` stay null, as in the generic file.
    """
    present = {"symbol", "date", "rv", "bv", "rq", "rs_pos", "rs_neg", "ret"}
    return panel.select(
        [
            pl.lit(source).alias(c) if c == "source" else pl.col(c) if c in present else pl.lit(None).alias(c)
            for c in REALIZED_SCHEMA
        ]
    ).cast(REALIZED_SCHEMA)  # type: ignore[arg-type]


def simple_layout(panel: pl.DataFrame) -> pl.DataFrame:
    """The panel in the generic layout ``date,symbol,rv,bv,rq,rs_pos,rs_neg,ret``."""
    return panel.select(SIMPLE_COLUMNS).sort("symbol", "date")


def simple_csv(panel: pl.DataFrame) -> str:
    """The generic-layout CSV text (10 significant digits) that ``volrisk ingest realized`` reads."""
    return simple_layout(panel).write_csv(float_scientific=True, float_precision=9)


def oxfordman_layout(panel: pl.DataFrame) -> pl.DataFrame:
    """The panel in the Oxford-Man layout; the stamp is local midnight with the exchange's UTC offset.

    Columns ``stamp, Symbol, rv5, bv, rsv, open_to_close, open_price, close_price, nobs``; ``rsv`` is
    the downside semivariance (the reader sets ``rs_pos = rv5 - rsv``); the layout has no ``rq``.
    """
    parts = []
    for calendar in panel["calendar"].unique(maintain_order=True).to_list():
        tz = calendar_timezone(calendar)
        rows = panel.filter(pl.col("calendar") == calendar)
        offset = pl.col("session_end").dt.convert_time_zone(tz).dt.strftime("%:z")
        parts.append(rows.with_columns(pl.format("{} 00:00:00{}", pl.col("date"), offset).alias("stamp")))
    return (
        pl.concat(parts)
        .sort("symbol", "date")
        .select(
            "stamp",
            pl.col("symbol").alias("Symbol"),
            pl.col("rv").alias("rv5"),
            "bv",
            pl.col("rs_neg").alias("rsv"),
            pl.col("ret").alias("open_to_close"),
            "open_price",
            "close_price",
            pl.lit(OXFORDMAN_NOBS, dtype=pl.Int64).alias("nobs"),
        )
    )


def oxfordman_csv(panel: pl.DataFrame) -> str:
    """The Oxford-Man-layout CSV text (unnamed first column, 10 significant digits)."""
    body = oxfordman_layout(panel).write_csv(include_header=False, float_scientific=True, float_precision=9)
    return f"{OXFORDMAN_HEADER}\n{body}"
