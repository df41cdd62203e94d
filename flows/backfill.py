"""``volrisk backfill``: a historical date range in chunks, in-process or as deployment runs.

How a backfill runs
-------------------
The range ``[start, end)`` is cut into chunks (a UTC day, an ISO week or a calendar month). With
``--stage all`` every chunk is ingested first, then every chunk gets its quality gate and daily
features: features of a month read 40 days of earlier bars and one day after, so building them only
once all bars of the range are stored keeps their data version (and so their cache key) stable.

- In-process (default, ``InProcessRunner``): one ``backfill`` flow run covers every chunk. Each
  (stage, chunk) is one cached ``backfill-chunk`` task that runs the body of ``ingest_flow`` or
  ``features_flow`` inside the backfill run (no subflow run per chunk with the thread runner; with
  ``--task-runner dask`` each chunk is still a subflow, whose runner is the Dask cluster). Its
  partition tasks are cached on partition keys plus a content hash and retried on transient errors
  only, as in those flows.
- ``--via-deployment`` (``DeploymentRunner``): one run of the ``backfill`` deployment per (stage,
  chunk), each created with an idempotency key derived from its parameters, so repeating the
  command never creates a second run for a chunk; the command waits for the runs and draws the same
  progress bar. A chunk whose runs are still failed after every resubmission is a failure.

One loop (:func:`run_backfill`) walks the stages and windows for both; the runners
(:mod:`flows.backfill_runners`) say how one window runs.

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
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from core.errors import ConfigError
from flows import progress

CHUNKS = ("day", "week", "month")
STAGES = ("ingest", "features", "evaluate", "all")
FEATURE_LOOKBACK_DAYS = 40  # tasks.features.LOOKBACK_DAYS, without importing polars here
#: One (stage, chunk) window: ``[start, end)``.
Window = tuple[date, date]


@dataclass(frozen=True)
class BackfillSettings:
    """What a backfill covers and how: the one typed set of ``volrisk backfill`` / ``backfill`` options."""

    start: date
    end: date
    symbols: list[str]
    source: str = "samples"
    chunk: str = "month"
    stage: str = "all"
    task_runner: str = "thread"
    interval: str | None = None
    seed: int = 0
    warehouse: str | None = None

    def stages(self) -> list[str]:
        """The stages run, in order (``all``: ingest, then features)."""
        if self.stage not in STAGES:
            raise ConfigError(f"stage {self.stage!r}: expected one of {', '.join(STAGES)}")
        return ["ingest", "features"] if self.stage == "all" else [self.stage]

    def windows(self, stage: str) -> list[Window]:
        """The chunks of a stage; evaluation is one window over the whole range."""
        return (
            [(self.start, self.end)] if stage == "evaluate" else plan_chunks(self.start, self.end, self.chunk)
        )

    def deployment_parameters(self) -> dict[str, Any]:
        """The parameters every deployment run of this backfill shares (its warehouse made absolute)."""
        return {
            "symbols": self.symbols,
            "source": self.source,
            "task_runner": self.task_runner,
            "interval": self.interval,
            "seed": self.seed,
            "warehouse": str(Path(self.warehouse).resolve()) if self.warehouse else None,
        }

    def summary_params(self) -> dict[str, Any]:
        """The ``params`` block of the summary."""
        return {
            "name": "backfill", "symbols": self.symbols, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "source": self.source, "device": "-", "chunk": self.chunk,
            "stage": self.stage,
        }  # fmt: skip


def plan_chunks(start: date, end: date, chunk: str) -> list[Window]:
    """Split ``[start, end)`` into UTC days, ISO weeks (Monday-based) or calendar months.

    The first and last chunks are clipped to the range, so chunk boundaries do not depend on the
    range: a month chunk of one backfill is the same partition as that month in any other.
    """
    if chunk not in CHUNKS:
        raise ConfigError(f"chunk {chunk!r}: expected one of {', '.join(CHUNKS)}")
    if start >= end:
        raise ConfigError(f"start {start} must be before end {end} (end is exclusive)")
    out: list[Window] = []
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


def ingest_dependencies(feature_chunk: Window, ingest_chunks: list[Window]) -> list[Window]:
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


def chunk_item(
    stage: str, window: Window, rows: list[dict[str, Any]], failures: list[dict[str, Any]], t0: float
) -> dict[str, Any]:
    """The progress/summary item of one finished (stage, chunk) run in this process."""
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
        "start": window[0].isoformat(),
        "end": window[1].isoformat(),
        "status": status,
        "partitions": len(rows),
        "cached": sum(s == "cached" for s in statuses),
        "failed": len(failures),
        "seconds": round(time.perf_counter() - t0, 3),
    }


@dataclass
class WindowResult:
    """How one (stage, window) ended: its summary item, failure rows and what it adds to the stage.

    ``counts`` holds ``partitions``, ``ok``, ``cached`` and ``failed``.
    """

    window: Window
    item: dict[str, Any]
    failures: list[dict[str, Any]]
    counts: dict[str, int]
    report: str | None = None


class WindowRunner(Protocol):
    """How one window runs: in this process or as a deployment run (see :mod:`flows.backfill_runners`).

    ``submit`` starts a window; ``finished`` yields the windows that ended since the last call
    (``block``: wait for every window submitted). ``summary_extra`` goes into the summary's params;
    ``times_stages`` says whether a stage's wall time is measured here.
    """

    summary_extra: dict[str, Any]
    times_stages: bool

    def open(self) -> AbstractContextManager[None]:
        """Hold what the whole backfill needs (a task runner, an API client) while the block runs."""
        ...

    def begin_stage(self, stage: str, windows: list[Window]) -> None:
        """Prepare a stage's windows (e.g. fingerprint its inputs once)."""
        ...

    def submit(self, stage: str, window: Window) -> None:
        """Start one window."""
        ...

    def finished(self, block: bool) -> Iterator[WindowResult]:
        """The windows that ended; with ``block``, wait until every submitted window has."""
        ...


@dataclass
class _Backfill:
    """The running totals of one backfill (returned as the summary, never kept in module state)."""

    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    failed_ingest: set[Window] = field(default_factory=set)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, stage: str, result: WindowResult) -> None:
        """Count one finished window and report it to the progress listeners."""
        totals = self.stages[stage]
        self.failures += result.failures
        if stage == "ingest" and result.failures:
            self.failed_ingest.add(result.window)
        for key, n in result.counts.items():
            totals[key] += n
        if result.report:
            totals["report"] = result.report
        self.items.append(result.item)
        progress.report("backfill", item=result.item)

    def skip(self, stage: str, window: Window, chunks: list[Window]) -> bool:
        """Skip a features window whose ingest dependencies failed (reported); True when skipped."""
        waits = [c for c in ingest_dependencies(window, chunks) if c in self.failed_ingest]
        if stage != "features" or not waits:
            return False
        lo, hi = window
        why = f"needs ingest chunk(s) that failed: {', '.join(f'{a}..{b}' for a, b in waits)}"
        self.skipped[f"features {lo}..{hi}"] = why
        item = {**chunk_item(stage, window, [], [], time.perf_counter()), "status": "skipped", "why": why}
        self.items.append(item)
        progress.report("backfill", item=item)
        return True


def run_backfill(settings: BackfillSettings, runner: WindowRunner) -> dict[str, Any]:
    """Run a backfill, one window at a time through ``runner``; returns the summary dict.

    Stages run in order, each after the previous one finished. Reports
    ``progress.report("backfill", ...)`` once with the number of steps and once per finished
    (stage, chunk) with a dict: stage, start, end, status (done, cached, empty, failed, skipped),
    partitions, cached, failed, seconds.
    """
    t_start = time.perf_counter()
    stages = settings.stages()
    chunks = plan_chunks(settings.start, settings.end, settings.chunk)
    progress.report("backfill", total=sum(len(settings.windows(s)) for s in stages))
    run = _Backfill()
    with runner.open():
        for st in stages:
            run.stages[st] = {"partitions": 0, "ok": 0, "cached": 0, "failed": 0}
            t_stage = time.perf_counter()
            windows = settings.windows(st)
            runner.begin_stage(st, windows)
            for window in windows:
                if run.skip(st, window, chunks):
                    continue
                runner.submit(st, window)
                for result in runner.finished(block=False):
                    run.record(st, result)
            for result in runner.finished(block=True):
                run.record(st, result)
            if runner.times_stages and st != "evaluate":
                run.stages[st]["seconds"] = time.perf_counter() - t_stage
    return {
        "params": {**settings.summary_params(), **runner.summary_extra},
        "stages": run.stages,
        "chunks": run.items,
        "failed": run.failures,
        "skipped": run.skipped,
        "report": run.stages.get("evaluate", {}).get("report"),
        "wall_s": time.perf_counter() - t_start,
    }
