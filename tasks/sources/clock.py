"""Per-week clock detection for vendor files whose stated time zone is not always the one they use.

HistData files follow New York local time, except in the weeks when US and European daylight saving
disagree (mid-March, late October to early November): there, the 2021 files run one hour behind New
York (the weekly open and the SPX CFD's daily halt move an hour early). DESIGN.md: detect the clock per
week from the data; never trust a vendor's stated zone alone.

:func:`reclock_weeks` finds each trading week's open (first bar after the weekend) and close (last bar
before it), compares them with the file's usual open and close, and returns the shift that puts a
week back on New York time, for weeks inside a DST-disagreement window only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

NEW_YORK = ZoneInfo("America/New_York")
EUROPE = ZoneInfo("Europe/Berlin")
#: A pause between bars this long separates two trading weeks.
WEEKEND = timedelta(hours=24)


@dataclass(frozen=True)
class Reclock:
    """Hours to add to each naive stamp, and what was changed (for the ingest summary)."""

    shift_hours: pl.Series
    weeks: list[tuple[date, int, int]]  # (first session day, hours added, bars moved)

    def note(self) -> str | None:
        """One line for the ingest summary, or None when nothing moved."""
        if not self.weeks:
            return None
        bars = sum(n for _, _, n in self.weeks)
        which = ", ".join(f"{d} ({h:+d} h)" for d, h, _ in self.weeks)
        return (
            f"re-clocked {len(self.weeks)} week(s), {bars} bars, to New York time: the file's clock ran off "
            f"New York in weeks where US and European DST disagree (weekly open/close moved): {which}"
        )


def dst_disagree(day: date) -> bool:
    """Whether New York and Central Europe differ in daylight saving at noon UTC of ``day``."""
    moment = datetime.combine(day, time(12), tzinfo=ZoneInfo("UTC"))
    return bool(moment.astimezone(NEW_YORK).dst()) != bool(moment.astimezone(EUROPE).dst())


def _minutes(ts: pl.Expr) -> pl.Expr:
    return ts.dt.hour().cast(pl.Int32) * 60 + ts.dt.minute().cast(pl.Int32)


def _offset(observed: int | None, usual: int | None) -> int | None:
    """Whole hours by which ``observed`` (minutes of day) differs from ``usual``, if 1 or 2 hours."""
    if observed is None or usual is None:
        return None
    diff = (observed - usual + 720) % 1440 - 720
    hours, rest = divmod(diff, 60)
    return hours if rest == 0 and hours != 0 and abs(hours) <= 2 else (0 if diff == 0 else None)


def week_boundaries(naive: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per trading week: first and last bar, their minute of day, which ends are real boundaries and
    whether the week lies where US and European DST disagree; and each row's week."""
    frame = pl.DataFrame({"ts": naive}).with_row_index("row").sort("ts")
    gap = (pl.col("ts") - pl.col("ts").shift(1)) >= WEEKEND
    frame = frame.with_columns(gap.fill_null(False).cum_sum().alias("week"))
    last_week = frame["week"].max()
    return (
        frame.group_by("week", maintain_order=True)
        .agg(pl.col("ts").first().alias("first"), pl.col("ts").last().alias("last"), pl.len().alias("bars"))
        .with_columns(
            _minutes(pl.col("first")).alias("open_min"),
            _minutes(pl.col("last")).alias("close_min"),
            (pl.col("week") > 0).alias("has_open"),  # the file may start mid-week
            (pl.col("week") < last_week).alias("has_close"),  # ... and end mid-week
            pl.struct("first", "last")
            .map_elements(
                lambda w: (
                    dst_disagree(w["first"].date() + timedelta(days=1)) or dst_disagree(w["last"].date())
                ),
                return_dtype=pl.Boolean,
            )
            .alias("disagree"),
        )
    ), frame


def _usual(weeks: pl.DataFrame, column: str, flag: str) -> int | None:
    """The most common open (or close) minute among weeks whose clock nobody doubts."""
    values = weeks.filter(pl.col(flag) & ~pl.col("disagree"))[column]
    return int(values.mode().sort()[0]) if values.len() else None


def reclock_weeks(naive: pl.Series) -> Reclock:
    """The shift (hours) that puts each bar's week back on the file's usual weekly open and close.

    A week is moved only when it lies where US and European DST disagree, and its open (or, lacking
    one, its close) is off the usual time of the file's other weeks by a whole 1-2 hours, and its
    close does not contradict that. ``naive`` need not be sorted; the result is in its order.
    """
    weeks, rows = week_boundaries(naive)
    usual_open, usual_close = _usual(weeks, "open_min", "has_open"), _usual(weeks, "close_min", "has_close")
    moved: dict[int, int] = {}
    log: list[tuple[date, int, int]] = []
    for w in weeks.iter_rows(named=True):
        by_open = _offset(w["open_min"], usual_open) if w["has_open"] else None
        by_close = _offset(w["close_min"], usual_close) if w["has_close"] else None
        found = {o for o in (by_open, by_close) if o is not None}
        if len(found) != 1 or 0 in found:
            continue
        offset = found.pop()
        if not w["disagree"]:
            continue
        moved[w["week"]] = -offset
        log.append(((w["first"] + timedelta(hours=7)).date(), -offset, int(w["bars"])))
    shift = rows.select("row", pl.col("week").replace_strict(moved, default=0).alias("shift")).sort("row")
    return Reclock(shift["shift"].cast(pl.Int32), log)
