"""Intraday seasonality of one-minute returns: a time-of-day volatility profile, fitted on training data.

Minute returns carry a strong deterministic volatility pattern over the trading day (the U shape of
equities, the London/New York overlap of FX, the US-hours hump of crypto). A volatility model fitted
to raw minute returns chases that pattern; its VaR breaches then cluster at the open. Following
Andersen & Bollerslev (1997), each return is divided by a time-of-day factor ``s(b)`` before the
model sees it and the model's variance forecast is multiplied by ``s(b)^2`` afterwards.

The profile
-----------
- Bucket ``b``: the minute of the day of the return's bar, in the instrument's time zone
  (``America/New_York`` for US equities and FX, UTC for 24/7 crypto; the caller passes
  ``tasks.instruments.calendar_timezone``), in buckets of ``bucket_minutes``; optionally one profile
  per weekday (``by_weekday``), e.g. for the FX weekly open.
- Statistic: the mean ABSOLUTE return per bucket (robust to the odd jump; ``statistic="rms"`` uses
  the root mean square instead), smoothed by a circular moving window of ``smooth_minutes`` over the
  day: sums and counts are pooled over neighbouring buckets, so a sparse bucket borrows from its
  neighbours. A bucket whose pooled count is below ``min_obs`` takes the overall level.
- Normalised so that the mean of ``s(b_t)^2`` over the training returns is 1 (the deseasonalised
  series keeps the training variance scale); factors are floored at ``floor`` times the overall
  level so a dead bucket cannot blow a return up.
- Fitted on the TRAINING returns only: hold-out returns never enter ``fit_profile``.

Gaps
----
A close-to-close return across missing bars (SPY's untraded minutes, a weekend, the overnight jump)
is not a one-minute return: its variance is that of the whole gap. :func:`one_bar_returns` keeps only
returns whose two bars are exactly one interval apart; the rest are DROPPED from training and
evaluation alike (and counted), so every modelled return is a one-minute return stamped in its
bucket. A session's first return (after the overnight gap) is therefore never forecast, and the
minute model's input window may straddle a gap (it sees the last ``m`` one-minute returns).

Pure numpy/polars.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError

_MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class SeasonalitySettings:
    """How the time-of-day profile is estimated (see the module docstring).

    Attributes
    ----------
    bucket_minutes : int
        Width of a time-of-day bucket (divides 1440).
    smooth_minutes : int
        Width of the circular moving window that pools neighbouring buckets (0: none).
    min_obs : int
        Fewest pooled training returns for a bucket to get its own level.
    by_weekday : bool
        One profile per weekday (Monday..Sunday) instead of one for all days.
    statistic : str
        ``abs`` (mean absolute return) or ``rms``.
    floor : float
        Lowest factor, as a share of the overall level.
    """

    bucket_minutes: int = 1
    smooth_minutes: int = 15
    min_obs: int = 20
    by_weekday: bool = False
    statistic: Literal["abs", "rms"] = "abs"
    floor: float = 0.1

    def __post_init__(self) -> None:
        b = self.bucket_minutes
        if isinstance(b, bool) or not isinstance(b, int) or b < 1 or _MINUTES_PER_DAY % b:
            raise ConfigError(f"bucket_minutes must be an integer dividing 1440; got {b!r}")
        for name in ("smooth_minutes", "min_obs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name} must be an integer >= 0; got {v!r}")
        if self.statistic not in ("abs", "rms"):
            raise ConfigError(f"statistic must be 'abs' or 'rms'; got {self.statistic!r}")
        if not (isinstance(self.floor, int | float) and 0 < self.floor <= 1):
            raise ConfigError(f"floor must be in (0, 1]; got {self.floor!r}")
        if not isinstance(self.by_weekday, bool):
            raise ConfigError(f"by_weekday must be true or false; got {self.by_weekday!r}")


@dataclass(frozen=True)
class SeasonalProfile:
    """A fitted profile: ``factors[day, bucket]`` multiplies a return's standard deviation.

    ``day`` is 0 for every day (``by_weekday`` False) or the weekday 0..6 (Monday = 0).
    """

    timezone: str
    settings: SeasonalitySettings
    factors: np.ndarray
    counts: np.ndarray
    n_train: int

    @property
    def n_buckets(self) -> int:
        """Buckets per day."""
        return int(self.factors.shape[1])

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (the factors as nested lists)."""
        return {
            "timezone": self.timezone,
            "settings": asdict(self.settings),
            "n_train": self.n_train,
            "factors": np.round(self.factors, 6).tolist(),
            "counts": self.counts.astype(int).tolist(),
        }


def one_bar_returns(ts: pl.Series, close: np.ndarray, interval_minutes: int = 1) -> pl.DataFrame:
    """Close-to-close log returns whose two bars are exactly one interval apart.

    Parameters
    ----------
    ts : pl.Series
        Bar stamps (UTC, sorted, unique).
    close : np.ndarray
        Closes, positive and finite.
    interval_minutes : int
        The bar interval.

    Returns
    -------
    pl.DataFrame
        ``ts`` (stamp of the return's second bar), ``ret``, ``span_minutes`` of every return, and
        ``keep`` (True where ``span_minutes == interval_minutes``).
    """
    c = np.asarray(close, dtype=float)
    if c.size != ts.len() or c.size < 2:
        raise DataError("one_bar_returns needs at least two bars with one close each")
    if not np.all(np.isfinite(c) & (c > 0)):
        raise DataError("bars need positive finite closes")
    span = ts.diff().dt.total_minutes().to_numpy()[1:]
    if np.any(span <= 0):
        raise DataError("bar stamps must be strictly increasing")
    return pl.DataFrame(
        {
            "ts": ts[1:],
            "ret": np.log(c[1:] / c[:-1]),
            "span_minutes": span.astype(np.int64),
            "keep": span == interval_minutes,
        }
    )


def bucket_index(
    stamps: pl.Series, timezone: str, settings: SeasonalitySettings
) -> tuple[np.ndarray, np.ndarray]:
    """``(day, bucket)`` of each stamp in ``timezone``: weekday (or 0) and time-of-day bucket."""
    local = stamps.dt.convert_time_zone(timezone)
    minute = local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32)
    bucket = (minute // settings.bucket_minutes).to_numpy().astype(np.int64)
    if settings.by_weekday:
        day = (local.dt.weekday().cast(pl.Int32) - 1).to_numpy().astype(np.int64)
    else:
        day = np.zeros(bucket.size, dtype=np.int64)
    return day, bucket


def _circular_pool(values: np.ndarray, width: int) -> np.ndarray:
    """Moving sums over ``width`` buckets centred on each bucket, wrapping around the day (rows)."""
    if width <= 1:
        return values.copy()
    half = width // 2
    n = values.shape[1]
    idx = (np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :]) % n
    return values[:, idx].sum(axis=2)


def fit_profile(
    returns: np.ndarray,
    stamps: pl.Series,
    timezone: str,
    settings: SeasonalitySettings | None = None,
) -> SeasonalProfile:
    """Fit the time-of-day profile on TRAINING returns (see the module docstring).

    Parameters
    ----------
    returns : np.ndarray
        One-minute training returns (finite).
    stamps : pl.Series
        Their UTC stamps.
    timezone : str
        IANA zone whose clock defines the buckets.
    settings : SeasonalitySettings | None
        Defaults when None.

    Returns
    -------
    SeasonalProfile
        Factors normalised to a mean square of 1 over ``returns``.
    """
    cfg = settings or SeasonalitySettings()
    r = np.asarray(returns, dtype=float)
    if r.size != stamps.len() or r.size == 0 or not np.isfinite(r).all():
        raise DataError("fit_profile needs finite returns, one stamp each")
    day, bucket = bucket_index(stamps, timezone, cfg)
    shape = (7 if cfg.by_weekday else 1, _MINUTES_PER_DAY // cfg.bucket_minutes)
    stat = np.abs(r) if cfg.statistic == "abs" else r**2
    sums, counts = np.zeros(shape), np.zeros(shape)
    np.add.at(sums, (day, bucket), stat)
    np.add.at(counts, (day, bucket), 1.0)
    width = max(1, cfg.smooth_minutes // cfg.bucket_minutes)
    pooled_s, pooled_n = _circular_pool(sums, width), _circular_pool(counts, width)
    overall = stat.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(pooled_n >= max(cfg.min_obs, 1), pooled_s / pooled_n, overall)
    level = level if cfg.statistic == "abs" else np.sqrt(level)
    base = overall if cfg.statistic == "abs" else np.sqrt(overall)
    if not base > 0:
        raise DataError("training returns are all zero: no intraday profile")
    factors = np.maximum(level, cfg.floor * base)
    factors = factors / np.sqrt(np.mean(factors[day, bucket] ** 2))
    return SeasonalProfile(timezone, cfg, factors, counts, int(r.size))


def seasonal_factor(profile: SeasonalProfile, stamps: pl.Series) -> np.ndarray:
    """The factor ``s(b_t)`` (a standard-deviation multiplier) of each stamp."""
    day, bucket = bucket_index(stamps, profile.timezone, profile.settings)
    return np.asarray(profile.factors[day, bucket], dtype=float)


def deseasonalise(returns: np.ndarray, stamps: pl.Series, profile: SeasonalProfile) -> np.ndarray:
    """``r_t / s(b_t)``: returns with the time-of-day volatility pattern removed."""
    return np.asarray(returns, dtype=float) / seasonal_factor(profile, stamps)


def reseasonalise(
    values: np.ndarray, stamps: pl.Series, profile: SeasonalProfile, power: int = 1
) -> np.ndarray:
    """``values * s(b_t) ** power``: power 1 for returns and quantiles, 2 for variances."""
    s = seasonal_factor(profile, stamps) ** power
    v = np.asarray(values, dtype=float)
    return v * (s if v.ndim == 1 else s[:, None])
