"""Seeded synthetic intraday bars: a jump-diffusion with stochastic volatility, partition-stable.

The generator exists so that every stage (features, jump tests, models, benchmarks) can run on data
whose truth is known. The ingest flow calls it once per partition (a month), so it is built so that
**any split of a range gives the same bars**: ``generate_bars(s, a, c)`` is bit-identical to
``generate_bars(s, a, b)`` followed by ``generate_bars(s, b, c)``. Three devices make that possible:

* every path is anchored at a fixed origin, 2000-01-01 UTC, instead of at ``start``;
* daily quantities (slow volatility, the day's diffusion total, gaps, jump counts and sizes) come from a
  fixed-length daily random stream over 2000-2099, and the day-start log price follows from them by a
  cheap recursion over trading days, so no intraday history has to be simulated to place a window;
* per-bar random numbers are read at counter ``day * M + j`` (bar ``j`` of day ``day``, ``M`` bars at
  most per day) from PCG64 streams that are advanced there (``PCG64.advance``), and each trading day's
  bars are computed from that day's numbers only. The intraday diffusion is a Gaussian bridge pinned to
  the day's total, so the bars of a day add up to the daily path exactly.

The model, for trading day ``n`` and its bars ``i`` (start ``ts_i``, duration ``d_i``):

* per-bar diffusion variance ``sigma_i**2 = base_vol**2 * d_i / Y * S(tau_i) * V_slow * V_fast`` with
  ``Y`` the calendar's trading seconds per year (365 x 24 h for ``24x7``, 260 x 24 h for ``fx``,
  252 x 6.5 h for ``XNYS``);
* intraday seasonality ``S(tau) = (1 + A (2 tau - 1)**2) / (1 + A / 3)``, a U-shape with mean 1 over the
  trading day (``tau`` in [0, 1): the UTC day for ``24x7``, the day that rolls at 17:00 New York for
  ``fx``, the session for ``XNYS``);
* stochastic volatility: ``V_slow = exp(x - s**2/2)`` where the log-variance ``x`` is an
  Ornstein-Uhlenbeck process sampled exactly each calendar day (stationary s.d. ``vol_of_vol``,
  half-life ``vol_half_life_days``) and interpolated linearly within the day; ``V_fast`` is an intraday
  AR(1) in log-variance (s.d. 0.3, half-life 30 minutes) restarted from its stationary law each day;
* the day's diffusion total ``sqrt(W_n) Z_n`` with ``W_n`` the day's expected variance, spread
  over the bars by the bridge ``r_i = y_i - (sigma_i**2 / sum sigma**2) (sum y - total)``,
  ``y_i = sigma_i Z_i``;
* compound-Poisson jumps: ``Poisson(jump_intensity)`` per trading day (thinned on short days), each at a
  uniform bar of its day, with a random sign and magnitude ``jump_scale * exp(0.25 Z)`` (log-normal
  around ``jump_scale``, never tiny, so a detector test has a clear ground truth);
* a gap return ``N(0, 0.5 * base_vol**2 * gap_seconds / (365 x 24 h))`` over each closed period
  (night, weekend, holiday), so a session's open differs from the previous close;
* no drift, but a weak pull of the log price towards ``log(start_price)`` (half-life one year of
  trading days), so prices stay in a sensible range however far from 2000 the window lies;
* high and low from the exact law of the maximum and minimum of a Brownian bridge from the open to the
  close with the bar's diffusion variance, so ``low <= min(open, close) <= max(open, close) <= high``.

Everything is vectorized numpy over a (days x bars-per-day) grid. The random streams are keyed by
``(seed, sha256(symbol))``: the same arguments give bit-identical bars, and symbols differ.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.signal import lfilter
from scipy.special import ndtri

from core.errors import ConfigError
from core.schema import UTC_TS, conform_bars
from core.symbols import validate_symbol

__all__ = [
    "CALENDARS",
    "HORIZON_END",
    "INTERVAL_SECONDS",
    "JUMP_SCHEMA",
    "ORIGIN",
    "SyntheticBars",
    "generate_bars",
    "symbol_seed",
]

#: Intervals the generator supports, in seconds.
INTERVAL_SECONDS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600}

#: Session calendars: ``24x7`` (every UTC minute), ``fx`` (closed Friday 17:00 to Sunday 17:00
#: America/New_York) and ``XNYS`` (NYSE regular hours from ``exchange_calendars``).
CALENDARS = ("24x7", "fx", "XNYS")

#: Schema of :attr:`SyntheticBars.jumps`: the bar start of the bar holding the jump, and its log size.
JUMP_SCHEMA: dict[str, pl.DataType] = {"ts": UTC_TS, "size": pl.Float64()}

#: Every path starts here (at ``start_price``); windows must lie in [ORIGIN, HORIZON_END).
ORIGIN = date(2000, 1, 1)
#: Windows must end by this date (the daily random stream covers 2000-2099).
HORIZON_END = date(2099, 12, 1)

_DAY_S = 86_400
_ORIGIN_S = 946_684_800  # 2000-01-01T00:00:00Z
_N_DAYS = 36_525  # 2000-01-01 .. 2099-12-31: length of the daily stream, fixed so it never shifts
_FX_ROLL_HOUR = 17  # the FX day rolls at 17:00 America/New_York
#: Longest trading day per calendar (sets M, the counter stride per day).
_MAX_DAY_S = {"24x7": _DAY_S, "fx": _DAY_S, "XNYS": 23_400}
#: Trading seconds per year, the denominator that turns ``base_vol`` into a per-bar variance.
_YEAR_S = {"24x7": 365 * _DAY_S, "fx": 260 * _DAY_S, "XNYS": 252 * 23_400}
_TRADING_DAYS_PER_YEAR = {"24x7": 365, "fx": 260, "XNYS": 252}
_LEVEL_HALF_LIFE_YEARS = 1.0
_FAST_SD = 0.3
_FAST_HALF_LIFE_S = 1_800.0
_GAP_VARIANCE_FACTOR = 0.5  # share of calendar-time variance realized across a closed period
_MAX_BARS = 50_000_000
_MAX_JUMP_INTENSITY = 1_000.0
# Stream identifiers (the third word of each SeedSequence entropy).
_Q_DAILY, _Q_DIFFUSION, _Q_FAST, _Q_HIGH, _Q_LOW, _Q_VOLUME = range(6)

_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SyntheticBars:
    """Synthetic bars with the ground truth of the jumps injected into them.

    Attributes
    ----------
    bars : pl.DataFrame
        Bars in :data:`core.schema.BAR_SCHEMA`, ``source="synthetic"``, stamped at bar start.
    jumps : pl.DataFrame
        :data:`JUMP_SCHEMA`: one row per bar that holds at least one jump, ``ts`` its bar start and
        ``size`` the summed log-jump (the bar's ``log(close / open)`` is ``size`` plus its diffusion).
    """

    bars: pl.DataFrame
    jumps: pl.DataFrame


@dataclass(frozen=True)
class ModelParameters:
    """The numbers of :func:`generate_bars`' model (its keyword arguments of the same names).

    Attributes
    ----------
    jump_intensity : float
        Expected jumps per trading day, in [0, 1000].
    jump_scale : float
        Typical absolute log-jump size (>= 0); magnitudes are ``jump_scale * exp(0.25 * Z)``.
    base_vol : float
        Unconditional annualized volatility of the diffusion (> 0), e.g. 0.6 for crypto, 0.15 for an
        equity index, 0.08 for EUR/USD.
    start_price : float
        Price on 2000-01-01 and the level the log price is weakly pulled back to (> 0). The first bar
        of a later window opens wherever the path is then (log price s.d. about 0.85 * base_vol).
    vol_of_vol : float
        Stationary standard deviation of the slow log-variance (>= 0; 0 removes the slow component).
    vol_half_life_days : float
        Half-life of slow log-variance shocks, in calendar days (> 0).
    seasonality : float
        U-shape amplitude ``A`` (>= 0): variance at the day's edges is ``1 + A`` times mid-day.
    """

    jump_intensity: float
    jump_scale: float
    base_vol: float
    start_price: float
    vol_of_vol: float
    vol_half_life_days: float
    seasonality: float


def symbol_seed(symbol: str, seed: int) -> tuple[int, int]:
    """Return the entropy pair that keys ``symbol``'s random streams.

    Parameters
    ----------
    symbol : str
        Instrument symbol.
    seed : int
        User seed (non-negative).

    Returns
    -------
    tuple[int, int]
        ``(seed, first 8 bytes of sha256(symbol) as an int)``: stable across processes and Python
        versions, unlike the salted built-in ``hash``.
    """
    digest = hashlib.sha256(symbol.encode("utf-8")).digest()
    return seed, int.from_bytes(digest[:8], "big")


def generate_bars(
    symbol: str,
    start: datetime | date,
    end: datetime | date,
    interval: str = "1m",
    *,
    seed: int = 0,
    calendar: str = "24x7",
    jump_intensity: float = 0.1,
    jump_scale: float = 0.01,
    base_vol: float = 0.6,
    start_price: float = 100.0,
    vol_of_vol: float = 0.5,
    vol_half_life_days: float = 5.0,
    seasonality: float = 2.0,
) -> SyntheticBars:
    """Generate seeded jump-diffusion bars with stochastic volatility and intraday seasonality.

    Parameters
    ----------
    symbol : str
        Symbol written to the bars; also keys the random streams (via sha256), so symbols differ.
    start, end : datetime or date
        Half-open range ``[start, end)`` inside [2000-01-01, 2099-12-01). A ``date`` means midnight
        UTC; a naive ``datetime`` is read as UTC. Bars whose start lies in the range are returned, and
        they are the same bars whatever range they are generated in.
    interval : str
        One of ``1m``, ``5m``, ``15m``, ``30m``, ``1h``.
    seed : int
        Non-negative seed. Same seed and arguments give bit-identical output.
    calendar : str
        ``24x7`` (every bar of every UTC day), ``fx`` (no bars from Friday 17:00 to Sunday 17:00
        America/New_York, DST-aware; FX holidays are not modelled) or ``XNYS`` (NYSE regular sessions
        09:30-16:00 New York with holidays and early closes, from ``exchange_calendars``; bars are
        aligned to the open and a session's last bar is cut at the close, e.g. 15:30-16:00 for 1h).
    jump_intensity, jump_scale, base_vol, start_price, vol_of_vol, vol_half_life_days, seasonality : float
        The model's parameters; see :class:`ModelParameters` for each one's meaning and range.

    Returns
    -------
    SyntheticBars
        ``bars`` (BAR_SCHEMA, source ``synthetic``) and ``jumps`` (JUMP_SCHEMA, the injected truth).

    Raises
    ------
    ConfigError
        If a parameter is out of range, the calendar or interval is unknown, or the range is empty,
        outside 2000-01-01 .. 2099-12-01, or longer than 50 million bars.
    """
    model = ModelParameters(
        jump_intensity, jump_scale, base_vol, start_price, vol_of_vol, vol_half_life_days, seasonality
    )
    span = _check_request(symbol, start, end, interval, seed=seed, calendar=calendar, model=model)
    return _simulate(symbol, interval, int(seed), calendar, span, model)


def _simulate(
    symbol: str, interval: str, seed: int, calendar: str, span: tuple[int, int, int], model: ModelParameters
) -> SyntheticBars:
    """The bars of a checked request; ``span`` is (bar seconds, start and end epoch seconds)."""
    step, start_s, end_s = span
    entropy = symbol_seed(symbol, seed)
    days = _day_table(calendar, end_s)
    daily = _daily_path(
        entropy,
        calendar,
        days,
        end_s,
        jump_intensity=float(model.jump_intensity),
        jump_scale=float(model.jump_scale),
        base_vol=float(model.base_vol),
        log_price0=math.log(model.start_price),
        vol_of_vol=float(model.vol_of_vol),
        vol_half_life_days=float(model.vol_half_life_days),
    )
    # Trading days whose [start, end) meets the window.
    window = np.flatnonzero((daily.start < end_s) & (daily.end > start_s))
    if window.size == 0:
        return SyntheticBars(bars=_empty_bars(symbol, interval), jumps=_empty_jumps())

    bars, jumps = _intraday(
        entropy,
        calendar,
        step,
        daily,
        window,
        base_vol=float(model.base_vol),
        vol_of_vol=float(model.vol_of_vol),
        seasonality=float(model.seasonality),
    )
    ts = bars["ts"]
    keep = (ts >= start_s) & (ts < end_s)
    frame = _frame(symbol, interval, {k: v[keep] for k, v in bars.items()})
    jkeep = (jumps["ts"] >= start_s) & (jumps["ts"] < end_s)
    return SyntheticBars(bars=frame, jumps=_jump_frame(jumps["ts"][jkeep], jumps["size"][jkeep]))


def _check_request(
    symbol: str,
    start: datetime | date,
    end: datetime | date,
    interval: str,
    *,
    seed: int,
    calendar: str,
    model: ModelParameters,
) -> tuple[int, int, int]:
    """Validate :func:`generate_bars`' arguments; return (bar seconds, start and end epoch seconds)."""
    validate_symbol(symbol)
    step = _check_interval(interval)
    if calendar not in CALENDARS:
        raise ConfigError(f"calendar={calendar!r} is not supported; expected one of {list(CALENDARS)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative integer")
    _check_number("jump_intensity", model.jump_intensity, minimum=0.0, maximum=_MAX_JUMP_INTENSITY)
    _check_number("jump_scale", model.jump_scale, minimum=0.0)
    _check_number("base_vol", model.base_vol, minimum=0.0, strict=True)
    _check_number("start_price", model.start_price, minimum=0.0, strict=True)
    _check_number("vol_of_vol", model.vol_of_vol, minimum=0.0)
    _check_number("vol_half_life_days", model.vol_half_life_days, minimum=0.0, strict=True)
    _check_number("seasonality", model.seasonality, minimum=0.0)
    start_s, end_s = _to_epoch_s(start, "start"), _to_epoch_s(end, "end")
    if end_s <= start_s:
        raise ConfigError(f"end ({end!r}) must be after start ({start!r})")
    horizon_s = _to_epoch_s(HORIZON_END, "end")
    if start_s < _ORIGIN_S or end_s > horizon_s:
        raise ConfigError(
            f"range {start!r}..{end!r} must lie within {ORIGIN.isoformat()} .. {HORIZON_END.isoformat()} "
            "(synthetic paths are anchored at 2000-01-01 so that every partition agrees)"
        )
    if (end_s - start_s) // step > _MAX_BARS:
        raise ConfigError(
            f"range {start!r}..{end!r} at interval {interval} exceeds {_MAX_BARS:,} bars; split it"
        )
    return step, start_s, end_s


# --------------------------------------------------------------------------------------------------
# calendars: one row per calendar day since ORIGIN


@dataclass(frozen=True)
class _Days:
    start: _I64  # trading-day start (epoch s), per calendar day key
    end: _I64  # trading-day end (epoch s)
    trading: npt.NDArray[np.bool_]


def _day_table(calendar: str, end_s: int) -> _Days:
    if calendar == "XNYS":
        last_year = min(max(2030, datetime.fromtimestamp(end_s, UTC).year + 1), HORIZON_END.year)
        return _xnys_days(last_year)
    return _continuous_days(calendar)


@lru_cache(maxsize=4)
def _continuous_days(calendar: str) -> _Days:
    import pandas as pd

    keys = np.arange(_N_DAYS, dtype=np.int64)
    if calendar == "24x7":
        start = _ORIGIN_S + keys * _DAY_S
        return _frozen_days(start, start + _DAY_S, np.ones(_N_DAYS, dtype=bool))
    # fx: day d (named by the date its session ends) runs 17:00 New York on d-1 to 17:00 New York on d.
    dates = pd.date_range(ORIGIN.isoformat(), periods=_N_DAYS + 1, freq="D") - pd.Timedelta(days=1)
    roll = (dates + pd.Timedelta(hours=_FX_ROLL_HOUR)).tz_localize("America/New_York")
    edges = np.asarray(roll.as_unit("s").asi8, dtype=np.int64)
    trading = np.asarray(dates[1:].dayofweek < 5)  # Monday..Friday sessions; weekend days closed
    start, end = edges[:-1], edges[1:]
    # DST changes fall on Sunday 02:00, inside the weekend, so every open FX day is exactly 24 h.
    assert ((end - start)[trading] == _DAY_S).all()
    return _frozen_days(start, end, trading)


@lru_cache(maxsize=4)
def _xnys_days(last_year: int) -> _Days:
    import exchange_calendars as xcals
    import pandas as pd

    cal = xcals.get_calendar("XNYS", start=ORIGIN.isoformat(), end=f"{last_year}-12-31")
    sched = cal.schedule
    sessions = pd.DatetimeIndex(sched.index)
    keys = np.asarray((sessions - pd.Timestamp(ORIGIN.isoformat())).days, dtype=np.int64)
    opens = np.asarray(pd.DatetimeIndex(sched["open"]).as_unit("s").asi8, dtype=np.int64)
    closes = np.asarray(pd.DatetimeIndex(sched["close"]).as_unit("s").asi8, dtype=np.int64)
    n = int(keys[-1]) + 1
    start = _ORIGIN_S + np.arange(n, dtype=np.int64) * _DAY_S
    end = start.copy()
    trading = np.zeros(n, dtype=bool)
    start[keys], end[keys], trading[keys] = opens, closes, True
    return _frozen_days(start, end, trading)


def _frozen_days(start: _I64, end: _I64, trading: npt.NDArray[np.bool_]) -> _Days:
    for a in (start, end, trading):
        a.setflags(write=False)  # cached: callers must not mutate
    return _Days(start=start, end=end, trading=trading)


# --------------------------------------------------------------------------------------------------
# daily path: day-start and day-end log prices of every trading day from ORIGIN


@dataclass(frozen=True)
class _Daily:
    key: _I64  # calendar-day key of each trading day (through the day after the window)
    start: _I64
    end: _I64
    log_open: _F64  # log price at the day's first bar open (S_n)
    log_close: _F64  # log price at the day's last bar close (E_n)
    diffusion_total: _F64  # E_n - S_n - jumps_n: what the day's bars must add up to
    h: _F64  # slow log-variance per calendar day (stationary mean 0)
    jump_key: _I64  # calendar-day key of each kept jump
    jump_pos: _F64  # uniform position of each kept jump in its day
    jump_size: _F64


class _Draws(NamedTuple):
    """The fixed-length daily random stream over 2000-2099, and the slow log-variance from it."""

    z_day: _F64
    z_gap: _F64
    u_keep: _F64
    u_pos: _F64
    size: _F64
    jump_key: _I64
    h: _F64


def _daily_draws(
    entropy: tuple[int, int],
    *,
    jump_intensity: float,
    jump_scale: float,
    vol_of_vol: float,
    vol_half_life_days: float,
) -> _Draws:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence((*entropy, _Q_DAILY))))
    # Fixed-length draws over 2000-2099, in a fixed order: no window changes what any day receives.
    z_vol = rng.standard_normal(_N_DAYS)
    z_day = rng.standard_normal(_N_DAYS)
    z_gap = rng.standard_normal(_N_DAYS)
    n_jumps = rng.poisson(jump_intensity, _N_DAYS)
    total = int(n_jumps.sum())
    u_keep = rng.random(total)
    u_pos = rng.random(total)
    sign = np.where(rng.random(total) < 0.5, -1.0, 1.0)
    size = sign * jump_scale * np.exp(0.25 * rng.standard_normal(total))
    jump_key = np.repeat(np.arange(_N_DAYS, dtype=np.int64), n_jumps)

    # Slow log-variance: exact daily sampling of a stationary OU.
    phi = math.exp(-math.log(2.0) / vol_half_life_days)
    innov = z_vol * (vol_of_vol * math.sqrt(1.0 - phi * phi))
    innov[0] = z_vol[0] * vol_of_vol
    h: _F64 = lfilter([1.0], [1.0, -phi], innov)
    return _Draws(z_day, z_gap, u_keep, u_pos, size, jump_key, h)


def _day_levels(
    calendar: str, log_price0: float, diffusion: _F64, jumps_day: npt.NDArray[Any], gap: _F64
) -> tuple[_F64, _F64]:
    """Log price at each trading day's open and close (the day after the window closes at NaN)."""
    # Deviation X_n of the day-start log price from log(start_price):
    # X_{n+1} = (1 - k) X_n + diffusion_n + jumps_n + gap_{n+1}, X_0 = 0 (a weak pull to the anchor).
    k = math.log(2.0) / (_LEVEL_HALF_LIFE_YEARS * _TRADING_DAYS_PER_YEAR[calendar])
    drive = diffusion[:-1] + jumps_day[:-1] + gap[1:]
    deviation = np.zeros(diffusion.size)
    deviation[1:] = lfilter([1.0], [1.0, -(1.0 - k)], drive)
    log_open = log_price0 + deviation
    log_close = np.empty(diffusion.size)
    log_close[:-1] = log_open[1:] - gap[1:]  # exactly log_open[n+1] where there is no gap (24x7)
    log_close[-1] = np.nan  # the day after the window: never emitted
    return log_open, log_close


def _daily_path(
    entropy: tuple[int, int],
    calendar: str,
    days: _Days,
    end_s: int,
    *,
    jump_intensity: float,
    jump_scale: float,
    base_vol: float,
    log_price0: float,
    vol_of_vol: float,
    vol_half_life_days: float,
) -> _Daily:
    z_day, z_gap, u_keep, u_pos, size, jump_key, h = _daily_draws(
        entropy,
        jump_intensity=jump_intensity,
        jump_scale=jump_scale,
        vol_of_vol=vol_of_vol,
        vol_half_life_days=vol_half_life_days,
    )

    # Trading days from ORIGIN through the first one that starts at or after the window end.
    trading_keys = np.flatnonzero(days.trading)
    after = np.flatnonzero(days.start[trading_keys] >= end_s)
    if after.size == 0:  # pragma: no cover - the tables run past HORIZON_END
        raise ConfigError("the calendar table does not reach past the window end")
    key = trading_keys[: after[0] + 1].astype(np.int64)
    start, end = days.start[key], days.end[key]
    seconds = (end - start).astype(np.float64)
    weight = np.minimum(seconds / _MAX_DAY_S[calendar], 1.0)

    h_mean = 0.5 * (h[key] + h[key + 1])
    var_day = base_vol * base_vol / _YEAR_S[calendar] * seconds * np.exp(h_mean - 0.5 * vol_of_vol**2)
    diffusion = np.sqrt(var_day) * z_day[key]  # driftless log price: it reverts to log(start_price)

    index_of_key = np.full(_N_DAYS, -1, dtype=np.int64)
    index_of_key[key] = np.arange(key.size)
    jump_index = index_of_key[jump_key]
    kept = jump_index >= 0
    kept[kept] = u_keep[kept] < weight[jump_index[kept]]  # thin jumps on short days
    jumps_day = np.bincount(jump_index[kept], weights=size[kept], minlength=key.size)

    gap = np.zeros(key.size)
    gap_s = (start[1:] - end[:-1]).astype(np.float64)
    gap[1:] = np.sqrt(_GAP_VARIANCE_FACTOR * base_vol * base_vol * gap_s / (365.0 * _DAY_S)) * z_gap[key[1:]]

    log_open, log_close = _day_levels(calendar, log_price0, diffusion, jumps_day, gap)
    return _Daily(
        key=key,
        start=start,
        end=end,
        log_open=log_open,
        log_close=log_close,
        diffusion_total=log_close - log_open - jumps_day,
        h=h,
        jump_key=jump_key[kept],
        jump_pos=u_pos[kept],
        jump_size=size[kept],
    )


# --------------------------------------------------------------------------------------------------
# intraday bars of the window's trading days, on a (days x M) grid


@dataclass(frozen=True)
class _Grid:
    """The window's bar slots: one row per trading day, ``m`` slots per row (``valid`` ones are bars)."""

    entropy: tuple[int, int]
    m: int
    key: _I64
    n_bars: _I64
    valid: npt.NDArray[np.bool_]
    all_valid: bool
    ts: _I64
    dur: _F64
    tau: _F64

    def uniforms(self, stream: int) -> _F64:
        """Uniforms of ``stream`` at counters ``key * m + j`` (one row per day of the window)."""
        key, m = self.key, self.m
        bits = np.random.PCG64(np.random.SeedSequence((*self.entropy, stream)))
        first, span = int(key[0]), int(key[-1] - key[0] + 1)
        bits.advance(first * m)
        block = np.random.Generator(bits).random(span * m).reshape(span, m)
        return block if span == key.size else block[key - first]  # every day of the span is a row


def _grid(entropy: tuple[int, int], calendar: str, step: int, daily: _Daily, window: _I64) -> _Grid:
    m = -(-_MAX_DAY_S[calendar] // step)  # bar slots per day; bar j of day `key` reads counter key*M + j
    start = daily.start[window]
    seconds = (daily.end[window] - start).astype(np.float64)
    n_bars = -(-(daily.end[window] - start) // step)
    j = np.arange(m, dtype=np.int64)
    valid = j[None, :] < n_bars[:, None]
    ts = start[:, None] + j[None, :] * step
    dur = np.clip(daily.end[window][:, None] - ts, 0, step).astype(np.float64)
    tau = (ts - start[:, None]) / seconds[:, None]
    return _Grid(entropy, m, daily.key[window], n_bars, valid, bool(valid.all()), ts, dur, tau)


def _stochastic_vol(grid: _Grid, daily: _Daily, step: int, *, vol_of_vol: float, seasonality: float) -> _F64:
    """Slow x fast stochastic volatility x seasonality per bar slot, mean about one."""
    # Seasonality (mean one over the day) and the slow log-variance interpolated through the day.
    tau, key = grid.tau, grid.key
    u = 2.0 * tau - 1.0
    season = (1.0 + seasonality * u * u) * (1.0 / (1.0 + seasonality / 3.0))
    h0, h1 = daily.h[key][:, None], daily.h[key + 1][:, None]

    # Fast log-variance: AR(1) per day, stationary start, uniform innovations scaled to unit variance.
    phi = math.exp(-math.log(2.0) * step / _FAST_HALF_LIFE_S)
    innov = (grid.uniforms(_Q_FAST) - 0.5) * (math.sqrt(12.0) * _FAST_SD * math.sqrt(1.0 - phi * phi))
    innov[:, 0] *= 1.0 / math.sqrt(1.0 - phi * phi)
    log_sv = lfilter([1.0], [1.0, -phi], innov, axis=1)
    log_sv += h0 + (h1 - h0) * tau - 0.5 * (vol_of_vol**2 + _FAST_SD**2)
    sv_season = np.exp(log_sv)
    sv_season *= season  # slow x fast stochastic volatility x seasonality, mean about one
    return sv_season


def _increments(
    grid: _Grid, daily: _Daily, window: _I64, var: _F64
) -> tuple[_F64, _I64, _I64, npt.NDArray[np.bool_]]:
    """Per-bar log increments (bridged diffusion plus jumps) and where the window's jumps fall."""
    key, n_bars = grid.key, grid.n_bars
    y = np.sqrt(var)
    y *= ndtri(np.maximum(grid.uniforms(_Q_DIFFUSION), 2.0**-54))
    # Gaussian bridge: pin each day's bars to the day's diffusion total.
    correction = (y.sum(axis=1) - daily.diffusion_total[window]) / var.sum(axis=1)
    inc = y - var * correction[:, None]

    # Jumps of the window's days, at a uniform bar of their day.
    found = np.minimum(np.searchsorted(key, daily.jump_key), key.size - 1)
    mine = key[found] == daily.jump_key
    jrows = found[mine]
    jcols = np.minimum((daily.jump_pos[mine] * n_bars[jrows]).astype(np.int64), n_bars[jrows] - 1)
    np.add.at(inc, (jrows, jcols), daily.jump_size[mine])
    if not grid.all_valid:
        inc[~grid.valid] = 0.0
    return inc, jrows, jcols, mine


def _prices(grid: _Grid, daily: _Daily, window: _I64, inc: _F64, var: _F64) -> dict[str, _F64]:
    """Open, high, low, close per bar slot: days start at S_n and close at E_n exactly."""
    log_open_day = daily.log_open[window]
    log_close = np.cumsum(inc, axis=1)
    log_close += log_open_day[:, None]
    rows = np.arange(grid.key.size)
    log_close[rows, grid.n_bars - 1] = daily.log_close[window]
    log_open = np.empty_like(log_close)
    log_open[:, 0] = log_open_day
    log_open[:, 1:] = log_close[:, :-1]
    ret = log_close - log_open
    close = np.exp(log_close)
    open_ = np.empty_like(close)
    open_[:, 0] = np.exp(log_open_day)
    open_[:, 1:] = close[:, :-1]  # equal to exp(log_open) bit for bit

    # Brownian-bridge extremes from open to close: P(max > m) = exp(-2 m (m - r) / var), m >= max(0, r).
    ret2 = ret * ret
    spread = np.log1p(-grid.uniforms(_Q_HIGH))
    spread *= -2.0 * var
    spread += ret2
    high = np.exp(log_open + 0.5 * (ret + np.sqrt(spread)))
    spread = np.log1p(-grid.uniforms(_Q_LOW))
    spread *= -2.0 * var
    spread += ret2
    low = np.exp(log_open + 0.5 * (ret - np.sqrt(spread)))
    np.maximum(high, np.maximum(open_, close), out=high)
    np.minimum(low, np.minimum(open_, close), out=low)
    return {"open": open_, "high": high, "low": low, "close": close}


def _intraday(
    entropy: tuple[int, int],
    calendar: str,
    step: int,
    daily: _Daily,
    window: _I64,
    *,
    base_vol: float,
    vol_of_vol: float,
    seasonality: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    grid = _grid(entropy, calendar, step, daily, window)
    sv_season = _stochastic_vol(grid, daily, step, vol_of_vol=vol_of_vol, seasonality=seasonality)
    var = sv_season * grid.dur
    var *= base_vol * base_vol / _YEAR_S[calendar]
    if not grid.all_valid:
        var[~grid.valid] = 0.0
    inc, jrows, jcols, mine = _increments(grid, daily, window, var)
    prices = _prices(grid, daily, window, inc, var)
    # Volume follows volatility (seasonality and SV), with uniform noise of mean one.
    volume = np.sqrt(sv_season)
    volume *= grid.dur * (1_000.0 / 60.0)
    volume *= 0.5 + grid.uniforms(_Q_VOLUME)
    np.round(volume, out=volume)

    jump = np.zeros_like(var)
    count = np.zeros(var.shape, dtype=np.int64)
    np.add.at(jump, (jrows, jcols), daily.jump_size[mine])
    np.add.at(count, (jrows, jcols), 1)
    has_jump = count > 0
    ts = grid.ts
    if grid.all_valid:
        flat = {"ts": ts, **prices, "volume": volume}
        return {k: v.ravel() for k, v in flat.items()}, {"ts": ts[has_jump], "size": jump[has_jump]}
    valid = grid.valid
    bars = {"ts": ts[valid], **{k: v[valid] for k, v in prices.items()}, "volume": volume[valid]}
    has_jump &= valid
    return bars, {"ts": ts[has_jump], "size": jump[has_jump]}


# --------------------------------------------------------------------------------------------------
# helpers


def _check_interval(interval: str) -> int:
    if interval not in INTERVAL_SECONDS:
        raise ConfigError(f"interval={interval!r} is not supported; expected one of {list(INTERVAL_SECONDS)}")
    return INTERVAL_SECONDS[interval]


def _check_number(
    name: str, value: float, *, minimum: float, strict: bool = False, maximum: float | None = None
) -> None:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = value > minimum if strict else value >= minimum
        ok = ok and (maximum is None or value <= maximum)
    if not ok:
        rel = ">" if strict else ">="
        upper = f" and <= {maximum:g}" if maximum is not None else ""
        raise ConfigError(f"{name}={value!r} must be a finite number {rel} {minimum:g}{upper}")


def _to_epoch_s(value: datetime | date, name: str) -> int:
    if isinstance(value, datetime):
        dt = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, date):
        dt = datetime.combine(value, time(0), tzinfo=UTC)
    else:
        raise ConfigError(f"{name}={value!r} must be a datetime or a date")
    return math.floor(dt.timestamp())


_PRICE_COLS = ("open", "high", "low", "close", "volume")


def _frame(symbol: str, interval: str, cols: dict[str, Any]) -> pl.DataFrame:
    ts_us = np.asarray(cols["ts"], dtype=np.int64) * 1_000_000
    data: dict[str, pl.Series] = {"ts": pl.Series("ts", ts_us, dtype=pl.Int64).cast(UTC_TS)}
    for c in _PRICE_COLS:
        data[c] = pl.Series(c, np.asarray(cols[c], dtype=np.float64), dtype=pl.Float64)
    frame = pl.DataFrame(data).with_columns(
        symbol=pl.lit(symbol), interval=pl.lit(interval), source=pl.lit("synthetic")
    )
    return conform_bars(frame)


def _empty_bars(symbol: str, interval: str) -> pl.DataFrame:
    cols: dict[str, Any] = {"ts": np.empty(0, np.int64), **{c: np.empty(0) for c in _PRICE_COLS}}
    return _frame(symbol, interval, cols)


def _jump_frame(ts: npt.ArrayLike, sizes: npt.ArrayLike) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": pl.Series("ts", np.asarray(ts, dtype=np.int64) * 1_000_000, dtype=pl.Int64).cast(UTC_TS),
            "size": pl.Series("size", np.asarray(sizes, dtype=np.float64), dtype=pl.Float64),
        },
        schema=JUMP_SCHEMA,
    )


def _empty_jumps() -> pl.DataFrame:
    return _jump_frame(np.empty(0, np.int64), np.empty(0))
