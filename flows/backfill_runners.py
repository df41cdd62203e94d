"""How one backfill window runs: in this process (a cached Prefect task) or as a deployment run.

Both implement :class:`flows.backfill.WindowRunner`; :func:`flows.backfill.run_backfill` is the one
loop over stages and windows.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.hashing import content_hash, files_hash, source_root
from flows.backfill import BackfillSettings, Window, WindowResult, chunk_item, idempotency_key
from flows.samples import sample_inputs
from flows.stages import (
    EvaluationWindow,
    PipelineParams,
    run_evaluation_stage,
    run_features_stage,
    run_ingest_stage,
    validate_params,
)

#: Cross-asset correlations of a chunk read 90 days of features, whose bars reach 40 days further.
FINGERPRINT_LOOKBACK_DAYS = 130
#: Submissions of one deployment window (the first key, then ``-retry-1`` ...) before it is a failure.
SUBMIT_ATTEMPTS = 20
_FINAL_BAD = {"FAILED", "CRASHED", "CANCELLED", "CANCELLING"}
Rows = list[dict[str, Any]]


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


def chunk_code_hash() -> str:
    """Hash of the stage code a chunk runs and the flows that wire it: editing it invalidates markers."""
    from flows.orchestration import stage_code_hash

    flows = files_hash(source_root(), ["flows/ingest_flow.py", "flows/features_flow.py"])
    return content_hash(stage_code_hash(), flows)


def chunk_fingerprints(stage: str, ps: list[PipelineParams], code: str) -> list[str | None]:
    """Content hash of everything each (stage, chunk) reads; ``None`` when it must always run.

    ingest: the input files' sha256 (samples/file), or the generator's seed (synthetic); a Yahoo
    window that is not closed yet (ends within a day) always runs. features: the stored bars of
    each symbol from 130 days before the chunk to one day after it, per symbol and interval.
    A stage's inputs do not change while it runs, so its fingerprints are taken once, at its start,
    through one read-only warehouse session.
    """
    from warehouse.catalog import warehouse_id
    from warehouse.resource import Warehouse

    if not ps:
        return []
    wh = ps[0].wh_path()
    if not Path(wh).is_file():
        return [None] * len(ps)
    checksums: dict[str, str] = {}
    with Warehouse.at(wh).reading() as con:
        wid = warehouse_id(con)
        return [_fingerprint(stage, p, code, con, wid, checksums) for p in ps]


def _fingerprint(
    stage: str, p: PipelineParams, code: str, con: Any, wid: str, checksums: dict[str, str]
) -> str | None:
    from tasks.sources.files import file_checksum
    from warehouse.bars import bars_version, stored_intervals

    parts: list[Any] = [stage, code, wid, p.source, p.interval, p.seed]
    if stage == "ingest":
        if p.source in ("samples", "file"):
            paths = sample_inputs(p.symbols)[1] if p.source == "samples" else list(p.paths or [])
            for x in paths:
                if str(x) not in checksums:
                    checksums[str(x)] = file_checksum(Path(x))
            parts += [(str(x), checksums[str(x)]) for x in paths] + [p.fmt]
        elif p.source == "yfinance":
            if p.end is None or p.end >= datetime.now(UTC).date() - timedelta(days=1):
                return None
    else:
        assert p.start is not None and p.end is not None
        lo = datetime(p.start.year, p.start.month, p.start.day, tzinfo=UTC)
        lo -= timedelta(days=FINGERPRINT_LOOKBACK_DAYS)
        hi = datetime(p.end.year, p.end.month, p.end.day, tzinfo=UTC) + timedelta(days=1)
        for symbol in p.symbols:
            for interval, *_ in stored_intervals(con, symbol):
                parts.append((symbol, interval, bars_version(con, symbol, interval, lo, hi)))
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


class ChunkFailed(Exception):
    """A chunk had failed partitions: its marker must not be cached. Carries the chunk's rows."""

    def __init__(self, message: str, rows: Rows, failures: Rows) -> None:
        super().__init__(message, rows, failures)  # all in args: the exception pickles whole
        self.message, self.rows, self.failures = message, rows, failures

    def __str__(self) -> str:
        return self.message


def chunk_body(stage: str, params: dict[str, Any], runner: Any) -> tuple[Rows, Rows]:
    """Run one ingest or features chunk; returns (partition rows, failures)."""
    p = validate_params(**params)
    # Thread runner: the stage flow's body runs inside the backfill flow run, so its partition tasks
    # are submitted to the backfill's own runner. A subflow per chunk cost ~1 s of orchestration
    # (flow-run API round-trips on the temporary server, and joining its heartbeat thread, which
    # sleeps in 1 s steps). Dask keeps a subflow per chunk: its runner is set per flow run.
    inline = runner is None
    if stage == "ingest":
        return run_ingest_stage(p, runner, inline=inline)
    result, fails, _ = run_features_stage(p, p.symbols, runner, missing_ok=True, inline=inline)
    return (result["partitions"] if result else []), fails


def chunk_task(runner: Any) -> Any:
    """The cached Prefect task that runs one (stage, chunk) with ``runner``: a finished chunk is one hit.

    Its cache key is its inputs: stage, chunk bounds, the pipeline parameters and the chunk's
    content fingerprint. A chunk with failed partitions raises :class:`ChunkFailed`, so it is never
    cached; the exception carries the chunk's rows back.
    """
    from prefect import task
    from prefect.cache_policies import INPUTS

    @task(
        name="backfill-chunk",
        task_run_name="backfill-{stage}-{start}",
        cache_policy=INPUTS,
        cache_expiration=timedelta(days=30),
        persist_result=True,
        retries=0,
    )
    def backfill_chunk(stage: str, start: str, end: str, fingerprint: str, params: dict[str, Any]) -> Rows:
        rows, fails = chunk_body(stage, params, runner)
        marker = [{"status": r.get("status"), "symbol": r.get("symbol")} for r in rows]
        if fails:
            raise ChunkFailed(f"{len(fails)} failed partition(s) in {stage} {start}..{end}", marker, fails)
        return marker

    return backfill_chunk


class InProcessRunner:
    """Each window in this process: a cached ``backfill-chunk`` task per (stage, chunk)."""

    times_stages = True

    def __init__(self, settings: BackfillSettings) -> None:
        if settings.stage in ("ingest", "all") and settings.source == "warehouse":
            raise ConfigError("source 'warehouse' has nothing to ingest; use --stage features")
        self.settings = settings
        self.summary_extra: dict[str, Any] = {"task_runner": settings.task_runner}
        self._done: list[WindowResult] = []
        self._params: dict[tuple[str, date], PipelineParams] = {}
        self._fingerprints: dict[tuple[str, date], str | None] = {}
        self._code = ""
        self._runner: Any = None
        self._task: Any = None

    def params(self, lo: date, hi: date) -> PipelineParams:
        """The pipeline parameters of one ingest or features chunk."""
        s = self.settings
        return validate_params(
            symbols=s.symbols, start=lo, end=hi, source=s.source, interval=s.interval, seed=s.seed,
            evaluate=False, name="backfill", warehouse=s.warehouse,
        )  # fmt: skip

    @contextmanager
    def open(self) -> Iterator[None]:
        """Create the warehouse up front (when ingesting), and hold the task runner."""
        if self.settings.stage in ("ingest", "all"):
            from warehouse.resource import Warehouse

            with Warehouse.at(self.params(self.settings.start, self.settings.end).wh_path()).writing():
                pass  # create and migrate a new warehouse
        self._code = chunk_code_hash()
        with task_runner_for(self.settings.task_runner) as runner:
            self._runner, self._task = runner, chunk_task(runner)
            yield

    def begin_stage(self, stage: str, windows: list[Window]) -> None:
        """Fingerprint every chunk of the stage at its start (one warehouse session)."""
        if stage == "evaluate":
            return
        plist = [self.params(lo, hi) for lo, hi in windows]
        self._params.update(((stage, p.start), p) for p in plist if p.start is not None)
        keys = [(stage, lo) for lo, _ in windows]
        self._fingerprints.update(zip(keys, chunk_fingerprints(stage, plist, self._code), strict=True))

    def submit(self, stage: str, window: Window) -> None:
        """Run the window now; its result is ready for :meth:`finished`."""
        t0 = time.perf_counter()
        if stage == "evaluate":
            self._done.append(self._evaluate(window, t0))
            return
        rows, fails = self._run_chunk(stage, self._params[(stage, window[0])])
        item = chunk_item(stage, window, rows, fails, t0)
        bad = sum(r.get("status") in ("failed", "blocked") for r in rows)
        counts = {k: item[k] for k in ("partitions", "cached", "failed")} | {"ok": item["partitions"] - bad}
        self._done.append(WindowResult(window, item, fails, counts))

    def finished(self, block: bool) -> Iterator[WindowResult]:
        """The windows run since the last call (every window has finished when submit returns)."""
        done, self._done = self._done, []
        yield from done

    def _run_chunk(self, stage: str, p: PipelineParams) -> tuple[Rows, Rows]:
        assert p.start is not None and p.end is not None
        fingerprint = self._fingerprints[(stage, p.start)]
        params = p.model_dump(mode="json")
        if fingerprint is None:  # nothing stable to key on: run the stage flow directly
            return chunk_body(stage, params, self._runner)
        start, end = p.start.isoformat(), p.end.isoformat()
        state = self._task(stage, start, end, fingerprint, params, return_state=True)
        if state.is_failed():
            error = state.result(raise_on_failure=False)
            if isinstance(error, ChunkFailed):
                return error.rows, error.failures
            return [], [{"stage": stage, "symbol": None, "partition": f"{start}..{end}", "error": str(error)}]
        rows = state.result()
        if state.name == "Cached":  # the marker of a chunk that finished earlier, nothing was run
            return [{**r, "status": "cached"} for r in rows], []
        return rows, []

    def _evaluate(self, window: Window, t0: float) -> WindowResult:
        s = self.settings
        p = validate_params(
            symbols=s.symbols, source="warehouse", name="backfill", warehouse=s.warehouse,
            evaluation=EvaluationWindow(test_start=s.start, test_end=s.end - timedelta(days=1)),
        )  # fmt: skip
        out, fails = run_evaluation_stage(p, s.symbols)
        item = chunk_item("evaluate", window, [{"status": "success"}] if out else [], fails, t0)
        counts = {"partitions": 1, "ok": int(out is not None), "cached": 0, "failed": len(fails)}
        return WindowResult(window, item, fails, counts, report=(out or {}).get("report"))


class DeploymentRunner:
    """Each window as one run of a deployment, created with an idempotency key; wait for the runs.

    Needs ``PREFECT_API_URL`` pointing at a server that has the deployment and a worker serving its
    pool (``make server``). A window whose earlier run with the same key failed or crashed is
    submitted again under a ``-retry-N`` key; one still failed after :data:`SUBMIT_ATTEMPTS`
    submissions is reported as failed at once (it is not waited for). ``run_deployment`` and
    ``client`` default to Prefect's.
    """

    times_stages = False

    def __init__(
        self,
        settings: BackfillSettings,
        deployment: str = "backfill/backfill",
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        run_deployment: Callable[..., Any] | None = None,
        client: Any = None,
    ) -> None:
        self.settings, self.deployment = settings, deployment
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.summary_extra: dict[str, Any] = {"via": deployment}
        self._run_deployment, self._client = run_deployment, client
        self._base = settings.deployment_parameters()
        self._pending: dict[Any, tuple[str, Window, float]] = {}
        self._done: list[WindowResult] = []
        self._deadline: float | None = None

    @contextmanager
    def open(self) -> Iterator[None]:
        """Hold one API client for the whole backfill."""
        if self._run_deployment is None:
            from prefect.deployments import run_deployment

            self._run_deployment = run_deployment
        self._deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
        if self._client is not None:
            yield
            return
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    def begin_stage(self, stage: str, windows: list[Window]) -> None:
        """Nothing to prepare: the runs fingerprint their own chunks."""

    def submit(self, stage: str, window: Window) -> None:
        """Create the window's run (resubmitting under a retry key while its earlier runs failed)."""
        lo, hi = window
        key = idempotency_key(stage, lo, hi, {**self._base, "chunk": self.settings.chunk})
        parameters = {
            **self._base, "start": lo.isoformat(), "end": hi.isoformat(), "chunk": self.settings.chunk,
            "stage": stage,
        }  # fmt: skip
        t0 = time.perf_counter()
        assert self._run_deployment is not None
        for attempt in range(SUBMIT_ATTEMPTS):
            run = self._run_deployment(
                self.deployment,
                parameters=parameters,
                idempotency_key=key if attempt == 0 else f"{key}-retry-{attempt}",
                flow_run_name=f"backfill-{stage}-{lo}",
                timeout=0,
                as_subflow=False,
            )
            state = run.state.type.value if run.state else "SCHEDULED"
            if state not in _FINAL_BAD:
                self._pending[run.id] = (stage, window, t0)
                return
        error = (
            f"still {state} after {SUBMIT_ATTEMPTS} submissions (idempotency key {key} and its "
            f"-retry-1..-retry-{SUBMIT_ATTEMPTS - 1}); see those runs' logs"
        )
        self._done.append(self._result(stage, window, run, False, error, t0))

    def finished(self, block: bool) -> Iterator[WindowResult]:
        """Windows that ended; with ``block``, poll the API every ``poll_s`` until all have."""
        done, self._done = self._done, []
        yield from done
        while block and self._pending:
            for run_id in list(self._pending):
                run = self._client.read_flow_run(run_id)
                state = run.state
                if state is None or not state.is_final():
                    continue
                stage, window, t0 = self._pending.pop(run_id)
                error = f"{state.type.value}: {state.message}"
                yield self._result(stage, window, run, state.is_completed(), error, t0)
            if self._pending:
                if self._deadline and time.monotonic() > self._deadline:
                    raise ConfigError(
                        f"{len(self._pending)} deployment runs still pending after {self.timeout_s}s"
                    )
                time.sleep(self.poll_s)

    @staticmethod
    def _result(stage: str, window: Window, run: Any, ok: bool, error: str, t0: float) -> WindowResult:
        lo, hi = window
        item = {
            "stage": stage, "start": str(lo), "end": str(hi), "status": "done" if ok else "failed",
            "flow_run": str(run.id), "flow_run_name": run.name, "partitions": 1, "cached": 0,
            "failed": 0 if ok else 1, "seconds": round(time.perf_counter() - t0, 3),
        }  # fmt: skip
        failures = [] if ok else [
            {"stage": stage, "symbol": None, "partition": f"{lo}..{hi} (flow run {run.name})", "error": error}
        ]  # fmt: skip
        counts = {"partitions": 1, "ok": int(ok), "cached": 0, "failed": 0 if ok else 1}
        return WindowResult(window, item, failures, counts)
