"""The cross-sectional market-RV factor that pooled and panel models read, lagged one session date.

``ewma_rv`` is the exponentially weighted mean of a symbol's RV (centre of mass ``com`` sessions).
:func:`global_factor` averages, over every symbol in a feature frame, each symbol's EWMA as of its
last session dated BEFORE ``d`` (at most ``stale_days`` calendar days before, so a symbol that stopped
trading drops out). Lagging by one session date means no market that closes later on the same date
leaks into an earlier one: a forecast made at Tokyo's close on ``d`` never sees New York's ``d``.

How the symbols are averaged (``how``):

``arithmetic``
    the mean of the EWMAs (BHHP 2018's within-asset-class average; ``hexp_gl``);
``geometric``
    exp of the mean of their logs, for symbols of different scales;
``relative``
    the mean of each symbol's log EWMA minus its own trailing mean over ``relative_window`` sessions
    (at least ``relative_window // 5`` of them): per-symbol standardised, so the factor does not jump
    when a symbol of a different level joins or leaves the panel. Each value reads the symbol's rows
    up to its own date only. The daily torch models' ``mkt_rv`` input and the ensemble's ``mkt``
    regime feature use it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np
import polars as pl
from scipy.signal import lfilter

from tasks.models.har_linear import column

#: Column holding the lagged market factor.
FACTOR = "gl_rv"
FactorMean = Literal["arithmetic", "geometric", "relative"]
#: Trailing sessions of the ``relative`` factor's per-symbol mean.
RELATIVE_WINDOW = 250


def ewma_rv(values: np.ndarray, com: float) -> np.ndarray:
    """Normalized exponentially weighted mean with centre of mass ``com`` (NaN rows skipped).

    ``E(t) = sum_i d^i x(t-i) / sum_i d^i`` over the finite ``x`` up to ``t``, ``d = com/(1+com)``;
    NaN until the first finite value.
    """
    decay = com / (1.0 + com)
    present = np.isfinite(values)
    num = lfilter([1.0], [1.0, -decay], np.where(present, values, 0.0))
    den = lfilter([1.0], [1.0, -decay], present.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _symbol_values(part: pl.DataFrame, com: float, how: FactorMean) -> np.ndarray:
    """One symbol's contribution per row (its rows sorted by date), before the cross-sectional mean."""
    ewma = ewma_rv(column(part, "rv_d"), com)
    if how == "arithmetic":
        return ewma
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(np.where(ewma > 0, ewma, np.nan))
    if how == "geometric":
        return logs
    trailing = (
        pl.Series(logs)
        .fill_nan(None)
        .rolling_mean(RELATIVE_WINDOW, min_samples=RELATIVE_WINDOW // 5)
        .fill_null(np.nan)
        .to_numpy()
    )
    return logs - trailing


def global_factor(
    features: pl.DataFrame, com: float = 5.0, how: FactorMean = "arithmetic", stale_days: int = 10
) -> pl.DataFrame:
    """The market factor of each session date in ``features`` (see the module docstring).

    Parameters
    ----------
    features : pl.DataFrame
        Every symbol's ``symbol``, ``session_date`` and ``rv_d``.
    com : float
        Centre of mass of each symbol's EWMA.
    how : {"arithmetic", "geometric", "relative"}
        How the symbols' EWMAs are averaged (module docstring).
    stale_days : int
        A symbol's value counts at date ``d`` only if dated within ``[d - stale_days, d - 1]``.

    Returns
    -------
    pl.DataFrame
        ``session_date`` and :data:`FACTOR` (null where no symbol has an earlier session).
    """
    dates = features.select(pl.col("session_date").unique().sort())
    lookup = dates.with_columns((pl.col("session_date") - timedelta(days=1)).alias("_asof"))
    columns = []
    for part in features.partition_by("symbol", maintain_order=True):
        part = part.sort("session_date")
        values = pl.Series("_e", _symbol_values(part, com, how))
        series = part.select(pl.col("session_date").alias("_asof")).with_columns(values)
        joined = lookup.join_asof(
            series.filter(pl.col("_e").is_not_nan()),
            on="_asof",
            strategy="backward",
            tolerance=timedelta(days=stale_days - 1),
        )
        columns.append(joined["_e"].cast(pl.Float64).fill_null(np.nan).to_numpy())
    stacked = np.column_stack(columns) if columns else np.full((dates.height, 1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        count = np.isfinite(stacked).sum(axis=1)
        mean = np.where(count > 0, np.where(np.isfinite(stacked), stacked, 0.0).sum(axis=1) / count, np.nan)
    factor = np.exp(mean) if how == "geometric" else mean
    return dates.with_columns(pl.Series(FACTOR, factor).fill_nan(None))


def with_market_factor(features: pl.DataFrame, com: float = 5.0, stale_days: int = 10) -> pl.DataFrame:
    """``features`` with :data:`FACTOR` joined on by session date: the ``relative`` factor of every
    symbol in the frame (each date's value reads rows dated before it only)."""
    factor = global_factor(features, com, "relative", stale_days)
    return features.join(factor, on="session_date", how="left", maintain_order="left")
