"""``ingest_flow``: one task per (symbol, window), writes serialized, failures isolated."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from prefect import Task, flow
from prefect.futures import PrefectFuture, as_completed

from core.errors import ConfigError
from core.symbols import validate_symbol
from flows import progress
from flows.orchestration import TASK_DEFAULTS, is_transient
from flows.steps.ingest import door, register_instruments
from tasks.config import get_settings
from tasks.ingest import check_range, realized_file_symbols
from tasks.instruments import check_asset_class, check_calendar
from tasks.sources.base import Partition, SourceRequest
from tasks.sources.layouts import LAYOUTS, generic_from_params
from tasks.sources.registry import SOURCES
from warehouse.catalog import warehouse_id
from warehouse.resource import Warehouse

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


@dataclass(frozen=True)
class PartitionCall:
    """One planned partition: the Prefect task, its arguments and the label of a failed row."""

    task: Task[..., dict[str, Any]]
    args: tuple[Any, ...]
    label: dict[str, Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestRequest:
    """What to ingest; the parameters of :func:`ingest_flow` (see its docstring)."""

    symbols: list[str]
    start: date | None = None
    end: date | None = None
    source: Source = "file"
    interval: str | None = None
    paths: list[str] | None = None
    fmt: str | list[str] | None = None
    seed: int = 0
    warehouse: str | None = None
    restrict_to_data_roots: bool = False
    generic: dict[str, Any] | None = None
    asset_class: str | None = None
    calendar: str | None = None

    def formats(self) -> list[str | None]:
        """One format (or None: detect) per path."""
        return list(self.fmt) if isinstance(self.fmt, list) else [self.fmt] * len(self.paths or [])


def _check_request(req: IngestRequest) -> None:
    """Refuse bad symbols, ranges and formats before any task runs."""
    for symbol in req.symbols:
        validate_symbol(symbol)
    check_range(req.start, req.end)
    for name in req.formats():
        if name is not None and name not in LAYOUTS and name != "generic":
            raise ConfigError(f"unknown format {name!r}; expected one of {sorted(LAYOUTS)} or 'generic'")
        if name == "generic":
            generic_from_params(req.generic)  # refuse a bad mapping before any task runs
    if req.asset_class is not None:
        check_asset_class(req.asset_class)
    if req.calendar is not None:
        check_calendar(req.calendar)


def _resolver(req: IngestRequest) -> Callable[[list[str]], list[Path]]:
    """Resolve a request's paths against the data roots, checked once for every source.

    Paths from a deployment (the UI, `prefect deployment run`) may only name files under the data
    roots, as may any path with ``restrict_to_data_roots``; they are refused before anything is read
    or hashed.
    """
    from prefect.runtime import deployment

    confined = req.restrict_to_data_roots or deployment.id is not None
    roots = get_settings().data_roots if confined else None
    return lambda paths: resolve_paths(paths, roots)


def plan_ingest(req: IngestRequest) -> list[PartitionCall]:
    """Validate ``req``, create (and migrate) the warehouse once, and plan its partitions."""
    _check_request(req)
    if req.source not in SOURCES:
        raise ConfigError(f"unknown source {req.source!r}; expected file, synthetic, yfinance or realized")
    wh_path = str(Path(req.warehouse) if req.warehouse else get_settings().warehouse)
    run_id = uuid.uuid4().hex[:12]
    source_req = SourceRequest(
        req.symbols, req.start, req.end, req.interval, req.paths or [], req.formats(), req.seed,
        req.generic, run_id, datetime.now(UTC), _resolver(req),
    )  # fmt: skip
    parts = SOURCES[req.source].plan(source_req)
    with Warehouse.at(wh_path).writing() as con:  # creates and migrates a new warehouse once, up front
        wid = warehouse_id(con)
        register_instruments(con, *_registrations(req, parts))  # unknown symbols: before any task runs
    del con  # a closed connection kept alive by a traceback leaks at exit (nanobind warnings)
    task = door(req.source)
    return [
        PartitionCall(
            task,
            (),
            part.label,
            {"warehouse_path": wh_path, "warehouse_id": wid, **part.params, "run_id": run_id},
        )
        for part in parts
    ]


def _registrations(
    req: IngestRequest, parts: list[Partition]
) -> tuple[list[str], str | None, str | None, str | None]:
    """(symbols, asset class, calendar, default source) an ingest run registers as instruments.

    Synthetic bars register themselves (crypto, 24x7); a realized-measure file's symbols are read
    from its symbol column.
    """
    if req.source == "synthetic":
        return [], None, None, None
    if req.source == "realized":
        symbols = sorted({s for part in parts for s in realized_file_symbols(part.params["path"])})
    else:
        symbols = list(dict.fromkeys(req.symbols))
    source = req.fmt if req.source == "file" and isinstance(req.fmt, str) else req.source
    return symbols, req.asset_class, req.calendar, source


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
    asset_class: str | None = None,
    calendar: str | None = None,
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
    asset_class, calendar : str | None
        Register every symbol of the run with this asset class and calendar (a symbol registered
        otherwise is refused: change it with ``volrisk instruments set``). Without them, a symbol
        must be registered or known (see :mod:`tasks.instruments`), else the run stops before any task.

    Returns
    -------
    list[dict]
        One row per partition: status, rows new/updated/unchanged/quarantined, notes or error.
    """
    calls = plan_ingest(
        IngestRequest(symbols, start, end, source, interval, paths, fmt, seed, warehouse,
                      restrict_to_data_roots, generic, asset_class, calendar)
    )  # fmt: skip
    futures = [call.task.submit(*call.args, **call.kwargs) for call in calls]
    return _collect(futures, [call.label for call in calls])


def _run_direct(call: PartitionCall, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Run one partition in this process with the tasks' retry policy (transient errors only)."""
    delays = list(TASK_DEFAULTS["retry_delay_seconds"])
    while True:
        try:
            return dict(call.task.fn(*call.args, **call.kwargs))
        except Exception as exc:  # noqa: BLE001 - classified, then reported or retried
            if not delays or not is_transient(exc):
                return {**call.label, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            sleep(delays.pop(0))


def ingest_direct(req: IngestRequest, sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """The same partitions as :func:`ingest_flow`, run in this process without Prefect.

    For a local command with no Prefect server: the work takes well under a second per file, and
    the temporary server a flow run needs would take 5-20 s to start. Writes are the same
    idempotent upserts (re-ingesting a file changes nothing), transient failures are retried with
    the tasks' delays, and Ctrl-C stops between or inside a partition's one transaction.
    """
    calls = plan_ingest(req)
    progress.report("ingest", total=len(calls))
    rows = []
    for call in calls:
        rows.append(_run_direct(call, sleep))
        progress.report("ingest", item=rows[-1])
    return rows


def run_ingest(req: IngestRequest, orchestrate: bool | None = None) -> list[dict[str, Any]]:
    """Ingest through a Prefect flow run, or in-process (``orchestrate=None``: when no API is set).

    With ``PREFECT_API_URL`` set (``make server``) every ingest is a flow run the UI shows, with
    per-partition caching and retries; without it, a flow run would first start a temporary server.
    """
    if orchestrate is None:
        from prefect.settings import get_current_settings

        orchestrate = bool(get_current_settings().api.url)
    if orchestrate:
        return ingest_flow(**{f.name: getattr(req, f.name) for f in fields(req)})
    return ingest_direct(req)
