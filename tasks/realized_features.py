"""Daily features from imported realized measures (``realized_daily``), for symbols without bars.

Each imported row (symbol, local session date) becomes one ``features_daily`` row in
:data:`~core.schema.DAILY_FEATURES_SCHEMA`, marked ``interval = "realized"``:

- measured: ``rv`` (the target), ``bv``, ``rq``, ``rs_pos``/``rs_neg`` and ``ret_oc`` as imported
  (null where the file has none); ``jv = max(rv - bv, 0)`` when ``bv`` is there; ``close`` is the
  file's close price and ``n_returns`` its ``nobs``;
- ``ret_cc``: the file's close-to-close ``ret``; where that is absent, ``log(close_t / close_{t-1})``
  between consecutive sessions of the calendar (a gap leaves it null, as for bars);
- the HAR inputs ``rv_d``, ``rv_w``, ``rv_m`` exactly as for bars: means over the last 1, 5 and 22
  calendar sessions (at least 80% of them present);
- ``session_end``: the calendar's close of the session, so everything keyed on "known at the end of
  session t" works unchanged;
- bar-only columns (open, high, low, volume, bar counts, coverage, tripower, the BNS jump test) are
  null, not faked; ``low_coverage`` is false (the vendor's measure is taken as complete).

Rows on dates that are not sessions of the instrument's calendar (a special Saturday session in
Mumbai, say) are left out, and returned so the caller can report them: every model and the scoring
then agree on one session grid, and targets come from the calendar. Pure: frames in, frames out.
"""

from __future__ import annotations

import math
from datetime import date

import polars as pl

from core.errors import DataError
from core.schema import DAILY_FEATURES_SCHEMA, REALIZED_SCHEMA
from tasks.calendars import session_bounds, session_ordinals, sessions_between, validate_calendar
from tasks.features import HAR_MIN_FRACTION, HAR_MONTH, HAR_WEEK

#: ``features_daily.interval`` of rows built from imported realized measures.
REALIZED_INTERVAL = "realized"


def realized_daily_features(realized: pl.DataFrame, calendar: str) -> tuple[pl.DataFrame, list[date]]:
    """Daily feature rows of one symbol's imported realized measures.

    Parameters
    ----------
    realized : pl.DataFrame
        ``realized_daily`` rows of ONE symbol and one source (:data:`~core.schema.REALIZED_SCHEMA`;
        absent measure columns count as null).
    calendar : str
        The instrument's session calendar.

    Returns
    -------
    tuple[pl.DataFrame, list[date]]
        The rows in :data:`~core.schema.DAILY_FEATURES_SCHEMA`, sorted by date, and the dates left
        out because they are not sessions of ``calendar``.
    """
    calendar = validate_calendar(calendar)
    if realized.height == 0:
        return pl.DataFrame(schema=DAILY_FEATURES_SCHEMA), []
    symbols = realized["symbol"].unique().to_list()
    sources = realized["source"].unique().to_list()
    if len(symbols) != 1 or len(sources) != 1:
        raise DataError(f"realized rows must be one symbol from one source; got {symbols} from {sources}")
    absent = [c for c in REALIZED_SCHEMA if c not in realized.columns]
    missing = [pl.lit(None, dtype=REALIZED_SCHEMA[c]).alias(c) for c in absent]
    rows = realized.with_columns(missing).sort("date").rename({"date": "session_date"})
    first, last = rows["session_date"].min(), rows["session_date"].max()
    assert isinstance(first, date) and isinstance(last, date)
    grid = set(sessions_between(calendar, first, last))
    off = rows.filter(~pl.col("session_date").is_in(list(grid)))["session_date"].to_list()
    rows = rows.filter(pl.col("session_date").is_in(list(grid)))
    if rows.height == 0:
        return pl.DataFrame(schema=DAILY_FEATURES_SCHEMA), off
    daily = _with_calendar(rows, calendar)
    return _feature_columns(daily, str(sources[0])), off


def _with_calendar(rows: pl.DataFrame, calendar: str) -> pl.DataFrame:
    """Add each session's ordinal (``_ord``) and its close (``session_end``, UTC)."""
    sessions = rows["session_date"]
    bounds = session_bounds(calendar, sessions).select("session_date", pl.col("close").alias("session_end"))
    ordinals = pl.DataFrame({"session_date": sessions, "_ord": session_ordinals(calendar, sessions)})
    return rows.join(bounds, on="session_date", how="left").join(ordinals, on="session_date", how="left")


def _har(window: int) -> pl.Expr:
    """Mean RV over the last ``window`` calendar sessions ending at t, as for bars."""
    need = math.ceil(HAR_MIN_FRACTION * window)
    return pl.col("rv").rolling_mean_by("_ord", window_size=f"{window}i", min_samples=need)


def _feature_columns(daily: pl.DataFrame, source: str) -> pl.DataFrame:
    """The DAILY_FEATURES_SCHEMA columns of calendar-aligned realized rows (one symbol)."""
    consecutive = pl.col("_ord") == pl.col("_ord").shift(1) + 1
    from_close = pl.when(consecutive).then((pl.col("close_price") / pl.col("close_price").shift(1)).log())
    out = daily.sort("_ord").with_columns(
        pl.lit(REALIZED_INTERVAL).alias("interval"),
        pl.lit(f"realized:{source}").alias("sampling_interval"),
        pl.col("close_price").alias("close"),
        pl.coalesce(pl.col("ret"), from_close).alias("ret_cc"),
        pl.col("nobs").alias("n_returns"),
        pl.lit(False).alias("low_coverage"),
        pl.when(pl.col("bv").is_not_null())
        .then(pl.max_horizontal(pl.col("rv") - pl.col("bv"), 0.0))
        .alias("jv"),
        pl.col("rv").alias("rv_d"),
        _har(HAR_WEEK).alias("rv_w"),
        _har(HAR_MONTH).alias("rv_m"),
    )
    missing = [c for c in DAILY_FEATURES_SCHEMA if c not in out.columns]
    out = out.with_columns([pl.lit(None, dtype=DAILY_FEATURES_SCHEMA[c]).alias(c) for c in missing])
    return out.select([pl.col(c).cast(t) for c, t in DAILY_FEATURES_SCHEMA.items()])
