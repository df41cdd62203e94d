"""Row-level checks every source's bars pass before they reach the warehouse.

Nothing is dropped silently: a row that fails a check moves to the quarantine frame with a reason
and its source location, and the rest carry on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from core.schema import BAR_SCHEMA, QUARANTINE_SCHEMA

#: Prices above this are treated as corrupt (1e308 and friends), not as a very expensive asset.
MAX_PRICE = 1e9
#: Earliest and latest plausible bar times.
MIN_TS = datetime(1970, 1, 2, tzinfo=UTC)


@dataclass
class CheckedBars:
    """Bars that passed, rows quarantined with a reason, and notes for the user."""

    bars: pl.DataFrame
    quarantine: pl.DataFrame
    notes: list[str] = field(default_factory=list)


def _max_ts() -> datetime:
    now = datetime.now(UTC)
    return now.replace(year=now.year + 1)


def _reason_expr() -> pl.Expr:
    prices = ["open", "high", "low", "close"]
    finite = pl.all_horizontal([pl.col(c).is_finite() for c in prices])
    checks: list[tuple[pl.Expr, str]] = [
        (pl.any_horizontal([pl.col(c).is_null() for c in prices]), "missing price"),
        (~finite, "NaN or infinite price"),
        (pl.any_horizontal([pl.col(c) <= 0 for c in prices]), "zero or negative price"),
        (
            pl.any_horizontal([pl.col(c) > MAX_PRICE for c in prices]),
            f"price above sanity limit {MAX_PRICE:g}",
        ),
        (pl.col("high") < pl.col("low"), "high < low"),
        (
            (pl.col("open") > pl.col("high"))
            | (pl.col("open") < pl.col("low"))
            | (pl.col("close") > pl.col("high"))
            | (pl.col("close") < pl.col("low")),
            "open or close outside [low, high]",
        ),
        (pl.col("volume").is_not_null() & ~pl.col("volume").is_finite(), "NaN or infinite volume"),
        (pl.col("volume") < 0, "negative volume"),
        (pl.col("ts") < pl.lit(MIN_TS), "timestamp before 1970"),
        (pl.col("ts") > pl.lit(_max_ts()), "timestamp more than a year in the future"),
    ]
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for cond, reason in reversed(checks):
        expr = pl.when(cond.fill_null(False)).then(pl.lit(reason)).otherwise(expr)
    return expr


def check_bars(frame: pl.DataFrame) -> CheckedBars:
    """Split bars into good rows and quarantined rows; resolve duplicates and order.

    Parameters
    ----------
    frame : pl.DataFrame
        Bars in :data:`~core.schema.BAR_SCHEMA` plus ``location`` (file:line or request) and
        ``raw`` (the source text) columns.

    Returns
    -------
    CheckedBars
        ``bars`` in BAR_SCHEMA sorted by time with unique timestamps (a repeated timestamp keeps its
        last row; earlier ones are quarantined naming the row that superseded them), and
        ``quarantine`` in :data:`~core.schema.QUARANTINE_SCHEMA`.
    """
    notes: list[str] = []
    tagged = frame.with_columns(_reason_expr().alias("reason"))
    bad = tagged.filter(pl.col("reason").is_not_null())
    good = tagged.filter(pl.col("reason").is_null()).drop("reason")

    diffs = good["ts"].diff().drop_nulls()
    out_of_order = int((diffs.dt.total_microseconds() < 0).sum()) if diffs.len() else 0
    if out_of_order:
        notes.append(f"{out_of_order} rows were out of time order and have been sorted")

    key = ["symbol", "interval", "ts"]
    good = good.with_columns(
        pl.col("location").last().over(key).alias("_kept_at"),
        (pl.int_range(pl.len()).over(key) == pl.len().over(key) - 1).alias("_is_last"),
    )
    superseded = good.filter(~pl.col("_is_last")).with_columns(
        ("duplicate timestamp, superseded by " + pl.col("_kept_at")).alias("reason")
    )
    if superseded.height:
        notes.append(f"{superseded.height} duplicate timestamps: the last row of each was kept")
    good = good.filter(pl.col("_is_last")).sort("ts")

    quarantine = pl.concat(
        [
            bad.select(QUARANTINE_SCHEMA.keys()),
            superseded.select(QUARANTINE_SCHEMA.keys()),
        ]
    ).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    return CheckedBars(bars=good.select(BAR_SCHEMA.keys()), quarantine=quarantine, notes=notes)
