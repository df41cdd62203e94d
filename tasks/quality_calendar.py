"""Session calendars for the gap and missing-session checks: which time counts as trading time.

Weekends, overnight closes and holidays are not gaps: the instrument does not trade then.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from tasks.calendars import CRYPTO, session_bounds, sessions_between


def in_session_gaps(gaps: pl.DataFrame, windows: pl.DataFrame | None, step_s: int) -> pl.DataFrame:
    """Keep the part of each gap that lies inside a session; drop gaps with no missing in-session bar.

    Weekends, overnight closes and holidays are not gaps: the instrument does not trade then.

    Parameters
    ----------
    gaps : pl.DataFrame
        :func:`warehouse.quality.find_gaps` output (``gap_start`` is the last bar before the gap).
    windows : pl.DataFrame | None
        ``[open_utc, close_utc]`` of every session around the partition; ``None`` for a calendar
        that trades all day (``24x7``), whose gaps all count.
    step_s : int
        The bar interval in seconds.

    Returns
    -------
    pl.DataFrame
        The same columns; ``missing_bars`` counts only bars missing inside sessions.
    """
    if windows is None or gaps.height == 0:
        return gaps
    # The missing bars are the slots gap_start + k * step (k >= 1) before gap_end; count those that
    # start inside a session: k from ceil((max(slot 1, open) - gap_start) / step) to
    # ceil((min(gap_end, close) - gap_start) / step) - 1.
    start_s = pl.col("gap_start").dt.epoch("s")
    lo_s = pl.max_horizontal(pl.col("gap_start").dt.epoch("s") + step_s, pl.col("open_utc").dt.epoch("s"))
    hi_s = pl.min_horizontal(pl.col("gap_end").dt.epoch("s"), pl.col("close_utc").dt.epoch("s"))
    first = -((start_s - lo_s) // step_s)  # ceil division
    after_last = -((start_s - hi_s) // step_s)
    counted = (
        gaps.with_row_index("_gap")
        .join(windows.select("open_utc", "close_utc"), how="cross")
        .with_columns((after_last - first).clip(lower_bound=0).alias("_slots"))
        .group_by("_gap", maintain_order=True)
        .agg(pl.col("_slots").sum())
    )
    kept = gaps.with_row_index("_gap").join(counted, on="_gap")
    kept = kept.with_columns(pl.col("_slots").cast(gaps["missing_bars"].dtype).alias("missing_bars"))
    return kept.filter(pl.col("missing_bars") > 0).drop("_gap", "_slots")


def session_windows(calendar: str, start: datetime, end: datetime) -> pl.DataFrame | None:
    """``[open_utc, close_utc]`` of every session of ``calendar`` that overlaps ``[start, end)``.

    ``None`` for the ``24x7`` calendar (it never closes).
    """
    if calendar == CRYPTO:
        return None
    days = sessions_between(calendar, (start - timedelta(days=4)).date(), (end + timedelta(days=4)).date())
    if not days:
        return pl.DataFrame(
            schema={"open_utc": pl.Datetime("us", "UTC"), "close_utc": pl.Datetime("us", "UTC")}
        )
    return (
        session_bounds(calendar, days)
        .filter(pl.col("open").is_not_null())
        .select(pl.col("open").alias("open_utc"), pl.col("close").alias("close_utc"))
    )


def expected_session_windows(
    calendar: str, start: datetime, end: datetime
) -> tuple[list[date], pl.DataFrame | None]:
    """Sessions of ``calendar`` lying wholly inside ``[start, end)`` and their UTC windows.

    Returns
    -------
    tuple[list[date], pl.DataFrame | None]
        The session dates, and ``[session_date, open_utc, close_utc]`` windows (``None`` for the
        ``24x7`` calendar, whose session is the UTC day).
    """
    candidates = sessions_between(calendar, start.date(), end.date())
    if not candidates:
        return [], None
    bounds = session_bounds(calendar, candidates).filter(
        pl.col("open").is_not_null() & (pl.col("open") >= start) & (pl.col("close") <= end)
    )
    sessions = bounds["session_date"].to_list()
    if calendar == CRYPTO:
        return sessions, None
    return sessions, bounds.select(
        "session_date", pl.col("open").alias("open_utc"), pl.col("close").alias("close_utc")
    )
