"""Ingestion stage, pure part: windows, clipping, instrument metadata and what a partition did.

The sources are in :mod:`tasks.sources.registry`; the Prefect entry points that write a partition
to the warehouse are in ``flows/steps/ingest.py``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from core.errors import ConfigError
from core.symbols import validate_symbol
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


class InstrumentInfo(NamedTuple):
    """An instrument's metadata (the fields of ``warehouse.catalog.Instrument``, in its order)."""

    symbol: str
    asset_class: str
    calendar: str
    quote_currency: str | None = None
    default_source: str | None = None


_KNOWN: dict[str, InstrumentInfo] = {
    "BTC-USDT": InstrumentInfo("BTC-USDT", "crypto", "24x7", "USDT", "binance"),
    "BTC-USD": InstrumentInfo("BTC-USD", "crypto", "24x7", "USD", "yfinance"),
    "BTC-PERP": InstrumentInfo("BTC-PERP", "crypto", "24x7", "USD", "ftx"),
    "EURUSD": InstrumentInfo("EURUSD", "fx", "fx", "USD", "lean_fx"),
    "EURUSD=X": InstrumentInfo("EURUSD=X", "fx", "fx", "USD", "yfinance"),
    "SPY": InstrumentInfo("SPY", "equity_index", "XNYS", "USD", "lean_equity"),
    "^GSPC": InstrumentInfo("^GSPC", "equity_index", "XNYS", "USD", "yfinance"),
    "SPX": InstrumentInfo("SPX", "equity_index", "XNYS", "USD", "yahoo_csv"),
    "GC=F": InstrumentInfo("GC=F", "commodity", "24x7", "USD", "yfinance"),
}
_CCY = "USD|EUR|JPY|GBP|CHF|AUD|NZD|CAD|SEK|NOK"
_FX = re.compile(rf"^({_CCY})({_CCY})(=X)?$")
_CRYPTO = re.compile(r"^(BTC|ETH|SOL|XRP|ADA|DOGE|LTC|BNB)[-_]?(USD|USDT|USDC|EUR|PERP)?$")
_CALENDAR_OF = {"crypto": "24x7", "fx": "fx", "equity_index": "XNYS", "commodity": "24x7"}


def instrument_info(symbol: str, asset_class: str | None = None, source: str | None = None) -> InstrumentInfo:
    """Best-guess instrument metadata for ``symbol`` (explicit ``asset_class`` wins).

    Parameters
    ----------
    symbol : str
        The symbol.
    asset_class : str | None
        One of crypto, fx, equity_index, commodity; guessed from the symbol when omitted.
    source : str | None
        Default source recorded for the instrument.
    """
    validate_symbol(symbol)
    if asset_class is None and symbol in _KNOWN:
        return _KNOWN[symbol]
    if asset_class is None:
        if _CRYPTO.match(symbol.upper()):
            asset_class = "crypto"
        elif _FX.match(symbol.upper()):
            asset_class = "fx"
        else:
            asset_class = "equity_index"
    if asset_class not in _CALENDAR_OF:
        raise ConfigError(f"asset class {asset_class!r} is not one of {sorted(_CALENDAR_OF)}")
    return InstrumentInfo(symbol, asset_class, _CALENDAR_OF[asset_class], None, source)


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
