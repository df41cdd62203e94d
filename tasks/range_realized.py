"""Daily realized measures from daily OHLC bars: the Garman-Klass range variance.

A daily bar file gives one close-to-close return a day, too noisy to be a variance target on its own.
Its high and low carry far more: the Garman-Klass (1980) estimator

    rv = 0.5 * ln(H / L)^2 - (2 ln 2 - 1) * ln(C / O)^2

is about seven times as efficient as the squared open-to-close return for a driftless Brownian
motion. It measures the trading session only (the overnight move of an equity index is not in it),
and it is biased down by discrete sampling of the extremes; both are fine for a development series and
are why its symbols end in ``_GK``, apart from the intraday ``_RV`` series.

Pure: polars in, polars out, no I/O.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import polars as pl

from core.errors import DataError
from tasks.calendars import session_ordinals, sessions_between

#: Weight of the squared open-to-close log return in the Garman-Klass estimator.
GK_CLOSE_WEIGHT = 2.0 * math.log(2.0) - 1.0
#: A bar whose log range exceeds this many times the median of the previous ``BAD_PRINT_WINDOW`` bars'
#: is a bad print (one stray tick: Coinbase's BTC low of 0.06 on 2017-04-15, 222x); its variance is
#: replaced by the median variance of those bars, and its close and return are kept.
BAD_PRINT_FACTOR = 20.0
#: ... or one of whose wicks (the move beyond both open and close) exceeds this many times that median
#: (Bitstamp's BTC high of 15.00 on 2011-11-25 against an open of 3.00 and a close of 2.75, 16.7x; real
#: crash days such as 2013-04-10, with a wick of 10.7x, stay).
BAD_WICK_FACTOR = 15.0
BAD_PRINT_WINDOW = 66


class RangeRealized(NamedTuple):
    """Realized rows from daily bars, and the days left out or given an imputed variance (``date,
    action, reason``; action ``dropped`` or ``imputed``)."""

    rows: pl.DataFrame
    notes: pl.DataFrame


def garman_klass(open_: str = "open", high: str = "high", low: str = "low", close: str = "close") -> pl.Expr:
    """The Garman-Klass variance of one bar from its open, high, low and close columns."""
    hl = (pl.col(high) / pl.col(low)).log()
    co = (pl.col(close) / pl.col(open_)).log()
    return 0.5 * hl**2 - GK_CLOSE_WEIGHT * co**2


def _split_sessions(bars: pl.DataFrame, calendar: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The bars dated on a session of ``calendar`` (by UTC date of the stamp), with its ordinal, and the
    dates of those that are not (``date, reason``)."""
    dated = bars.with_columns(pl.col("ts").dt.date().alias("date")).sort("date")
    first, last = dated["date"].min(), dated["date"].max()
    sessions = pl.Series("date", sessions_between(calendar, first, last), dtype=pl.Date)  # type: ignore[arg-type]
    is_session = pl.col("date").is_in(sessions.implode())
    on = dated.filter(is_session)
    off = dated.filter(~is_session).select(
        "date", pl.lit("dropped").alias("action"), pl.lit(f"not a session of {calendar}").alias("reason")
    )
    return on.with_columns(session_ordinals(calendar, on["date"]).alias("_ord")), off


def _trailing_median(x: pl.Expr) -> pl.Expr:
    """Median of the positive values of ``x`` over the previous :data:`BAD_PRINT_WINDOW` bars."""
    return pl.when(x > 0).then(x).shift(1).rolling_median(BAD_PRINT_WINDOW, min_samples=10)


def _bad_prints() -> pl.Expr:
    """True where a bar's log range is over :data:`BAD_PRINT_FACTOR` times the trailing median range,
    or a wick over :data:`BAD_WICK_FACTOR` times it (the median of earlier bars only)."""
    rng = (pl.col("high") / pl.col("low")).log()
    trailing = _trailing_median(rng)  # a zero range (no trading) is no yardstick
    wick = pl.max_horizontal(
        (pl.col("high") / pl.max_horizontal("open", "close")).log(),
        (pl.min_horizontal("open", "close") / pl.col("low")).log(),
    )
    return ((rng > BAD_PRINT_FACTOR * trailing) | (wick > BAD_WICK_FACTOR * trailing)).fill_null(False)


def _check_bars(bars: pl.DataFrame, symbol: str) -> None:
    """Raise :class:`DataError` on the first bar whose high/low cannot bound its open and close."""
    if bars.is_empty():
        raise DataError(f"{symbol}: no daily bars")
    bad = bars.filter(
        (pl.col("high") < pl.max_horizontal("open", "close", "low"))
        | (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("low") <= 0)
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise DataError(
            f"{symbol}: {bad.height} daily bar(s) with high below low/open/close, low above open/close or "
            f"low <= 0, first on {row['ts']:%Y-%m-%d} (o={row['open']}, h={row['high']}, l={row['low']}, "
            f"c={row['close']})"
        )


def daily_bars_to_realized(bars: pl.DataFrame, calendar: str, symbol: str) -> RangeRealized:
    """Daily bars as generic realized-layout rows with the Garman-Klass variance as ``rv``.

    Parameters
    ----------
    bars : pl.DataFrame
        One symbol's daily bars (``ts``, ``open``, ``high``, ``low``, ``close``), stamped on their date.
    calendar : str
        The session calendar; bars on other dates are left out.
    symbol : str
        The realized series' symbol.

    Returns
    -------
    RangeRealized
        ``rows``: ``date, symbol, rv, bv, rq, rs_pos, rs_neg, ret, ret_oc, close_price, nobs``; ``ret``
        is the close-to-close log return (null after a missing session), ``bv``, ``rq`` and the
        semivariances are null (one bar cannot show them), ``nobs`` is 1. ``notes``: days dropped (a
        zero range: no trading; not a session) and bad prints (:data:`BAD_PRINT_FACTOR`,
        :data:`BAD_WICK_FACTOR`), whose ``rv`` is imputed as the trailing median variance so that their
        return stays in every backtest. A dropped day's close still serves the next day's return.

    Raises
    ------
    DataError
        A bar whose high is below its low, open or close (or whose low is above them), naming its date.
    """
    _check_bars(bars, symbol)
    on, off = _split_sessions(bars, calendar)
    follows = (pl.col("_ord") - pl.col("_ord").shift(1)) == 1
    ret = pl.when(follows).then((pl.col("close") / pl.col("close").shift(1)).log())
    empty = pl.lit(None, dtype=pl.Float64)
    gk = garman_klass()
    scored = on.with_columns(
        ret.alias("ret"),
        pl.when(gk <= 0).then(pl.lit("dropped")).when(_bad_prints()).then(pl.lit("imputed")).alias("action"),
        pl.when(_bad_prints()).then(_trailing_median(gk)).otherwise(gk).alias("rv"),
    )
    reason = pl.when(pl.col("action") == "dropped").then(pl.lit("zero range (no trading)"))
    bad = pl.format("bad print: o={} h={} l={} c={}; rv set to the {}-bar median",
                    "open", "high", "low", "close", pl.lit(BAD_PRINT_WINDOW))  # fmt: skip
    scored = scored.with_columns(reason.when(pl.col("action") == "imputed").then(bad).alias("reason"))
    rows = scored.filter(pl.col("action").ne_missing("dropped")).select(
        "date",
        pl.lit(symbol).alias("symbol"),
        "rv",
        *(empty.alias(c) for c in ("bv", "rq", "rs_pos", "rs_neg")),
        "ret",
        (pl.col("close") / pl.col("open")).log().alias("ret_oc"),
        pl.col("close").alias("close_price"),
        pl.lit(1, dtype=pl.Int64).alias("nobs"),
    )
    notes = pl.concat([off, scored.filter(pl.col("action").is_not_null()).select("date", "action", "reason")])
    return RangeRealized(rows, notes.sort("date"))
