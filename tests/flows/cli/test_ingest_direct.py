"""In-process ingest (no Prefect server) does what the flow does, with the same retry rule (issue 14)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest
from repo_paths import REPO

from core.errors import DataError, TransientError
from flows.cli_common import release as _release
from flows.ingest_flow import IngestRequest, PartitionCall, _run_direct, ingest_direct, ingest_flow
from warehouse.bars import bars_checksum
from warehouse.db import session

SPY = [str(REPO / "data" / "samples" / f"nt-spy-minute-2011-0{m}.csv") for m in (1, 3)]


class _Flaky:
    """A stand-in Prefect task whose ``fn`` fails ``failures`` times with ``error`` first."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def fn(self, *args: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {"status": "success", "args": args}


def _call(task: _Flaky) -> PartitionCall:
    return PartitionCall(task, ("a",), {"symbol": "X", "location": "f.csv"})  # type: ignore[arg-type]


def test_transient_errors_are_retried_with_the_task_delays() -> None:
    slept: list[float] = []
    task = _Flaky(2, TransientError("database is locked"))
    row = _run_direct(_call(task), slept.append)
    assert row == {"status": "success", "args": ("a",)} and task.calls == 3 and slept == [1, 4]
    gone = _Flaky(9, TransientError("database is locked"))
    row = _run_direct(_call(gone), slept.append)
    assert row["status"] == "failed" and gone.calls == 4  # 1 try + 3 retries, as the Prefect task


def test_bad_data_is_never_retried() -> None:
    slept: list[float] = []
    task = _Flaky(1, DataError("f.csv line 3: high < low"))
    row = _run_direct(_call(task), slept.append)
    assert task.calls == 1 and slept == []
    assert row["status"] == "failed" and row["error"] == "DataError: f.csv line 3: high < low"
    assert row["symbol"] == "X" and row["location"] == "f.csv"


def test_direct_and_flow_ingest_store_identical_bars(tmp_path: Path, prefect_harness: None) -> None:
    direct, flowed = tmp_path / "direct.duckdb", tmp_path / "flow.duckdb"
    rows = ingest_direct(IngestRequest(["SPY"], paths=SPY, fmt="ninjatrader", warehouse=str(direct)))
    flow_rows = ingest_flow(symbols=["SPY"], paths=SPY, fmt="ninjatrader", warehouse=str(flowed))
    key = lambda r: r["location"]  # noqa: E731
    assert [(r["new"], r["quarantined"]) for r in sorted(rows, key=key)] == [
        (r["new"], r["quarantined"]) for r in sorted(flow_rows, key=key)
    ]
    with session(direct, read_only=True) as a, session(flowed, read_only=True) as b:
        assert bars_checksum(a) == bars_checksum(b) and bars_checksum(a).startswith(
            str(sum(r["new"] for r in rows))
        )
    again = ingest_direct(IngestRequest(["SPY"], paths=SPY, fmt="ninjatrader", warehouse=str(direct)))
    assert sum(r["new"] + r["updated"] for r in again) == 0  # idempotent: nothing rewritten


def test_release_drops_what_a_traceback_keeps_alive() -> None:
    class Held:
        pass

    def fail() -> None:
        held = Held()
        ref.append(weakref.ref(held))
        raise ValueError("boom")

    ref: list[weakref.ref[Held]] = []
    try:
        fail()
    except ValueError as exc:
        kept = exc
    gc.collect()
    assert ref[0]() is not None  # the frame in the traceback still holds it
    _release(kept)
    assert ref[0]() is None
    with pytest.raises(ValueError):
        raise kept
