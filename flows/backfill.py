"""``volrisk backfill``: a historical date range in chunks, in-process or as deployment runs.

How a backfill runs
-------------------
The range ``[start, end)`` is cut into chunks (a UTC day, an ISO week or a calendar month). With
``--stage all`` every chunk is ingested first, then every chunk gets its quality gate and daily
features: features of a month read 40 days of earlier bars and one day after, so building them only
once all bars of the range are stored keeps their data version (and so their cache key) stable.

- In-process (default): one ``backfill`` flow run covers every chunk. Each (stage, chunk) is one
  cached ``backfill-chunk`` task that runs the body of ``ingest_flow`` or ``features_flow`` inside
  the backfill run (no subflow run per chunk with the thread runner; with ``--task-runner dask``
  each chunk is still a subflow, whose runner is the Dask cluster). Its partition tasks are cached
  on partition keys plus a content hash and retried on transient errors only, as in those flows.
- ``--via-deployment``: one run of the ``backfill`` deployment per (stage, chunk), each created with
  an idempotency key derived from its parameters, so repeating the command never creates a second
  run for a chunk; the command waits for the runs and draws the same progress bar.

Resuming. A chunk done before is a cache hit: its tasks return their stored results without
touching the warehouse. Killing a backfill and starting the same command again finishes the rest;
a partition interrupted mid-write is rolled back (one transaction per partition) and redone, and
writes upsert on the natural key, so no row is ever duplicated.

Failure isolation. A features chunk needs the ingest chunks overlapping its read window
(``[lo - 40 days, hi + 1 day)``); when one of those failed the features chunk is skipped and says
which ingest chunk it waited for. Other chunks go on.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import ConfigError
from flows import progress

CHUNKS = ("day", "week", "month")
STAGES = ("ingest", "features", "evaluate", "all")
FEATURE_LOOKBACK_DAYS = 40  # tasks.features.LOOKBACK_DAYS, without importing polars here


def plan_chunks(start: date, end: date, chunk: str) -> list[tuple[date, date]]:
    """Split ``[start, end)`` into UTC days, ISO weeks (Monday-based) or calendar months.

    The first and last chunks are clipped to the range, so chunk boundaries do not depend on the
    range: a month chunk of one backfill is the same partition as that month in any other.
    """
    if chunk not in CHUNKS:
        raise ConfigError(f"chunk {chunk!r}: expected one of {', '.join(CHUNKS)}")
    if start >= end:
        raise ConfigError(f"start {start} must be before end {end} (end is exclusive)")
    out: list[tuple[date, date]] = []
    lo = start
    while lo < end:
        if chunk == "day":
            nxt = lo + timedelta(days=1)
        elif chunk == "week":
            nxt = lo + timedelta(days=7 - lo.weekday())
        else:
            nxt = (lo.replace(day=1) + timedelta(days=32)).replace(day=1)
        out.append((lo, min(nxt, end)))
        lo = min(nxt, end)
    return out


def ingest_dependencies(
    feature_chunk: tuple[date, date], ingest_chunks: list[tuple[date, date]]
) -> list[tuple[date, date]]:
    """The ingest chunks whose bars a features chunk reads (its 40-day lookback and one day after)."""
    lo = feature_chunk[0] - timedelta(days=FEATURE_LOOKBACK_DAYS)
    hi = feature_chunk[1] + timedelta(days=1)
    return [c for c in ingest_chunks if c[0] < hi and c[1] > lo]


def idempotency_key(stage: str, lo: date, hi: date, params: dict[str, Any]) -> str:
    """Stable key of one (stage, chunk) deployment run: the same command gives the same keys."""
    blob = json.dumps(
        {"stage": stage, "start": str(lo), "end": str(hi), **params}, sort_keys=True, default=str
    )
    return f"volrisk-backfill-{stage}-{lo}-{hi}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


@contextmanager
def task_runner_for(kind: str, n_workers: int | None = None) -> Iterator[Any]:
    """``None`` for the thread runner (each flow's default), or a ``DaskTaskRunner``.

    With ``$VOLRISK_DASK_ADDRESS`` set the runner connects to that Dask scheduler (a cluster on
    other machines); otherwise one ``LocalCluster`` of ``n_workers`` single-threaded worker
    processes (default ``$VOLRISK_DASK_WORKERS`` or 2) serves every subflow of the backfill.
    """
    if kind == "thread":
        yield None
        return
    if kind != "dask":
        raise ConfigError(f"task runner {kind!r}: expected thread or dask")
    from prefect_dask import DaskTaskRunner

    address = os.environ.get("VOLRISK_DASK_ADDRESS")
    if address:
        yield DaskTaskRunner(address=address)
        return
    from distributed import LocalCluster

    workers = n_workers or int(os.environ.get("VOLRISK_DASK_WORKERS", "2"))
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield DaskTaskRunner(address=cluster.scheduler_address)


def _chunk_item(stage: str, lo: date, hi: date, rows: list[dict[str, Any]], failures: list[dict], t0: float):
    statuses = [r.get("status") for r in rows]
    if failures:
        status = "failed"
    elif rows and all(s == "cached" for s in statuses):
        status = "cached"
    elif not rows:
        status = "empty"
    else:
        status = "done"
    return {
        "stage": stage,
        "start": lo.isoformat(),
        "end": hi.isoformat(),
        "status": status,
        "partitions": len(rows),
        "cached": sum(s == "cached" for s in statuses),
        "failed": len(failures),
        "seconds": round(time.perf_counter() - t0, 3),
    }


#: Cross-asset correlations of a chunk read 90 days of features, whose bars reach 40 days further.
FINGERPRINT_LOOKBACK_DAYS = 130


def code_version() -> str:
    """Hash of the stage code a chunk runs and the flows that wire it: editing it invalidates markers."""
    from flows.orchestration import stage_code_hash

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256(stage_code_hash().encode())
    for name in ("ingest_flow.py", "features_flow.py"):
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:16]


def chunk_fingerprint(stage: str, p: Any, code: str) -> str | None:
    """Content hash of everything a (stage, chunk) reads; ``None`` when it must always run.

    ingest: the input files' sha256 (samples/file), or the generator's seed (synthetic); a Yahoo
    window that is not closed yet (ends within a day) always runs. features: the stored bars of
    each symbol from 130 days before the chunk to one day after it, per symbol and interval.
    """
    return chunk_fingerprints(stage, [p], code)[0]


def chunk_fingerprints(stage: str, ps: list[Any], code: str) -> list[str | None]:
    """:func:`chunk_fingerprint` of several chunks of one stage, through one warehouse session.

    A stage's inputs do not change while it runs (ingest reads files, features reads bars stored
    by the ingest stage before it), so a stage's fingerprints are taken once, at its start: one
    DuckDB open and close and one hash of each input file, instead of one per chunk.
    """
    from warehouse.catalog import warehouse_id
    from warehouse.db import session

    if not ps:
        return []
    wh = ps[0].wh_path()
    if not Path(wh).is_file():
        return [None] * len(ps)
    checksums: dict[str, str] = {}
    out: list[str | None] = []
    with session(wh, read_only=True) as con:
        wid = warehouse_id(con)
        for p in ps:
            out.append(_fingerprint(stage, p, code, con, wid, checksums))
    return out


def _fingerprint(stage: str, p: Any, code: str, con: Any, wid: str, checksums: dict[str, str]) -> str | None:
    from datetime import UTC, datetime

    from tasks.sources.files import file_checksum
    from warehouse.bars import bars_version, stored_intervals

    parts: list[Any] = [stage, code, wid, p.source, p.interval, p.seed]
    if stage == "ingest":
        if p.source in ("samples", "file"):
            from flows.pipeline_flow import _sample_inputs

            paths = _sample_inputs(p.symbols)[1] if p.source == "samples" else list(p.paths or [])
            for x in paths:
                if str(x) not in checksums:
                    checksums[str(x)] = file_checksum(Path(x))
            parts += [(str(x), checksums[str(x)]) for x in paths] + [p.fmt]
        elif p.source == "yfinance":
            if p.end is None or p.end >= datetime.now(UTC).date() - timedelta(days=1):
                return None
    else:
        lo = datetime(p.start.year, p.start.month, p.start.day, tzinfo=UTC)
        lo -= timedelta(days=FINGERPRINT_LOOKBACK_DAYS)
        hi = datetime(p.end.year, p.end.month, p.end.day, tzinfo=UTC) + timedelta(days=1)
        for symbol in p.symbols:
            for interval, *_ in stored_intervals(con, symbol):
                parts.append((symbol, interval, bars_version(con, symbol, interval, lo, hi)))
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


class ChunkFailed(Exception):
    """A chunk had failed partitions: its marker must not be cached."""


#: Results of chunk bodies in this process, by (stage, start): how a failed chunk hands back its rows.
_CHUNK_OUT: dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
_RUNNER: dict[str, Any] = {"runner": None}


def _chunk_body(stage: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from flows.pipeline_flow import run_features_stage, run_ingest_stage, validate_params

    p = validate_params(**params)
    runner = _RUNNER["runner"]
    # Thread runner: the stage flow's body runs inside the backfill flow run, so its partition tasks
    # are submitted to the backfill's own runner. A subflow per chunk cost ~1 s of orchestration
    # (flow-run API round-trips on the temporary server, and joining its heartbeat thread, which
    # sleeps in 1 s steps). Dask keeps a subflow per chunk: its runner is set per flow run.
    inline = runner is None
    if stage == "ingest":
        return run_ingest_stage(p, runner, inline=inline)
    result, fails, _ = run_features_stage(p, p.symbols, runner, missing_ok=True, inline=inline)
    return (result["partitions"] if result else []), fails


def _chunk_task() -> Any:
    """The cached Prefect task that runs one (stage, chunk): a finished chunk is one cache hit.

    Its cache key is its inputs: stage, chunk bounds, the pipeline parameters and the chunk's
    content fingerprint. A chunk with failed partitions raises, so it is never cached.
    """
    from datetime import timedelta as _td

    from prefect import task
    from prefect.cache_policies import INPUTS

    @task(
        name="backfill-chunk",
        task_run_name="backfill-{stage}-{start}",
        cache_policy=INPUTS,
        cache_expiration=_td(days=30),
        persist_result=True,
        retries=0,
    )
    def backfill_chunk(
        stage: str, start: str, end: str, fingerprint: str, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        rows, fails = _chunk_body(stage, params)
        _CHUNK_OUT[(stage, start)] = (rows, fails)
        if fails:
            raise ChunkFailed(f"{len(fails)} failed partition(s) in {stage} {start}..{end}")
        return [{"status": r.get("status"), "symbol": r.get("symbol")} for r in rows]

    return backfill_chunk


def run_backfill(
    start: date,
    end: date,
    symbols: list[str],
    source: str = "samples",
    chunk: str = "month",
    stage: str = "all",
    task_runner: str = "thread",
    interval: str | None = None,
    seed: int = 0,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Run a backfill in this process (inside ``backfill_flow``); returns the summary dict.

    Reports ``progress.report("backfill", ...)`` once with the number of steps and once per
    finished (stage, chunk) with a dict: stage, start, end, status (done, cached, empty, failed,
    skipped), partitions, cached, failed, seconds.
    """
    from flows.pipeline_flow import EvaluationWindow, run_evaluation_stage, validate_params

    if stage not in STAGES:
        raise ConfigError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    t_start = time.perf_counter()
    chunks = plan_chunks(start, end, chunk)
    stages = ["ingest", "features"] if stage == "all" else [stage]
    if stage in ("ingest", "all") and source == "warehouse":
        raise ConfigError("source 'warehouse' has nothing to ingest; use --stage features")
    steps = sum(len(chunks) if s != "evaluate" else 1 for s in stages)
    progress.report("backfill", total=steps)

    failures: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    failed_ingest: set[tuple[date, date]] = set()
    stage_totals: dict[str, dict[str, Any]] = {}

    def params(lo: date, hi: date) -> Any:
        return validate_params(
            symbols=symbols,
            start=lo,
            end=hi,
            source=source if source != "warehouse" else "warehouse",
            interval=interval,
            seed=seed,
            evaluate=False,
            name="backfill",
            warehouse=warehouse,
        )

    if "ingest" in stages:
        from warehouse.db import writer

        with writer(params(start, end).wh_path()):  # create and migrate a new warehouse up front
            pass
    code = code_version()
    chunk_task = _chunk_task()

    fingerprints: dict[tuple[str, date], str | None] = {}

    def run_chunk(st: str, p: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        fingerprint = fingerprints[(st, p.start)]
        if fingerprint is None:  # nothing stable to key on: run the stage flow directly
            return _chunk_body(st, p.model_dump(mode="json"))
        key = (st, p.start.isoformat())
        _CHUNK_OUT.pop(key, None)
        state = chunk_task(
            st, p.start.isoformat(), p.end.isoformat(), fingerprint, p.model_dump(mode="json"),
            return_state=True,
        )  # fmt: skip
        if state.is_failed():
            if key in _CHUNK_OUT:
                return _CHUNK_OUT.pop(key)
            error = state.result(raise_on_failure=False)
            return [], [
                {"stage": st, "symbol": None, "partition": f"{p.start}..{p.end}", "error": str(error)}
            ]
        if key in _CHUNK_OUT:  # ran now
            return _CHUNK_OUT.pop(key)
        # A cache hit: the marker of a chunk that finished earlier, nothing was run.
        return [{**r, "status": "cached"} for r in state.result()], []

    with task_runner_for(task_runner) as runner:
        _RUNNER["runner"] = runner
        for st in stages:
            totals = stage_totals.setdefault(st, {"partitions": 0, "ok": 0, "cached": 0, "failed": 0})
            t_stage = time.perf_counter()
            if st == "evaluate":
                p = validate_params(
                    symbols=symbols,
                    source="warehouse",
                    evaluation=EvaluationWindow(test_start=start, test_end=end - timedelta(days=1)),
                    name="backfill",
                    warehouse=warehouse,
                )
                t0 = time.perf_counter()
                out, fails = run_evaluation_stage(p, symbols)
                failures += fails
                item = _chunk_item(st, start, end, [{"status": "success"}] if out else [], fails, t0)
                items.append(item)
                progress.report("backfill", item=item)
                totals.update(partitions=1, ok=int(out is not None), failed=len(fails))
                if out and out.get("report"):
                    totals["report"] = out["report"]
                continue
            plist = [params(lo, hi) for lo, hi in chunks]
            fingerprints.update(
                zip([(st, c[0]) for c in chunks], chunk_fingerprints(st, plist, code), strict=True)
            )
            for (lo, hi), p in zip(chunks, plist, strict=True):
                t0 = time.perf_counter()
                if st == "ingest":
                    rows, fails = run_chunk(st, p)
                    if fails:
                        failed_ingest.add((lo, hi))
                else:
                    waits = [c for c in ingest_dependencies((lo, hi), chunks) if c in failed_ingest]
                    if waits:
                        why = f"needs ingest chunk(s) that failed: {', '.join(f'{a}..{b}' for a, b in waits)}"
                        skipped[f"features {lo}..{hi}"] = why
                        item = {**_chunk_item(st, lo, hi, [], [], t0), "status": "skipped", "why": why}
                        items.append(item)
                        progress.report("backfill", item=item)
                        continue
                    rows, fails = run_chunk(st, p)
                failures += fails
                item = _chunk_item(st, lo, hi, rows, fails, t0)
                items.append(item)
                totals["partitions"] += item["partitions"]
                totals["cached"] += item["cached"]
                totals["failed"] += item["failed"]
                totals["ok"] += item["partitions"] - sum(
                    r.get("status") in ("failed", "blocked") for r in rows
                )
                progress.report("backfill", item=item)
            totals["seconds"] = time.perf_counter() - t_stage

    return {
        "params": {
            "name": "backfill",
            "symbols": symbols,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "source": source,
            "device": "-",
            "chunk": chunk,
            "stage": stage,
            "task_runner": task_runner,
        },
        "stages": stage_totals,
        "chunks": items,
        "failed": failures,
        "skipped": skipped,
        "report": stage_totals.get("evaluate", {}).get("report"),
        "wall_s": time.perf_counter() - t_start,
    }


_FINAL_BAD = {"FAILED", "CRASHED", "CANCELLED", "CANCELLING"}


def run_via_deployment(
    start: date,
    end: date,
    symbols: list[str],
    source: str = "samples",
    chunk: str = "month",
    stage: str = "all",
    task_runner: str = "thread",
    interval: str | None = None,
    seed: int = 0,
    warehouse: str | None = None,
    deployment: str = "backfill/backfill",
    poll_s: float = 2.0,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """One run of ``deployment`` per (stage, chunk), each with an idempotency key; wait for them.

    Needs ``PREFECT_API_URL`` pointing at a server that has the deployment and a worker serving its
    pool (``make server``). Runs of a stage start only after the previous stage's runs finished;
    a features chunk whose ingest dependencies failed is skipped. A chunk whose earlier run with the
    same key failed or crashed is submitted again under a ``-retry-N`` key.
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    if stage not in STAGES:
        raise ConfigError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    t_start = time.perf_counter()
    chunks = plan_chunks(start, end, chunk)
    stages = ["ingest", "features"] if stage == "all" else [stage]
    progress.report("backfill", total=sum(len(chunks) if s != "evaluate" else 1 for s in stages))
    base = {
        "symbols": symbols,
        "source": source,
        "task_runner": task_runner,
        "interval": interval,
        "seed": seed,
        "warehouse": str(Path(warehouse).resolve()) if warehouse else None,
    }
    failures: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    failed_ingest: set[tuple[date, date]] = set()
    totals: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s if timeout_s else None

    with get_client(sync_client=True) as client:

        def submit(st: str, lo: date, hi: date) -> Any:
            key = idempotency_key(st, lo, hi, {**base, "chunk": chunk})
            parameters = {**base, "start": lo.isoformat(), "end": hi.isoformat(), "chunk": chunk, "stage": st}
            for attempt in range(0, 20):
                run = run_deployment(
                    deployment,
                    parameters=parameters,
                    idempotency_key=key if attempt == 0 else f"{key}-retry-{attempt}",
                    flow_run_name=f"backfill-{st}-{lo}",
                    timeout=0,
                    as_subflow=False,
                )
                state = run.state.type.value if run.state else "SCHEDULED"
                if state not in _FINAL_BAD:
                    return run
            return run

        for st in stages:
            windows = [(start, end)] if st == "evaluate" else chunks
            pending: dict[Any, tuple[date, date, float]] = {}
            tot = totals.setdefault(st, {"partitions": 0, "ok": 0, "cached": 0, "failed": 0})
            for lo, hi in windows:
                waits = [c for c in ingest_dependencies((lo, hi), chunks) if c in failed_ingest]
                if st == "features" and waits:
                    why = f"needs ingest chunk(s) that failed: {', '.join(f'{a}..{b}' for a, b in waits)}"
                    skipped[f"features {lo}..{hi}"] = why
                    item = {"stage": st, "start": str(lo), "end": str(hi), "status": "skipped", "why": why}
                    items.append(item)
                    progress.report("backfill", item=item)
                    continue
                run = submit(st, lo, hi)
                pending[run.id] = (lo, hi, time.perf_counter())
            while pending:
                for run_id in list(pending):
                    run = client.read_flow_run(run_id)
                    state = run.state
                    if state is None or not state.is_final():
                        continue
                    lo, hi, t0 = pending.pop(run_id)
                    ok = state.is_completed()
                    item = {
                        "stage": st,
                        "start": str(lo),
                        "end": str(hi),
                        "status": "done" if ok else "failed",
                        "flow_run": str(run_id),
                        "flow_run_name": run.name,
                        "partitions": 1,
                        "cached": 0,
                        "failed": 0 if ok else 1,
                        "seconds": round(time.perf_counter() - t0, 3),
                    }
                    tot["partitions"] += 1
                    tot["ok"] += int(ok)
                    if not ok:
                        tot["failed"] += 1
                        if st == "ingest":
                            failed_ingest.add((lo, hi))
                        failures.append(
                            {
                                "stage": st,
                                "symbol": None,
                                "partition": f"{lo}..{hi} (flow run {run.name})",
                                "error": f"{state.type.value}: {state.message}",
                            }
                        )
                    items.append(item)
                    progress.report("backfill", item=item)
                if pending:
                    if deadline and time.monotonic() > deadline:
                        raise ConfigError(f"{len(pending)} deployment runs still pending after {timeout_s}s")
                    time.sleep(poll_s)
    return {
        "params": {
            "name": "backfill",
            "symbols": symbols,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "source": source,
            "device": "-",
            "chunk": chunk,
            "stage": stage,
            "via": deployment,
        },
        "stages": totals,
        "chunks": items,
        "failed": failures,
        "skipped": skipped,
        "report": None,
        "wall_s": time.perf_counter() - t_start,
    }


# --------------------------------------------------------------------------- CLI


def _listener(bar: Any, task_id: Any, console: Any) -> Callable[[str, int, dict[str, Any] | None], None]:
    def listen(stage: str, total: int, item: dict[str, Any] | None) -> None:
        if stage != "backfill":
            return
        if item is None:
            bar.update(task_id, total=total)
            return
        bar.advance(task_id)
        colour = {"failed": "red", "skipped": "yellow", "cached": "dim"}.get(item["status"], "green")
        extra = f" ({item['partitions']} partitions, {item['cached']} cached)" if "partitions" in item else ""
        if item.get("flow_run_name"):
            extra += f" run {item['flow_run_name']}"
        if item.get("why"):
            extra += f": {item['why']}"
        console.print(
            f"[{colour}]{item['status']:<7}[/] {item['stage']:<8} {item['start']}..{item['end']}"
            f"{extra} {item.get('seconds', 0):.1f}s"
        )

    return listen


def _symbols(values: list[str], extra: list[str]) -> list[str]:
    out: list[str] = []
    for raw in [*values, *extra]:
        if raw.startswith("-"):
            raise ConfigError(f"unexpected option {raw!r}")
        out += [s for s in raw.split(",") if s]
    if not out:
        raise ConfigError("give at least one symbol: --symbols BTC-USDT EURUSD SPY")
    return list(dict.fromkeys(out))


def backfill_command(
    ctx: typer.Context,
    start: Annotated[str, typer.Option(help="First UTC date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="End UTC date, exclusive.")],
    symbols: Annotated[
        list[str], typer.Option("--symbols", "-s", help="Symbols: --symbols BTC-USDT EURUSD SPY.")
    ],
    source: Annotated[
        str, typer.Option(help="samples (bundled files), synthetic, yfinance, or warehouse (stored bars).")
    ] = "samples",
    chunk: Annotated[str, typer.Option(help="Partition per run: day, week or month.")] = "month",
    stage: Annotated[
        str, typer.Option(help="ingest, features, evaluate, or all (ingest then features).")
    ] = "all",
    via_deployment: Annotated[
        bool, typer.Option("--via-deployment", help="One run of the backfill deployment per chunk.")
    ] = False,
    deployment: Annotated[str, typer.Option(help="Deployment for --via-deployment.")] = "backfill/backfill",
    task_runner: Annotated[str, typer.Option(help="thread, or dask (local cluster).")] = "thread",
    interval: Annotated[str | None, typer.Option(help="Bar interval for synthetic/yfinance.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic source.")] = 0,
    warehouse: Annotated[
        Path | None, typer.Option("--warehouse", "-w", help="DuckDB file (default: $VOLRISK_WAREHOUSE_PATH).")
    ] = None,
) -> None:
    """Backfill a date range chunk by chunk; rerun the same command to resume after a kill.

    Ingest then quality + features per chunk (--stage), in-process by default or as one run of the
    backfill deployment per chunk with an idempotency key (--via-deployment). Finished chunks are
    cache hits, so an interrupted backfill resumes where it stopped and never duplicates a row.
    """
    from flows import preflight
    from flows.cli import _parse_date, console, progress_bar

    lo, hi = _parse_date(start, "start"), _parse_date(end, "end")
    assert lo is not None and hi is not None
    syms = preflight.symbols(_symbols(symbols, list(ctx.args)))
    preflight.choice(source, ("samples", "synthetic", "yfinance", "warehouse"), "--source")
    plan_chunks(lo, hi, chunk)  # refuse a bad range or chunk before starting Prefect
    if stage not in STAGES:
        raise ConfigError(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    if task_runner not in ("thread", "dask"):
        raise ConfigError(f"--task-runner {task_runner!r}: expected thread or dask")
    wh = str(warehouse) if warehouse else None
    bar = progress_bar()
    task_id = bar.add_task(f"backfill {lo}..{hi} by {chunk}", total=None)
    kwargs: dict[str, Any] = dict(
        start=lo, end=hi, symbols=syms, source=source, chunk=chunk, stage=stage,
        task_runner=task_runner, interval=interval, seed=seed, warehouse=wh,
    )  # fmt: skip
    with bar, progress.listening(_listener(bar, task_id, console)):
        if via_deployment:
            summary = run_via_deployment(**kwargs, deployment=deployment)
        else:
            from flows.pipeline_flow import backfill_flow

            state = backfill_flow(**kwargs, return_state=True)
            summary = state.result(raise_on_failure=False)
            if not isinstance(summary, dict):
                raise ConfigError(f"backfill ended {state.type.value}: {state.message}")
    print_summary(summary, console)
    if summary["failed"] or summary["skipped"]:
        raise typer.Exit(1)


def print_summary(summary: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"backfill {summary['params']['start']}..{summary['params']['end']}")
    for col in ("stage", "chunks", "partitions", "cached", "failed", "skipped", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for st, tot in summary["stages"].items():
        chunks = [c for c in summary["chunks"] if c["stage"] == st]
        table.add_row(
            st,
            str(len(chunks)),
            f"{tot.get('partitions', 0):,}",
            f"{tot.get('cached', 0):,}",
            f"{tot.get('failed', 0):,}",
            str(sum(c["status"] == "skipped" for c in chunks)),
            f"{tot.get('seconds', sum(c.get('seconds', 0) for c in chunks)):.1f}",
        )
    console.print(table)
    for f in summary["failed"]:
        console.print(f"[red]failed[/] {f['stage']} {f.get('symbol') or ''} {f['partition']}: {f['error']}")
    for what, why in summary["skipped"].items():
        console.print(f"[yellow]skipped[/] {what}: {why}")
    if summary.get("report"):
        console.print(f"report: [bold]{summary['report']}[/]")
    console.print(f"wall {summary['wall_s']:.1f}s; rerun the same command to resume or verify (cache hits)")


def register(app: typer.Typer) -> None:
    """Add ``volrisk backfill`` to the CLI (extra arguments after ``--symbols`` are more symbols)."""
    from flows.cli import friendly_errors

    app.command("backfill", context_settings={"allow_extra_args": True})(friendly_errors(backfill_command))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `volrisk backfill`")
