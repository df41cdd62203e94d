"""Ingest doors: one Prefect task per source, each loading one partition and writing it.

Each entry point takes plain partition keys plus a content checksum, so its cache key is exactly
(source, symbol, interval, window, content, warehouse identity) and a changed input recomputes.
The task of source ``name`` is ``ingest-<name>`` (:func:`door`).
"""

from __future__ import annotations

from dataclasses import astuple
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from prefect import Task, task

from core.errors import ConfigError
from flows.orchestration import TASK_DEFAULTS
from tasks.config import get_settings
from tasks.ingest import PartitionResult, bars_window
from tasks.instruments import InstrumentInfo, ingest_registration, resolve_instrument
from tasks.sources.base import Loaded
from tasks.sources.registry import SOURCES
from warehouse.bars import upsert_bars
from warehouse.catalog import (
    Instrument,
    LogEntry,
    get_instrument,
    record_ingest,
    upsert_instrument,
    write_quarantine,
)
from warehouse.realized import upsert_realized
from warehouse.resource import Warehouse


def default_instrument(symbol: str, asset_class: str | None = None, source: str | None = None) -> Instrument:
    """The known metadata of ``symbol`` (see :func:`tasks.instruments.resolve_instrument`).

    Raises
    ------
    UnknownInstrumentError
        ``symbol`` is not known and no ``asset_class`` is given: nothing is guessed.
    """
    return Instrument(*resolve_instrument(symbol, asset_class=asset_class, source=source))


def register_instruments(
    con: duckdb.DuckDBPyConnection,
    symbols: list[str],
    asset_class: str | None = None,
    calendar: str | None = None,
    source: str | None = None,
) -> list[str]:
    """Register every unregistered symbol of an ingest run; return the symbols registered.

    A stored registration is kept (options that conflict with it are refused, see
    :func:`tasks.instruments.ingest_registration`); every symbol is checked before any is written.
    """
    new: list[Instrument] = []
    for symbol in symbols:
        stored = get_instrument(con, symbol)
        info = ingest_registration(
            symbol, InstrumentInfo(*astuple(stored)) if stored else None, asset_class, calendar, source
        )
        if info is not None:
            new.append(Instrument(*info))
    for inst in new:
        upsert_instrument(con, inst)
    return [inst.symbol for inst in new]


def check_deployment_path(path: str | Path) -> None:
    """In a deployment run, refuse a file outside the configured data roots (``VOLRISK_DATA_ROOTS``).

    A deployment's parameters come from the UI or an API caller, so a path such as ``../../etc/passwd``
    must never be read there, whichever flow passed it on. Local runs (CLI, tests) are not restricted.
    """
    from prefect.runtime import deployment

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


def _failed(why: BaseException) -> str:
    if isinstance(why, KeyboardInterrupt):
        return "interrupted (Ctrl-C); the partition's write was rolled back"
    return str(why)


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
    lo, hi = window if window is not None else bars_window(bars, interval, started)
    entry = LogEntry(source, symbol, interval, lo, hi, run_id, started, location=location, checksum=checksum)
    with Warehouse.at(warehouse_path).writing() as con:
        if get_instrument(con, symbol) is None:  # a registered instrument is never overwritten
            upsert_instrument(con, instrument or default_instrument(symbol, source=source))
        record_ingest(con, entry)
        try:
            stats = upsert_bars(con, bars, run_id)
            n_quarantined = write_quarantine(con, quarantine, source=source, symbol=symbol, run_id=run_id)
        except BaseException as exc:  # Ctrl-C too: the write was rolled back, so the log says so
            entry.status, entry.error, entry.finished_at = "failed", _failed(exc), datetime.now(UTC)
            record_ingest(con, entry)
            raise
        entry.status, entry.finished_at = "success", datetime.now(UTC)
        entry.rows, entry.rows_new, entry.rows_updated = bars.height, stats.new, stats.updated
        entry.rows_unchanged, entry.rows_quarantined = stats.unchanged, n_quarantined
        record_ingest(con, entry)
    return PartitionResult(
        source=source, symbol=symbol, interval=interval, location=location, status="success",
        rows=bars.height, new=stats.new, updated=stats.updated, unchanged=stats.unchanged,
        quarantined=n_quarantined, window_start=lo.isoformat(), window_end=hi.isoformat(),
        checksum=checksum, notes=list(notes or []),
    )  # fmt: skip


def _write_loaded(
    warehouse_path: str, loaded: Loaded, *, symbol: str, location: str, checksum: str, run_id: str, **kw: Any
) -> dict[str, Any]:
    return write_partition(
        warehouse_path,
        loaded.frame,
        loaded.quarantine,
        source=loaded.source,
        symbol=symbol,
        interval=loaded.interval,
        location=location,
        checksum=checksum,
        run_id=run_id,
        notes=loaded.notes,
        **kw,
    ).as_dict()


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
    params = {"path": path, "symbol": symbol, "fmt": fmt, "interval": interval, "start": start, "end": end}
    loaded = SOURCES["file"].load({**params, "generic": generic})
    return _write_loaded(
        warehouse_path, loaded, symbol=symbol, location=path, checksum=checksum, run_id=run_id
    )


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
    params = {"symbol": symbol, "start": start, "end": end, "interval": interval, "seed": seed}
    loaded = SOURCES["synthetic"].load(params)
    assert loaded.checksum is not None
    return _write_loaded(
        warehouse_path,
        loaded,
        symbol=symbol,
        location=f"synthetic(seed={seed})",
        checksum=loaded.checksum,
        run_id=run_id,
        window=(datetime.fromisoformat(start), datetime.fromisoformat(end)),
        instrument=Instrument(symbol, "crypto", "24x7", "USD", "synthetic"),
    )


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
    loaded = SOURCES["yfinance"].load({"symbol": symbol, "start": start, "end": end, "interval": interval})
    assert loaded.checksum is not None
    return _write_loaded(
        warehouse_path,
        loaded,
        symbol=symbol,
        location=f"yfinance:{symbol}:{interval}:{start}..{end}",
        checksum=loaded.checksum,
        run_id=run_id,
        window=(datetime.fromisoformat(start), datetime.fromisoformat(end)),
    )


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
    check_deployment_path(path)
    loaded = SOURCES["realized"].load({"path": path})
    symbols = sorted(set(loaded.frame["symbol"].to_list()))
    with Warehouse.at(warehouse_path).writing() as con:
        register_instruments(con, symbols, source="realized")  # planned runs registered them already
        stats = upsert_realized(con, loaded.frame, run_id)
        n_quarantined = write_quarantine(
            con, loaded.quarantine, source="realized", symbol=None, run_id=run_id
        )
    return PartitionResult(
        source="realized",
        symbol=",".join(symbols) or "-",
        interval="1d",
        location=path,
        status="success",
        rows=loaded.frame.height,
        new=stats.new,
        updated=stats.updated,
        unchanged=stats.unchanged,
        quarantined=n_quarantined,
        checksum=checksum,
        notes=loaded.notes,
    ).as_dict()


def door(source: str) -> Task[..., dict[str, Any]]:
    """The Prefect task that ingests one partition of ``source``: ``ingest_<source>_task`` here.

    Looked up when called, so a test that replaces a door on this module is honoured.
    """
    found: Task[..., dict[str, Any]] = globals()[f"ingest_{SOURCES[source].name}_task"]
    return found
