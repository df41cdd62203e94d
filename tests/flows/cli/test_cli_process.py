"""The command line as a user meets it, in real child processes (issue 14).

* Argument mistakes answer with one line and exit 2 before Prefect or torch is imported (so before
  any flow run or temporary server): the child refuses to import either.
* Ctrl-C during an ingest: exit 130, one line, no traceback; finished partitions stay, the one being
  written is rolled back, and the warehouse reopens consistent.
* A failing command prints no ``nanobind: leaked`` lines (DuckDB objects kept alive by a traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from repo_paths import REPO

from tasks.config import get_settings

CHILD = Path(__file__).with_name("_child.py")
HISTDATA = REPO.parent / "shared" / "data" / "eurusd_m1_histdata_2017h1"
BTC = REPO / "data" / "samples" / "BTC_USDT-1h_binance_2017_2024.csv"


def _run(mode: str, args: list[str], home: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VOLRISK_HOME": str(home),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
    }
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, str(CHILD), mode, *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


BAD_ARGUMENTS = [
    (["ingest", "file", str(BTC), "--symbol", "EUR/USD"], "invalid symbol 'EUR/USD'"),
    (["ingest", "file", "/no/such.csv", "--symbol", "X"], "does not exist"),
    (["ingest", "file", str(BTC), "--symbol", "X", "--format", "lean"], "--format 'lean' is unknown"),
    (["ingest", "file", str(BTC), "--symbol", "A,B"], "repeats for more: --symbol A --symbol B"),
    (["ingest", "file", str(BTC), str(BTC), str(BTC), "-s", "A", "-s", "B"], "one --symbol for all 3 files"),
    (["ingest", "file", str(BTC), "-s", "X", "-f", "generic", "--column", "open"], "expected KEY=VALUE"),
    (["ingest", "synthetic", "S1", "--start", "2024-02-01", "--end", "2024-01-01"], "is after --end"),
    (["ingest", "realized", "/no/such.csv"], "does not exist"),
    (["features", "NOPE"], "does not exist"),
    (["evaluate", "BTC-USDT", "-m", "nosuch"], "unknown models ['nosuch']"),
    (["evaluate", "BTC-USDT", "--window", "sliding"], "--window 'sliding'"),
    (["evaluate", "BTC-USDT", "--config", "{bad"], "--config is not valid JSON"),
    (["evaluate", "BTC-USDT", "--config", '{"nosuch": {}}'], "--config names unknown models"),
    (["evaluate", "BTC-USDT", "--refit-every", "0"], "--refit-every 0"),
    (["train", "nosuch", "BTC-USDT", "--train-end", "2022-12-31"], "unknown models ['nosuch']"),
    (["train", "har", "BTC-USDT", "--train-end", "2022-13-01"], "--train-end '2022-13-01' is not a date"),
    (["predict", "har-x", "--start", "2023-02-01", "--end", "2023-01-01"], "is after --end"),
    (["report", "weekly"], "does not exist"),
    (["backfill", "--start", "2024-01-01", "--end", "2024-02-01", "--symbols", "EUR/USD"], "invalid symbol"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_ARGUMENTS, ids=[" ".join(a[:2]) for a, _ in BAD_ARGUMENTS])
def test_argument_errors_answer_before_prefect_or_torch_load(
    args: list[str], message: str, tmp_path: Path
) -> None:
    out = _run("no-heavy", args, tmp_path, timeout=60)
    lines = _error_lines(out.stderr)
    assert out.returncode == 2, out.stderr
    assert len(lines) <= 3 and lines[0].startswith("error:"), out.stderr  # one message (rich may wrap it)
    assert message in " ".join(lines), out.stderr
    assert "imported before" not in out.stderr and "Traceback" not in out.stderr


def test_stored_state_is_checked_before_any_flow(tmp_path: Path) -> None:
    """With a warehouse that has bars but no features, evaluate/train/predict say what to run first."""
    ok = _run("plain", ["ingest", "file", str(BTC), "-s", "BTC-USDT", "--start", "2024-01-01"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    for args, message in (
        (["evaluate", "BTC-USDT"], "run `volrisk features BTC-USDT`"),
        (["train", "har", "BTC-USDT", "--train-end", "2024-03-01"], "run `volrisk features BTC-USDT`"),
        (["predict", "har-x", "--start", "2024-01-01", "--end", "2024-02-01"], "model run 'har-x' not found"),
        (["features", "SPY"], "SPY has neither bars nor realized measures in the warehouse"),
        (["report"], "no stored evaluation"),
    ):
        out = _run("no-heavy", args, tmp_path, timeout=60)
        assert out.returncode == 2 and message in out.stderr.replace("\n", " "), (args, out.stderr)


def _stored(home: Path) -> tuple[int, list[tuple[str, int | None, str | None]]]:
    """(bars stored, ingest_log (status, rows, error) in order)."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        bars = con.sql("SELECT count(*) FROM bars").fetchall()[0][0]
        log = con.sql("SELECT status, rows, error FROM ingest_log ORDER BY started_at").fetchall()
    return bars, log


@pytest.fixture(scope="module")
def histdata_files() -> list[str]:
    if not HISTDATA.is_dir():
        pytest.skip("../shared/data is absent")
    return [str(p) for p in sorted(HISTDATA.glob("*.csv"))]


@pytest.mark.parametrize("mode", ["sigint-after-first", "interrupt-in-write"])
def test_ctrl_c_stops_at_once_with_one_line_and_nothing_partial(
    mode: str, histdata_files: list[str], tmp_path: Path
) -> None:
    out = _run(mode, ["ingest", "file", *histdata_files, "--symbol", "EURUSD"], tmp_path)
    assert out.returncode == 130, out.stderr
    assert "Traceback" not in out.stderr and "EventsWorker" not in out.stderr
    assert [line for line in _error_lines(out.stderr) if "interrupted" in line] == [
        "interrupted; finished partitions are kept, rerun to resume"
    ]
    bars, log = _stored(tmp_path)
    assert [status for status, _, _ in log][:1] == ["success"] and all(st != "running" for st, _, _ in log)
    assert sum(1 for st, _, _ in log if st == "success") == 1  # January finished, nothing after it did
    assert bars == log[0][1]  # exactly January's rows: February was rolled back or never began
    if mode == "interrupt-in-write":
        assert (
            log[1][0] == "failed"
            and log[1][2] == "interrupted (Ctrl-C); the partition's write was rolled back"
        )
    again = _run("plain", ["ingest", "file", *histdata_files, "--symbol", "EURUSD"], tmp_path)
    assert again.returncode == 0, again.stderr  # the rerun resumes: every month, none twice
    bars, _ = _stored(tmp_path)
    assert bars == 186_348  # the MANIFEST's row count of the six files
    get_settings.cache_clear()


def test_a_failing_flow_run_prints_no_nanobind_leaks(tmp_path: Path) -> None:
    """The error surfaces inside a Prefect flow run (a temporary server: ~10 s), which keeps it to exit."""
    out = _run(
        "error-in-flow", ["ingest", "file", "/no/such.csv", "--symbol", "BTC-USDT", "--prefect"], tmp_path
    )
    assert out.returncode == 2, out.stderr
    assert "does not exist" in out.stderr
    assert "leaked" not in out.stderr and "nanobind" not in out.stderr, out.stderr[-2000:]
