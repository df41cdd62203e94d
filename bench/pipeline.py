"""Benchmark: backfill through ingest, quality and features, cold then warm, and Prefect's overhead.

Inputs: two years of the real BTC/USDT hourly bars (data/samples, 2022-04-01..2024-04-01, 24 month
chunks) and 30 days of seeded synthetic 1-minute bars for 3 symbols (2024-03-01..2024-03-31). Both go
through ``backfill_flow`` (ingest pass, then quality gate + daily features pass) in a fresh
warehouse and a fresh ``PREFECT_HOME``, in this process, with the thread task runner.

- cold: first run on an empty warehouse; warm: the same runs again (unchanged inputs: cache hits);
- orchestration overhead: wall time minus the time covered by task bodies (the union of the
  intervals during which at least one task body was running; task bodies are timed by wrapping
  each task's ``fn``). It is reported per task run too.

The temporary Prefect server (ephemeral mode) is started before timing and reported separately.
Targets: warm <= 10% of cold; overhead <= 25% of cold.

Chunking: ``chunk="month"`` (the CLI default), so 24 + 1 ingest chunks and 24 + 1 features chunks.
Since issue 6, a backfill with the thread runner is one flow run: each chunk's partition tasks run
inside it instead of in an ``ingest``/``features`` subflow per chunk (each subflow cost ~1 s: flow
run API round-trips plus joining its heartbeat thread), and each stage's chunk fingerprints are
taken in one warehouse session. The workload (tasks, partitions, caching) is unchanged.

Run: ``.venv/bin/python bench/pipeline.py`` (or ``make bench``).
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

HOME = Path(tempfile.mkdtemp(prefix="volrisk-bench-pipeline-"))
os.environ["VOLRISK_HOME"] = str(HOME)  # before flows/ reads settings: Prefect home inside it
os.environ.pop("PREFECT_HOME", None)
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")  # DQ warnings would flood the figures
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# On a loaded machine the temporary server can take longer than Prefect's default 20 s to answer.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WARM_TARGET = 0.10
OVERHEAD_TARGET = 0.25
BTC = dict(start=date(2022, 4, 1), end=date(2024, 4, 1), symbols=["BTC-USDT"], source="samples")
SYN = dict(
    start=date(2024, 3, 1),
    end=date(2024, 3, 31),
    symbols=["SYN1", "SYN2", "SYN3"],
    source="synthetic",
    interval="1m",
    seed=42,
)

_lock = threading.Lock()
_intervals: list[tuple[float, float]] = []


def _timed(fn: Any) -> Any:
    @functools.wraps(fn)  # keeps the task's source (its cache key) unchanged
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                _intervals.append((t0, time.perf_counter()))

    return wrapper


def instrument() -> None:
    """Time the body of every task the backfill runs (in this process: the thread runner)."""
    import flows.steps.features as f
    import flows.steps.ingest as i
    import flows.steps.quality as q

    for t in (
        i.ingest_file_task,
        i.ingest_synthetic_task,
        q.check_bars_partition,
        q.check_features_partition,
        f.build_features_partition,
        f.build_cross_asset,
    ):
        t.fn = _timed(t.fn)


def covered(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] during which at least one interval is open."""
    total, cur_lo, cur_hi = 0.0, None, None
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi):
        if cur_hi is None or a > cur_hi:
            if cur_hi is not None:
                total += cur_hi - cur_lo
            cur_lo, cur_hi = a, b
        else:
            cur_hi = max(cur_hi, b)
    if cur_hi is not None:
        total += cur_hi - cur_lo
    return total


def run_once(label: str) -> dict[str, Any]:
    from flows.pipeline_flow import backfill_flow

    wh = str(HOME / "warehouse.duckdb")
    _intervals.clear()
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    chunks: list[dict[str, Any]] = []
    for spec in (BTC, SYN):
        state = backfill_flow(**spec, chunk="month", stage="all", warehouse=wh, return_state=True)
        summary = state.result(raise_on_failure=False)
        chunks += summary["chunks"]
        if summary["failed"]:
            print(f"{label}: {len(summary['failed'])} failed partitions, e.g. {summary['failed'][:2]}")
    wall = time.perf_counter() - t0
    body = covered(_intervals, t0, t0 + wall)
    statuses = [c["status"] for c in chunks]
    return {
        "wall": wall,
        "load": load,
        "body": body,
        "overhead": wall - body,
        "tasks": len(_intervals),
        "chunks": len(chunks),
        "cached_chunks": statuses.count("cached"),
        "partitions": sum(c.get("partitions", 0) for c in chunks),
    }


def main() -> None:
    from bench._util import peak_rss_mb

    instrument()
    from prefect import flow

    @flow(name="bench-warmup")
    def warmup() -> int:
        return 1

    t0 = time.perf_counter()
    warmup()  # starts Prefect's temporary server
    startup = time.perf_counter() - t0

    cold = run_once("cold")
    warm = run_once("warm")
    from warehouse.db import session

    with session(HOME / "warehouse.duckdb", read_only=True) as con:
        bars = con.sql("SELECT symbol, count(*) FROM bars GROUP BY 1 ORDER BY 1").fetchall()
        feats = con.sql("SELECT count(*) FROM features_daily").fetchall()[0][0]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"home {HOME}; {os.cpu_count()} cpus; load average {load} (1, 5, 15 min)")
    print(
        "workload: backfill_flow chunk=month, stage=all, thread runner; one flow run per backfill "
        "(partition tasks run in it, no subflow per chunk)"
    )
    print(f"bars: {', '.join(f'{s} {n:,}' for s, n in bars)}; features_daily rows {feats:,}")
    print(f"Prefect temporary server start (not in the figures): {startup:.1f}s")
    for name, r in (("cold", cold), ("warm", warm)):
        per = r["overhead"] / r["tasks"] if r["tasks"] else float("nan")
        print(
            f"{name}: wall {r['wall']:.1f}s; task bodies {r['body']:.1f}s; orchestration overhead "
            f"{r['overhead']:.1f}s over {r['tasks']} task bodies run ({per * 1000:.0f} ms each); "
            f"{r['chunks']} chunks ({r['cached_chunks']} cache hits), {r['partitions']} partitions; "
            f"load {r['load']:.1f} at start"
        )
    warm_ratio = warm["wall"] / cold["wall"]
    over_ratio = cold["overhead"] / cold["wall"]
    print(f"warm / cold:          {warm_ratio:.3f} (target <= {WARM_TARGET:.2f})")
    print(f"overhead / cold wall: {over_ratio:.3f} (target <= {OVERHEAD_TARGET:.2f})")
    print(f"peak RSS {peak_rss_mb():.0f} MiB")
    if warm_ratio > WARM_TARGET:
        print("WARNING: warm run above target")
    if over_ratio > OVERHEAD_TARGET:
        print("WARNING: orchestration overhead above target")


if __name__ == "__main__":
    main()
