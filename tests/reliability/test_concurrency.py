"""Two ingest flows and one features flow, started at once as separate processes on one warehouse.

Each is a real ``volrisk`` command with its own in-process (ephemeral) Prefect API, as three users or
three cron jobs would start them, sharing the default ``PREFECT_HOME``. All three must complete; the row
counts must equal those of the same three commands run one after another; no lock error may reach the
user (DuckDB's one-writer rule is waited out by ``warehouse.db.writer``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse.bars import bars_checksum
from warehouse.db import session

REPO = Path(__file__).resolve().parents[2]
SPY_JAN = REPO / "data" / "samples" / "nt-spy-minute-2011-01.csv"
LOCK_WORDS = (
    "database is locked",
    "could not set lock",
    "conflicting lock",
    "lock on file",
    "locked by another",
)

pytestmark = pytest.mark.slow


def _commands(wh: Path) -> list[list[str]]:
    w = ["-w", str(wh)]
    return [
        ["ingest", "file", str(SPY_JAN), "-s", "SPY", "--format", "ninjatrader", *w],
        ["ingest", "synthetic", "AAA", "--start", "2024-01-01", "--end", "2024-03-01", *w],
        ["features", "BBB", "--no-cross-asset", *w],
    ]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp / "prefect"), VOLRISK_HOME=str(tmp / "home"))
    return env


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _counts(wh: Path) -> dict[str, object]:
    with session(wh, read_only=True) as con:
        out: dict[str, object] = {
            t: con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0]  # noqa: S608 - fixed table names
            for t in ("bars", "features_daily", "instruments", "quarantine")
        }
        out["bars_checksum"] = bars_checksum(con)
        out["per_symbol"] = con.sql("SELECT symbol, count(*) FROM bars GROUP BY 1 ORDER BY 1").fetchall()
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse that already holds BBB, so the features flow has bars from the start."""
    tmp = tmp_path_factory.mktemp("seed")
    wh = tmp / "seed.duckdb"
    args = ["ingest", "synthetic", "BBB", "--start", "2024-01-01", "--end", "2024-03-01", "-w", str(wh)]
    proc = _start(args, _env(tmp))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return wh


def test_two_ingests_and_features_at_once(tmp_path: Path, seeded: Path) -> None:
    sequential, concurrent = tmp_path / "seq.duckdb", tmp_path / "par.duckdb"
    shutil.copy(seeded, sequential)
    shutil.copy(seeded, concurrent)
    env = _env(tmp_path)

    for args in _commands(sequential):
        proc = _start(args, env)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out

    procs = [_start(args, env) for args in _commands(concurrent)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for args, proc, out in zip(_commands(concurrent), procs, outputs, strict=True):
        assert proc.returncode == 0, f"{args}: {out}"
        assert not any(word in out.lower() for word in LOCK_WORDS), f"a lock error reached the user: {out}"
        assert "Traceback" not in out, out
    assert _counts(concurrent) == _counts(sequential)
    assert _counts(concurrent)["per_symbol"] == [("AAA", 60 * 24 * 60), ("BBB", 60 * 24 * 60), ("SPY", 14180)]
