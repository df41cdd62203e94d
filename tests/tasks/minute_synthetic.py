"""Seeded synthetic minute bars with a known U-shaped intraday volatility profile (New York session)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

SESSION_MINUTES = 390  # 09:30-16:00 New York


def u_shape(minute_of_session: np.ndarray) -> np.ndarray:
    """The true standard-deviation factor: 4x at the open, 0.5x at midday, 1x at the close."""
    x = minute_of_session / (SESSION_MINUTES - 1)
    return 0.5 + 3.5 * np.exp(-x / 0.06) + 0.5 * np.exp(-(1 - x) / 0.05)


def u_shaped_bars(
    days: int = 60, seed: int = 0, sigma: float = 4e-4, df: float = 6.0, ranges: bool = False
) -> pl.DataFrame:
    """``ts`` (UTC, bar start), ``close`` of ``days`` weekday sessions 09:30-16:00 New York (DST-aware).

    Returns are ``sigma * u_shape(b) * t_df / sd(t_df)``: no volatility clustering across minutes, only
    the time-of-day pattern; the first bar of each session follows the overnight gap. ``ranges``
    adds ``high``/``low``: the bar's open-close span widened by a wick of the same scale.
    """
    rng = np.random.default_rng(seed)
    start = datetime(2011, 1, 3, 9, 30)  # New York wall clock
    stamps: list[datetime] = []
    day = start
    while len(stamps) < days * SESSION_MINUTES:
        if day.weekday() < 5:
            stamps += [day + timedelta(minutes=i) for i in range(SESSION_MINUTES)]
        day += timedelta(days=1)
    b = np.tile(np.arange(SESSION_MINUTES), days)
    eps = rng.standard_t(df, size=b.size) / np.sqrt(df / (df - 2))
    r = sigma * u_shape(b) * eps
    close = 100.0 * np.exp(np.cumsum(r))
    local = pl.Series(stamps, dtype=pl.Datetime("us")).dt.replace_time_zone("America/New_York")
    frame = pl.DataFrame({"ts": local.dt.convert_time_zone("UTC"), "close": close})
    if not ranges:
        return frame
    prev = np.concatenate([[100.0], close[:-1]])
    wick = np.exp(0.5 * sigma * u_shape(b) * np.abs(rng.standard_normal(b.size)))
    return frame.with_columns(
        high=pl.Series(np.maximum(prev, close) * wick), low=pl.Series(np.minimum(prev, close) / wick)
    )
