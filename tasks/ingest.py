"""Ingestion stage: plan partitions, parse a source, write one partition per task.

Pure planning functions come first; the Prefect ``@task`` entry points are at the end. Each entry
point takes plain partition keys plus a content checksum, so its cache key is exactly
(source, symbol, interval, window, content, warehouse identity) and a changed input recomputes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task

from core.errors import ConfigError
from core.hashing import content_hash
from core.schema import QUARANTINE_SCHEMA
from core.symbols import validate_symbol
from flows.orchestration import TASK_DEFAULTS
from tasks.sources.files import ParseResult, read_bars_file
from tasks.sources.layouts import LAYOUTS, Layout, generic_from_params
from warehouse.bars import upsert_bars
from warehouse.catalog import (
    Instrument,
    LogEntry,
    get_instrument,
    record_ingest,
    upsert_instrument,
    write_quarantine,
)
from warehouse.db import writer

_INTERVAL_DELTA = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
_KNOWN: dict[str, Instrument] = {
    "BTC-USDT": Instrument("BTC-USDT", "crypto", "24x7", "USDT", "binance"),
    "BTC-USD": Instrument("BTC-USD", "crypto", "24x7", "USD", "yfinance"),
    "BTC-PERP": Instrument("BTC-PERP", "crypto", "24x7", "USD", "ftx"),
    "EURUSD": Instrument("EURUSD", "fx", "fx", "USD", "lean_fx"),
    "EURUSD=X": Instrument("EURUSD=X", "fx", "fx", "USD", "yfinance"),
    "SPY": Instrument("SPY", "equity_index", "XNYS", "USD", "lean_equity"),
    "^GSPC": Instrument("^GSPC", "equity_index", "XNYS", "USD", "yfinance"),
    "SPX": Instrument("SPX", "equity_index", "XNYS", "USD", "yahoo_csv"),
    "GC=F": Instrument("GC=F", "commodity", "24x7", "USD", "yfinance"),
}
_CCY = "USD|EUR|JPY|GBP|CHF|AUD|NZD|CAD|SEK|NOK"
_FX = re.compile(rf"^({_CCY})({_CCY})(=X)?$")
_CRYPTO = re.compile(r"^(BTC|ETH|SOL|XRP|ADA|DOGE|LTC|BNB)[-_]?(USD|USDT|USDC|EUR|PERP)?$")
_CALENDAR_OF = {"crypto": "24x7", "fx": "fx", "equity_index": "XNYS", "commodity": "24x7"}


def default_instrument(symbol: str, asset_class: str | None = None, source: str | None = None) -> Instrument:
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
    return Instrument(symbol, asset_class, _CALENDAR_OF[asset_class], None, source)


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


def write_partition(
    warehouse_path: str | Path,
    bars: pl.DataFrame,
    quarantine: pl.DataFrame,
    *,
    source: str,
    symbol: str,
    interval: str,
    location: str,
    checksum: str,
    run_id: str,
    window: tuple[datetime, datetime] | None = None,
    instrument: Instrument | None = None,
    notes: list[str] | None = None,
) -> PartitionResult:
    """Write one partition's bars and quarantined rows and log it, under the warehouse write lock.

    Parameters
    ----------
    warehouse_path : str | Path
        DuckDB file.
    bars, quarantine : pl.DataFrame
        Parsed bars (one symbol and interval) and rows set aside.
    source, symbol, interval, location, checksum, run_id : str
        Partition keys, where the data came from, its content hash and this run's id.
    window : tuple[datetime, datetime] | None
        The partition's window; defaults to the span of ``bars``.
    instrument : Instrument | None
        Registered if the symbol is not known yet.
    notes : list[str] | None
        Parser notes carried into the result.
    """
    started = datetime.now(UTC)
    step = _INTERVAL_DELTA.get(interval, timedelta(0))
    if window is None:
        if bars.height:
            window = (bars["ts"].min(), bars["ts"].max() + step)  # type: ignore[operator,assignment]
        else:
            window = (started, started)
    assert window is not None
    entry = LogEntry(
        source, symbol, interval, window[0], window[1], run_id, started, location=location, checksum=checksum
    )
    with writer(warehouse_path) as con:
        if get_instrument(con, symbol) is None:
            upsert_instrument(con, instrument or default_instrument(symbol, source=source))
        record_ingest(con, entry)
        try:
            stats = upsert_bars(con, bars, run_id)
            n_quarantined = write_quarantine(con, quarantine, source=source, symbol=symbol, run_id=run_id)
        except BaseException as exc:  # Ctrl-C too: the write was rolled back, so the log says so
            why = (
                "interrupted (Ctrl-C); the partition's write was rolled back"
                if isinstance(exc, KeyboardInterrupt)
                else str(exc)
            )
            entry.status, entry.error, entry.finished_at = "failed", why, datetime.now(UTC)
            record_ingest(con, entry)
            raise
        entry.status, entry.finished_at = "success", datetime.now(UTC)
        entry.rows, entry.rows_new, entry.rows_updated = bars.height, stats.new, stats.updated
        entry.rows_unchanged, entry.rows_quarantined = stats.unchanged, n_quarantined
        record_ingest(con, entry)
    return PartitionResult(
        source=source,
        symbol=symbol,
        interval=interval,
        location=location,
        status="success",
        rows=bars.height,
        new=stats.new,
        updated=stats.updated,
        unchanged=stats.unchanged,
        quarantined=n_quarantined,
        window_start=window[0].isoformat(),
        window_end=window[1].isoformat(),
        checksum=checksum,
        notes=list(notes or []),
    )


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


def check_deployment_path(path: str | Path) -> None:
    """In a deployment run, refuse a file outside the configured data roots (``VOLRISK_DATA_ROOTS``).

    A deployment's parameters come from the UI or an API caller, so a path such as ``../../etc/passwd``
    must never be read there, whichever flow passed it on. Local runs (CLI, tests) are not restricted.
    """
    from prefect.runtime import deployment

    from tasks.config import get_settings

    if deployment.id is None:
        return
    resolved = Path(path).expanduser().resolve()
    roots = [r.expanduser().resolve() for r in get_settings().data_roots]
    if not any(resolved.is_relative_to(r) for r in roots):
        raise ConfigError(
            f"file {str(path)!r} is outside the configured data roots {[str(r) for r in roots]}; "
            "a deployment may only read files under them (set VOLRISK_DATA_ROOTS on the worker to allow "
            "another folder)"
        )


# --------------------------------------------------------------------------- Prefect entry points

_INGEST_TASK = {**TASK_DEFAULTS, "cache_policy": TASK_DEFAULTS["cache_policy"] - "run_id"}


@task(name="ingest-file", task_run_name="ingest-file-{symbol}-{file_name}", **_INGEST_TASK)
def ingest_file_task(
    warehouse_path: str,
    warehouse_id: str,
    path: str,
    file_name: str,
    symbol: str,
    fmt: str | None,
    interval: str | None,
    checksum: str,
    run_id: str,
    start: str | None = None,
    end: str | None = None,
    generic: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Parse one vendor file and write it as one partition.

    Cached on (warehouse id, path, symbol, format, interval, file checksum, range, generic layout);
    ``run_id`` is excluded from the key. ``fmt="generic"`` reads any CSV or Parquet file described by
    ``generic``: the keyword arguments of :func:`tasks.sources.layouts.generic_layout`.
    """
    check_deployment_path(path)
    layout: str | Layout | None = fmt
    if fmt == "generic":
        layout = generic_from_params(generic)
    parsed = parse_file(
        path,
        symbol=symbol,
        fmt=layout,
        interval=interval,
        start=datetime.fromisoformat(start) if start else None,
        end=datetime.fromisoformat(end) if end else None,
    )
    layout = LAYOUTS.get(parsed.layout)
    source = layout.name if layout else parsed.layout
    return write_partition(
        warehouse_path,
        parsed.bars,
        parsed.quarantine,
        source=source,
        symbol=symbol,
        interval=parsed.interval,
        location=path,
        checksum=checksum,
        run_id=run_id,
        notes=parsed.notes,
    ).as_dict()


@task(name="ingest-synthetic", task_run_name="ingest-synthetic-{symbol}-{start}", **_INGEST_TASK)
def ingest_synthetic_task(
    warehouse_path: str,
    warehouse_id: str,
    symbol: str,
    start: str,
    end: str,
    interval: str,
    seed: int,
    run_id: str,
) -> dict[str, Any]:
    """Generate one window of seeded synthetic bars and write it (same seed, same bars)."""
    from tasks.sources.synthetic import generate_bars

    lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
    synth = generate_bars(symbol, lo, hi, interval, seed=seed)
    bars = clip_to_range(synth.bars, lo, hi)
    return write_partition(
        warehouse_path,
        bars,
        pl.DataFrame(schema=QUARANTINE_SCHEMA),
        source="synthetic",
        symbol=symbol,
        interval=interval,
        location=f"synthetic(seed={seed})",
        run_id=run_id,
        checksum=content_hash("synthetic", symbol, start, end, interval, seed),
        window=(lo, hi),
        instrument=Instrument(symbol, "crypto", "24x7", "USD", "synthetic"),
    ).as_dict()


@task(name="ingest-yfinance", task_run_name="ingest-yfinance-{symbol}-{interval}-{start}", **_INGEST_TASK)
def ingest_yfinance_task(
    warehouse_path: str,
    warehouse_id: str,
    symbol: str,
    start: str,
    end: str,
    interval: str,
    cache_bucket: str,
    run_id: str,
) -> dict[str, Any]:
    """Fetch one Yahoo request window and write it as one partition.

    A window that ended over a day ago is closed: its ``cache_bucket`` is ``"closed"`` and a rerun
    is a cache hit. An open window gets a unique bucket, so it is fetched again on every run.
    Transient failures (network, HTTP 429/5xx) raise ``TransientError`` and the task retries.
    """
    from tasks.sources.yfinance_source import fetch_yfinance

    lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
    fetched = fetch_yfinance(symbol, lo, hi, interval, attempts=1)
    return write_partition(
        warehouse_path,
        fetched.bars,
        fetched.quarantine,
        source="yfinance",
        symbol=symbol,
        interval=interval,
        location=f"yfinance:{symbol}:{interval}:{start}..{end}",
        run_id=run_id,
        checksum=fetched.checksum,
        window=(lo, hi),
        notes=fetched.notes,
    ).as_dict()


@task(name="ingest-realized", task_run_name="ingest-realized-{file_name}", **_INGEST_TASK)
def ingest_realized_task(
    warehouse_path: str,
    warehouse_id: str,
    path: str,
    file_name: str,
    checksum: str,
    run_id: str,
) -> dict[str, Any]:
    """Import one realized-measure file (Oxford-Man layout or ``date,symbol,rv``) into realized_daily."""
    from tasks.sources.realized import read_realized_file
    from warehouse.realized import upsert_realized

    check_deployment_path(path)
    parsed = read_realized_file(path)
    symbols = sorted(set(parsed.realized["symbol"].to_list()))
    with writer(warehouse_path) as con:
        stats = upsert_realized(con, parsed.realized, run_id)
        n_quarantined = write_quarantine(
            con, parsed.quarantine, source="realized", symbol=None, run_id=run_id
        )
    return PartitionResult(
        source="realized",
        symbol=",".join(symbols) or "-",
        interval="1d",
        location=path,
        status="success",
        rows=parsed.realized.height,
        new=stats.new,
        updated=stats.updated,
        unchanged=stats.unchanged,
        quarantined=n_quarantined,
        checksum=checksum,
        notes=parsed.notes,
    ).as_dict()
