"""Ingestion stage, pure part: windows, clipping and what a partition did.

The sources are in :mod:`tasks.sources.registry`; instrument metadata is in :mod:`tasks.instruments`;
the Prefect entry points that write a partition to the warehouse are in ``flows/steps/ingest.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.errors import ConfigError
from core.symbols import SYMBOL_PATTERN
from tasks.sources.files import ParseResult, read_bars_file
from tasks.sources.layouts import Layout

_INTERVAL_DELTA = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}


def check_range(start: date | datetime | None, end: date | datetime | None) -> None:
    """Raise :class:`ConfigError` when ``start`` is after ``end``."""
    if start is not None and end is not None and _as_utc(start) > _as_utc(end):
        raise ConfigError(f"start {start} is after end {end}; expected start <= end")


def _as_utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def plan_windows(
    start: date | datetime, end: date | datetime, max_days: int
) -> list[tuple[datetime, datetime]]:
    """Split [start, end) into consecutive UTC windows of at most ``max_days`` days.

    Parameters
    ----------
    start, end : date | datetime
        The half-open range (dates mean midnight UTC).
    max_days : int
        Longest window, in days.
    """
    check_range(start, end)
    if max_days <= 0:
        raise ConfigError(f"max_days must be positive, got {max_days}")
    lo, hi = _as_utc(start), _as_utc(end)
    windows: list[tuple[datetime, datetime]] = []
    while lo < hi:
        nxt = min(lo + timedelta(days=max_days), hi)
        windows.append((lo, nxt))
        lo = nxt
    return windows


def month_windows(start: date | datetime, end: date | datetime) -> list[tuple[datetime, datetime]]:
    """Split [start, end) at calendar-month boundaries (UTC)."""
    check_range(start, end)
    lo, hi = _as_utc(start), _as_utc(end)
    out: list[tuple[datetime, datetime]] = []
    while lo < hi:
        first_next = (lo.replace(day=1) + timedelta(days=32)).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        nxt = min(first_next, hi)
        out.append((lo, nxt))
        lo = nxt
    return out


def clip_to_range(
    frame: pl.DataFrame, start: date | datetime | None, end: date | datetime | None
) -> pl.DataFrame:
    """Keep bars with ``start <= ts < end`` (either bound optional)."""
    if start is not None:
        frame = frame.filter(pl.col("ts") >= _as_utc(start))
    if end is not None:
        frame = frame.filter(pl.col("ts") < _as_utc(end))
    return frame


@dataclass
class PartitionResult:
    """What one ingest partition did (a plain dict crosses the Prefect boundary)."""

    source: str
    symbol: str
    interval: str
    location: str
    status: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    window_start: str | None = None
    window_end: str | None = None
    checksum: str | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bars_window(bars: pl.DataFrame, interval: str, now: datetime) -> tuple[datetime, datetime]:
    """The span a partition's bars cover: first bar start to last bar end (``(now, now)`` if none)."""
    if not bars.height:
        return (now, now)
    step = _INTERVAL_DELTA.get(interval, timedelta(0))
    return (bars["ts"].min(), bars["ts"].max() + step)  # type: ignore[operator,return-value]


def parse_file(
    path: str | Path,
    *,
    symbol: str,
    fmt: str | Layout | None,
    interval: str | None,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
) -> ParseResult:
    """Read a vendor file and clip it to [start, end)."""
    result = read_bars_file(path, symbol=symbol, fmt=fmt, interval=interval)
    if start is not None or end is not None:
        before = result.bars.height
        result.bars = clip_to_range(result.bars, start, end)
        if result.bars.height < before:
            result.notes.append(f"{before - result.bars.height} rows outside [{start}, {end}) skipped")
    return result


def realized_file_symbols(path: str | Path) -> list[str]:
    """The valid symbols of a realized-measure file's ``symbol``/``Symbol`` column, sorted.

    A cheap look before the import (to check every symbol is a known instrument); an unreadable file
    gives ``[]`` here and its one-line error from the import itself.
    """
    try:
        header = pl.read_csv(path, n_rows=0, infer_schema=False).columns
        column = next(c for c in header if c.strip().lower() == "symbol")
        values = pl.read_csv(path, columns=[column], infer_schema=False)[column]
    except (OSError, StopIteration, pl.exceptions.PolarsError):
        return []
    return sorted({v for v in values.drop_nulls().to_list() if SYMBOL_PATTERN.fullmatch(v)})
