"""Per-bar scores the bars suite checks: stale bars, runs of repeated closes, return outliers.

Each function adds columns to a bars frame and keeps every row; nothing is dropped or modified.
"""

from __future__ import annotations

import numpy as np
import polars as pl

#: Added column holding |log return - median| / (1.4826 * MAD) within each (symbol, interval).
RETURN_Z_COLUMN = "abs_ret_z"
#: 1 where a bar is stale: open = high = low = close = the previous bar's close (a frozen feed).
STALE_COLUMN = "stale_bar"
#: Length of the run of identical closes that ends at each bar (1 for a bar whose close moved).
CLOSE_RUN_COLUMN = "close_run"


def add_staleness(frame: pl.DataFrame) -> pl.DataFrame:
    """Add :data:`STALE_COLUMN` and :data:`CLOSE_RUN_COLUMN`, per (symbol, interval) in time order.

    A stale bar repeats the previous close with no range at all (open = high = low = close): a
    frozen feed or a vendor filling holes. A thin market's one-trade bar at a new price is not stale.
    """
    keys = [c for c in ("symbol", "interval") if c in frame.columns]
    ordered = frame.sort([*keys, "ts"]) if frame.height else frame
    prev = pl.col("close").shift(1).over(keys) if keys else pl.col("close").shift(1)
    flat = (
        (pl.col("open") == pl.col("high"))
        & (pl.col("high") == pl.col("low"))
        & (pl.col("low") == pl.col("close"))
    )
    moved = (pl.col("close") != prev).fill_null(True)
    run_id = moved.cast(pl.Int64).cum_sum().over(keys) if keys else moved.cast(pl.Int64).cum_sum()
    return ordered.with_columns(
        (flat & (pl.col("close") == prev).fill_null(False)).cast(pl.Int8).alias(STALE_COLUMN),
        pl.int_range(1, pl.len() + 1).over([*keys, run_id]).alias(CLOSE_RUN_COLUMN),
    )


def add_return_zscore(frame: pl.DataFrame, sigma_floor: float = 0.0) -> pl.DataFrame:
    """Add :data:`RETURN_Z_COLUMN`: the robust z-score of each bar's close-to-close log return.

    Returns are taken in time order within each (symbol, interval); the median and the MAD (scaled by
    1.4826 to a normal sigma) are those of the partition. The row order and every row are kept.
    The score is null for the first bar, for a non-positive or non-finite close on either side, and
    when the partition's robust sigma is not above ``sigma_floor`` (e.g. constant prices).

    Parameters
    ----------
    frame : pl.DataFrame
        Bars with ``symbol``, ``interval``, ``ts`` and ``close``.
    sigma_floor : float
        Robust sigmas at or below this are treated as unknown.

    Returns
    -------
    pl.DataFrame
        ``frame`` with the added column, same rows in the same order.
    """
    group = ["symbol", "interval"]
    close = pl.col("close")
    log_close = pl.when((close > 0) & close.is_finite()).then(close.log())
    single = frame.height == 0 or all(frame[c].n_unique() == 1 for c in group)
    in_order = single and frame["ts"].null_count() == 0 and frame["ts"].is_sorted()

    def score(ret: pl.Expr, by: list[str] | None) -> pl.Expr:
        def per(expr: pl.Expr) -> pl.Expr:
            return expr.over(by) if by else expr

        med = per(ret.median())
        sigma = per((ret - med).abs().median()) * 1.4826
        return pl.when(sigma > sigma_floor).then((ret - med).abs() / sigma)

    if in_order:  # the usual partition: one symbol and interval, in time order (numpy: O(n) medians)
        returns = frame.select((log_close - log_close.shift(1)).cast(pl.Float64))
        values = returns.to_series().to_numpy(allow_copy=True).astype(np.float64)
        z = np.full(values.shape, np.nan)
        if np.isfinite(values).any():
            med = float(np.nanmedian(values))
            dev = np.abs(values - med)
            sigma = 1.4826 * float(np.nanmedian(dev))
            if sigma > sigma_floor:
                z = dev / sigma
        return frame.with_columns(pl.Series(RETURN_Z_COLUMN, z, dtype=pl.Float64).fill_nan(None))
    idx = "__volrisk_row"
    ret = pl.col("__ret")
    return (
        frame.with_row_index(idx)
        .sort([*group, "ts"], nulls_last=True, maintain_order=True)
        .with_columns((log_close - log_close.shift(1).over(group)).alias("__ret"))
        .with_columns(score(ret, group).alias(RETURN_Z_COLUMN))
        .sort(idx)
        .drop(idx, "__ret")
    )
