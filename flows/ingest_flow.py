"""``ingest_flow``: one task per (symbol, window), writes serialized, failures isolated."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.futures import PrefectFuture, as_completed

from flows import progress
from tasks.config import get_settings
from tasks.errors import ConfigError
from tasks.ingest import (
    check_range,
    ingest_file_task,
    ingest_realized_task,
    ingest_synthetic_task,
    ingest_yfinance_task,
    month_windows,
)
from tasks.sources.files import file_checksum
from tasks.sources.layouts import LAYOUTS, generic_from_params
from warehouse.catalog import warehouse_id
from warehouse.db import writer
from warehouse.symbols import validate_symbol

Source = Literal["file", "synthetic", "yfinance", "realized"]


def resolve_paths(paths: list[str], roots: list[Path] | None) -> list[Path]:
    """Resolve file paths; with ``roots`` given, refuse any path outside them."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if roots is not None and not any(path.is_relative_to(r.resolve()) for r in roots):
            raise ConfigError(
                f"file {raw!r} is outside the configured data roots {[str(r) for r in roots]} "
                "(set VOLRISK_DATA_ROOTS to allow another folder)"
            )
        if not path.is_file():
            raise ConfigError(f"file {raw!r} does not exist or is not a file")
        out.append(path)
    return out


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return datetime(value.year, value.month, value.day, tzinfo=UTC).isoformat()


def _collect(futures: list[PrefectFuture[Any]], labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wait for every partition; a failed one becomes a 'failed' row naming its cause."""
    progress.report("ingest", total=len(futures))
    by_id = {f.task_run_id: label for f, label in zip(futures, labels, strict=True)}
    results: list[dict[str, Any]] = []
    for future in as_completed(futures):
        try:
            row = dict(future.result(raise_on_failure=True))
            if future.state.name == "Cached":
                # A cache hit replays an earlier run's counts; nothing was written this time.
                row.update(status="cached", new=0, updated=0, unchanged=row.get("rows", 0))
        except Exception as exc:  # noqa: BLE001 - reported per partition, not swallowed
            row = {**by_id[future.task_run_id], "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        results.append(row)
        progress.report("ingest", item=row)
    return results


@flow(name="ingest", log_prints=True)
def ingest_flow(
    symbols: list[str],
    start: date | None = None,
    end: date | None = None,
    source: Source = "file",
    interval: str | None = None,
    paths: list[str] | None = None,
    fmt: str | list[str] | None = None,
    seed: int = 0,
    warehouse: str | None = None,
    restrict_to_data_roots: bool = False,
    generic: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Ingest bars into the warehouse, one cached and retried task per (symbol, window).

    Parameters
    ----------
    symbols : list[str]
        Symbols; for ``source="file"`` either one per path or a single symbol for all paths.
    start, end : date | None
        Half-open UTC date range; files are clipped to it, generated and fetched data cover it.
    source : {"file", "synthetic", "yfinance", "realized"}
        Where bars come from; ``realized`` imports daily realized measures (Oxford-Man layout).
    interval : str | None
        Bar interval (inferred from files when omitted; ``1m`` for synthetic).
    paths : list[str] | None
        Vendor files, for ``source="file"``.
    fmt : str | list[str] | None
        File format name for all files, or one per file (detected when omitted).
    seed : int
        Seed of the synthetic source.
    warehouse : str | None
        DuckDB file; defaults to the configured warehouse.
    restrict_to_data_roots : bool
        Refuse files outside ``VOLRISK_DATA_ROOTS`` (deployments set this).
    generic : dict | None
        For ``fmt="generic"`` (CSV or Parquet): ``ts_column``, ``tz`` and optionally ``column_map``
        (canonical name -> column), ``ts_format``, ``stamp``, ``delimiter``, ``interval``.

    Returns
    -------
    list[dict]
        One row per partition: status, rows new/updated/unchanged/quarantined, notes or error.
    """
    settings = get_settings()
    wh_path = str(Path(warehouse) if warehouse else settings.warehouse)
    for symbol in symbols:
        validate_symbol(symbol)
    check_range(start, end)
    formats = fmt if isinstance(fmt, list) else [fmt] * len(paths or [])
    for name in formats:
        if name is not None and name not in LAYOUTS and name != "generic":
            raise ConfigError(f"unknown format {name!r}; expected one of {sorted(LAYOUTS)} or 'generic'")
        if name == "generic":
            generic_from_params(generic)  # refuse a bad mapping before any task runs
    run_id = uuid.uuid4().hex[:12]
    with writer(wh_path) as con:  # creates and migrates a new warehouse once, up front
        wid = warehouse_id(con)

    futures: list[PrefectFuture[Any]] = []
    labels: list[dict[str, Any]] = []
    if source == "file":
        if not paths:
            raise ConfigError("source 'file' needs at least one path")
        if len(formats) != len(paths):
            raise ConfigError(f"give one format for all {len(paths)} files or one per file")
        if len(symbols) not in (1, len(paths)):
            raise ConfigError(
                f"give one symbol for all {len(paths)} files or one per file; got {len(symbols)}"
            )
        from prefect.runtime import deployment

        # Paths from a deployment (the UI, `prefect deployment run`) may only name files under the
        # data roots; refuse before anything is read or hashed.
        confined = restrict_to_data_roots or deployment.id is not None
        resolved = resolve_paths(paths, settings.data_roots if confined else None)
        for i, path in enumerate(resolved):
            symbol = symbols[0] if len(symbols) == 1 else symbols[i]
            futures.append(
                ingest_file_task.submit(
                    wh_path,
                    wid,
                    str(path),
                    path.name,
                    symbol,
                    formats[i],
                    interval,
                    file_checksum(path),
                    run_id,
                    _iso(start),
                    _iso(end),
                    generic if formats[i] == "generic" else None,
                )
            )
            labels.append(
                {"source": "file", "symbol": symbol, "interval": interval or "?", "location": str(path)}
            )
    elif source == "realized":
        if not paths:
            raise ConfigError("source 'realized' needs at least one path")
        for path in resolve_paths(paths, settings.data_roots if restrict_to_data_roots else None):
            futures.append(
                ingest_realized_task.submit(wh_path, wid, str(path), path.name, file_checksum(path), run_id)
            )
            labels.append({"source": "realized", "symbol": "-", "interval": "1d", "location": str(path)})
    elif source == "synthetic":
        if start is None or end is None:
            raise ConfigError("source 'synthetic' needs both start and end")
        for symbol in symbols:
            for lo, hi in month_windows(start, end):
                futures.append(
                    ingest_synthetic_task.submit(
                        wh_path, wid, symbol, lo.isoformat(), hi.isoformat(), interval or "1m", seed, run_id
                    )
                )
                labels.append(
                    {
                        "source": "synthetic",
                        "symbol": symbol,
                        "interval": interval or "1m",
                        "location": f"{lo:%Y-%m-%d}..{hi:%Y-%m-%d}",
                    }
                )
    elif source == "yfinance":
        from tasks.sources.yfinance_source import plan_windows

        if start is None or end is None:
            raise ConfigError("source 'yfinance' needs both start and end")
        yf_interval = interval or "1d"
        now = datetime.now(UTC)
        for symbol in symbols:
            for lo, hi in plan_windows(start, end, yf_interval, now=now):
                bucket = "closed" if hi <= now - timedelta(days=1) else f"open-{run_id}"
                futures.append(
                    ingest_yfinance_task.submit(
                        wh_path, wid, symbol, lo.isoformat(), hi.isoformat(), yf_interval, bucket, run_id
                    )
                )
                labels.append(
                    {
                        "source": "yfinance",
                        "symbol": symbol,
                        "interval": yf_interval,
                        "location": f"yfinance {lo:%Y-%m-%d %H:%M}..{hi:%Y-%m-%d %H:%M}",
                    }
                )
    else:
        raise ConfigError(f"unknown source {source!r}; expected file, synthetic, yfinance or realized")
    return _collect(futures, labels)
