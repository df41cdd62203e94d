"""Crash consistency: ``volrisk ingest file`` is SIGKILLed at random points, 24 times.

The child ingests six real HistData EUR/USD minute files (2017 H1, ``../shared/data``, 186,348 bars; set
``VOLRISK_CRASH_BIG_FILE=1`` to add a year of synthetic minute bars, ~525k rows, as a seventh file): one
partition per file. The children talk to one local Prefect server
(the ``make server`` set-up), so each run is quick and the kills land in the ingest itself. Each trial
starts the command on a fresh warehouse, waits until the flow has begun (its warehouse lock file exists, after
Prefect's start-up), sleeps a random fraction of the clean run's write phase and kills the whole
process group with SIGKILL. Then:

* the warehouse opens (read-only) and has no duplicate bar keys;
* every file partition (its window in the clean run's ingest log) is either fully present, with the
  clean run's row count and content hash, or absent, and no bar lies outside those windows;
* re-running the same command completes, and the checksums equal the clean run's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import WarehouseError
from tasks.sources.synthetic import generate_bars
from warehouse.bars import bars_checksum
from warehouse.catalog import duplicate_bar_keys
from warehouse.db import session

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TRIALS = 24


def _cmd(files: list[Path], wh: Path) -> list[str]:
    symbols = [a for f in files for a in ("-s", "SYN" if f.name.startswith("syn") else "EURUSD")]
    return [sys.executable, "-m", "flows.cli", "ingest", "file", *map(str, files), *symbols, "-w", str(wh)]


def _run(cmd: list[str], env: dict[str, str], kill_after: float | None = None, wh: Path | None = None) -> str:
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the kill takes the ephemeral Prefect server too
    )
    if kill_after is None:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
        return out
    assert wh is not None
    lock = wh.with_name(wh.name + ".lock")
    deadline = time.monotonic() + 300
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(kill_after)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    return f"killed (rc {proc.returncode})"


def _windows(wh: Path) -> dict[str, tuple[str, datetime, datetime]]:
    """file name -> (symbol, window start, window end) of each file partition, from the ingest log."""
    with session(wh, read_only=True) as con:
        rows = con.sql("SELECT location, symbol, window_start, window_end FROM ingest_log").fetchall()
    return {Path(loc).name: (sym, lo, hi) for loc, sym, lo, hi in rows}


def _partitions(wh: Path, windows: dict[str, tuple[str, datetime, datetime]]) -> dict[str, tuple[int, str]]:
    """file name -> (rows, content checksum) of the bars inside that file's window."""
    out = {}
    with session(wh, read_only=True) as con:
        assert duplicate_bar_keys(con) == 0
        for name, (symbol, lo, hi) in windows.items():
            n, h = con.sql(
                "SELECT count(*), coalesce(sum(hash(ts, open, high, low, close, volume)), 0)::VARCHAR "
                "FROM bars WHERE symbol = ? AND ts >= ? AND ts < ?",
                params=[symbol, lo, hi],
            ).fetchall()[0]
            out[name] = (int(n), str(h))
        total = con.sql("SELECT count(*) FROM bars").fetchall()[0][0]
    assert total == sum(n for n, _ in out.values()), "no bars outside the file partitions"
    return out


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local Prefect server for every run (as `make server` gives), so no child pays the 5-20 s
    start of an ephemeral API; killing a child never touches it."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path_factory.mktemp("prefect-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "Prefect server did not start"
            time.sleep(0.5)
    yield url
    os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def test_sigkill_at_random_points_leaves_whole_partitions(
    tmp_path: Path, shared_data: Path, prefect_server: str
) -> None:
    files = sorted((shared_data / "eurusd_m1_histdata_2017h1").glob("DAT_ASCII_EURUSD_M1_2017*.csv"))
    assert len(files) == 6
    if os.environ.get("VOLRISK_CRASH_BIG_FILE"):  # optional: add a year of synthetic minute bars (~525k rows)
        synth = generate_bars(
            "SYN", datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC), "1m", seed=7
        )
        big = tmp_path / "syn_2019_1m.csv"
        synth.bars.select(
            timestamp=synth.bars["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            open="open",
            high="high",
            low="low",
            close="close",
            volume="volume",
        ).write_csv(big)
        files.append(big)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        VOLRISK_HOME=str(tmp_path / "home"),
        PREFECT_API_URL=prefect_server,
    )

    clean = tmp_path / "clean.duckdb"
    started = time.monotonic()
    _run(_cmd(files, clean), env)
    lock_seen = clean.with_name(clean.name + ".lock").stat().st_mtime
    write_phase = max(1.0, time.time() - lock_seen - 1.0)
    total = time.monotonic() - started
    windows = _windows(clean)
    expected = _partitions(clean, windows)
    with session(clean, read_only=True) as con:
        clean_sum = bars_checksum(con)
    assert sum(n for name, (n, _) in expected.items() if name.startswith("DAT_")) == 186_348

    rng = random.Random(20170101)
    outcomes: list[tuple[float, int]] = []
    unborn = 0
    for trial in range(TRIALS):
        wh = tmp_path / f"trial{trial}.duckdb"
        delay = rng.uniform(0.0, write_phase)
        _run(_cmd(files, wh), env, kill_after=delay, wh=wh)
        try:  # the warehouse opens after the kill ...
            present = _partitions(wh, windows) if wh.exists() else {}
        except WarehouseError as exc:  # ... or, killed while creating it, says so clearly (nothing stored)
            assert "has no tables yet" in str(exc) and str(wh) in str(exc), exc
            present, unborn = {}, unborn + 1
        for name, want in expected.items():
            have = present.get(name, (0, "0"))
            assert have in ((0, "0"), want), f"trial {trial}: partial partition {name}: {have} != {want}"
        outcomes.append((delay, sum(1 for name in expected if present.get(name, (0, "0"))[0])))
        _run(_cmd(files, wh), env)  # the same command again completes ...
        with session(wh, read_only=True) as con:
            assert bars_checksum(con) == clean_sum, f"trial {trial}: rerun differs from a clean run"
        assert _partitions(wh, windows) == expected
        for leftover in tmp_path.glob(f"trial{trial}.duckdb*"):
            leftover.unlink()
    report = ", ".join(f"{d:.2f}s:{p}" for d, p in outcomes)
    print(
        f"\nclean run {total:.1f}s, write phase ~{write_phase:.1f}s; {len(outcomes)} kills "
        f"(delay after the flow began: partitions present of {len(expected)}): {report}; "
        f"{unborn} kills came before the schema was committed"
    )
    assert len(outcomes) >= 20
    assert any(0 < p < len(expected) for _, p in outcomes), "some kills landed between partitions"
