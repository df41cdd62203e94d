"""Reference pandas implementation of the daily features, written the way a researcher would.

Benchmark baseline only (``bench/features.py``): 24x7 calendar (the UTC day), no resampling, same
definitions as :mod:`tasks.features`. groupby / shift / transform(rolling) / named aggregation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

MU1 = math.sqrt(2 / math.pi)
MU43 = 2 ** (2 / 3) * math.gamma(7 / 6) / math.gamma(0.5)
THETA = MU1**-4 + 2 * MU1**-2 - 5


def pandas_daily_features(
    bars: pd.DataFrame,
    *,
    coverage_threshold: float = 0.8,
    jump_window: int = 60,
    jump_threshold: float = 4.0,
    jump_min_periods: int = 10,
) -> pd.DataFrame:
    """Daily features of 1-minute crypto bars (columns symbol, ts (UTC), open, high, low, close, volume)."""
    df = bars.sort_values(["symbol", "ts"]).reset_index(drop=True)
    df["session_date"] = df["ts"].dt.floor("D")
    keys = ["symbol", "session_date"]
    g = df.groupby(keys, sort=False)

    # Intraday returns: first bar open->close, then close->close.
    prev_close = g["close"].shift(1)
    df["r"] = np.log(df["close"] / prev_close.fillna(df["open"]))
    df["a"] = df["r"].abs()
    g = df.groupby(keys, sort=False)
    df["pair"] = df["a"] * g["a"].shift(1)
    a43 = df["a"] ** (4 / 3)
    df["a43"] = a43
    g = df.groupby(keys, sort=False)
    df["tri"] = a43 * g["a43"].shift(1) * g["a43"].shift(2)
    df["r2"] = df["r"] ** 2
    df["r4"] = df["r2"] ** 2
    df["r2_pos"] = df["r2"].where(df["r"] > 0, 0.0)
    df["r2_neg"] = df["r2"].where(df["r"] < 0, 0.0)

    # Jumps: local bipower sigma from the previous `jump_window` returns of the session.
    g = df.groupby(keys, sort=False)
    df["wsum"] = g["pair"].transform(
        lambda s: s.shift(1).rolling(jump_window - 1, min_periods=1).sum()
    )
    pos = g.cumcount()
    n_pairs = (pos - 1).clip(upper=jump_window - 1)
    enough = n_pairs >= min(jump_min_periods, jump_window - 1)
    sigma = np.sqrt(np.pi / 2 * df["wsum"] / n_pairs.where(enough))
    df["jump"] = ((sigma > 0) & (df["a"] > jump_threshold * sigma)).astype(int)

    daily = df.groupby(keys, sort=True).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        n_bars=("close", "size"),
        rv=("r2", "sum"),
        bv_sum=("pair", "sum"),
        rs_pos=("r2_pos", "sum"),
        rs_neg=("r2_neg", "sum"),
        r4=("r4", "sum"),
        tri=("tri", "sum"),
        jump_count=("jump", "sum"),
    ).reset_index()

    n = daily["n_bars"].astype(float)
    daily["n_returns"] = daily["n_bars"]
    daily["expected_bars"] = 1440
    daily["coverage"] = (daily["n_bars"] / daily["expected_bars"]).clip(upper=1.0)
    daily["low_coverage"] = daily["coverage"] < coverage_threshold
    daily["bv"] = np.pi / 2 * daily["bv_sum"]
    daily["jv"] = (daily["rv"] - daily["bv"]).clip(lower=0.0)
    daily["rq"] = n / 3 * daily["r4"]
    daily["tq"] = (n * MU43**-3 * (n / (n - 2)) * daily["tri"]).where(n >= 3)
    ratio = (daily["rv"] - daily["bv"]) / daily["rv"]
    scale = np.sqrt(THETA / n * np.maximum(1.0, daily["tq"] / daily["bv"] ** 2))
    valid = (n >= 3) & (daily["rv"] > 0) & (daily["bv"] > 0)
    daily["bns_z"] = (ratio / scale).where(valid)
    daily["bns_p"] = norm.sf(daily["bns_z"])

    # Across sessions: previous calendar day of the same symbol.
    by_symbol = daily.groupby("symbol", sort=False)
    prev_close_d = by_symbol["close"].shift(1)
    prev_date = by_symbol["session_date"].shift(1)
    consecutive = (daily["session_date"] - prev_date) == pd.Timedelta(days=1)
    prev_close_d = prev_close_d.where(consecutive)
    daily["ret_cc"] = np.log(daily["close"] / prev_close_d)
    daily["ret_oc"] = np.log(daily["close"] / daily["open"])
    daily["ret_overnight"] = np.log(daily["open"] / prev_close_d)
    daily["rv_d"] = daily["rv"]
    # The synthetic benchmark data has no missing days, so row windows equal calendar windows.
    daily["rv_w"] = by_symbol["rv"].transform(lambda s: s.rolling(5, min_periods=4).mean())
    daily["rv_m"] = by_symbol["rv"].transform(lambda s: s.rolling(22, min_periods=18).mean())
    daily["session_date"] = daily["session_date"].dt.date
    return daily.drop(columns=["bv_sum", "r4", "tri"])
