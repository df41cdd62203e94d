"""``volrisk backfill``: chunking, resuming from cache, and a killed backfill that ends identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from repo_paths import REPO

from flows.backfill import idempotency_key, ingest_dependencies, plan_chunks
from warehouse.bars import bars_checksum
from warehouse.catalog import duplicate_bar_keys
from warehouse.db import session

BIN = Path(sys.executable).parent


def test_chunks_follow_calendar_boundaries() -> None:
    months = plan_chunks(date(2017, 8, 17), date(2017, 11, 3), "month")
    assert months == [
        (date(2017, 8, 17), date(2017, 9, 1)),
        (date(2017, 9, 1), date(2017, 10, 1)),
        (date(2017, 10, 1), date(2017, 11, 1)),
        (date(2017, 11, 1), date(2017, 11, 3)),
    ]
    weeks = plan_chunks(date(2024, 1, 3), date(2024, 1, 16), "week")  # 2024-01-08 is a Monday
    assert weeks == [
        (date(2024, 1, 3), date(2024, 1, 8)),
        (date(2024, 1, 8), date(2024, 1, 15)),
        (date(2024, 1, 15), date(2024, 1, 16)),
    ]
    assert len(plan_chunks(date(2017, 8, 17), date(2024, 4, 21), "day")) == 2439
    assert len(plan_chunks(date(2017, 8, 17), date(2024, 4, 21), "month")) == 81
    # A features month reads 40 days back and one day ahead: October reaches back to Aug 22 (inside the
    # Aug 17 - Sep 1 chunk) and forward to Nov 1, so it depends on every chunk here.
    assert ingest_dependencies(months[2], months) == months
    assert ingest_dependencies(months[0], months) == months[:2]
    assert idempotency_key("ingest", *months[0], {"a": 1}) == idempotency_key("ingest", *months[0], {"a": 1})
    assert idempotency_key("ingest", *months[0], {"a": 1}) != idempotency_key("ingest", *months[0], {"a": 2})


@pytest.mark.usefixtures("prefect_harness")
def test_a_finished_chunk_is_a_cache_hit(tmp_path: Path) -> None:
    from flows.pipeline_flow import backfill_flow

    wh = str(tmp_path / "wh.duckdb")
    kwargs = dict(start=date(2019, 1, 1), end=date(2019, 3, 1), symbols=["BTC-USDT"], warehouse=wh)
    first = backfill_flow(**kwargs)
    assert [(c["stage"], c["status"]) for c in first["chunks"]] == [
        ("ingest", "done"),
        ("ingest", "done"),
        ("features", "done"),
        ("features", "done"),
    ]
    with session(wh, read_only=True) as con:
        checksum = bars_checksum(con)
        n_features = con.sql("SELECT count(*) FROM features_daily").fetchall()[0][0]
    assert n_features == 59
    second = backfill_flow(**kwargs)
    assert {c["status"] for c in second["chunks"]} == {"cached"}
    with session(wh, read_only=True) as con:
        assert bars_checksum(con) == checksum
        assert con.sql("SELECT count(*) FROM features_daily").fetchall()[0][0] == n_features
    # Features alone, from bars already in the warehouse.
    only = backfill_flow(**{**kwargs, "source": "warehouse", "stage": "features"})
    assert [c["stage"] for c in only["chunks"]] == ["features", "features"]
    assert {c["status"] for c in only["chunks"]} == {"cached"}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VOLRISK_"))}
    env.update(VOLRISK_HOME=str(home), PYTHONUNBUFFERED="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def _cmd(wh: Path) -> list[str]:
    return [
        str(BIN / "volrisk"), "backfill", "--start", "2018-01-01", "--end", "2018-06-01",
        "--symbols", "BTC-USDT", "EURUSD", "--chunk", "month", "--warehouse", str(wh),
    ]  # fmt: skip


def _contents(wh: Path) -> tuple[str, int, pl.DataFrame, pl.DataFrame]:
    with session(wh, read_only=True) as con:
        feats = con.sql("SELECT * FROM features_daily ORDER BY symbol, session_date").pl()
        cross = con.sql("SELECT * FROM cross_asset_daily ORDER BY ALL").pl()
        return bars_checksum(con), duplicate_bar_keys(con), feats, cross


@pytest.mark.slow
def test_a_killed_backfill_restarted_ends_identical_to_an_uninterrupted_one(tmp_path: Path) -> None:
    ref_wh = tmp_path / "ref" / "wh.duckdb"
    ref = subprocess.run(
        _cmd(ref_wh), env=_env(tmp_path / "ref"), cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]

    wh = tmp_path / "killed" / "wh.duckdb"
    env = _env(tmp_path / "killed")
    proc = subprocess.Popen(
        _cmd(wh), env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    seen: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        seen.append(line)
        # Kill it (SIGKILL, no clean-up) once the first features chunk is done: every ingest chunk
        # and one features chunk are finished, the second features chunk is under way.
        if " features " in line and line.startswith(("done", "cached")) or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    assert sum(" ingest " in s for s in seen) == 5

    rerun = subprocess.run(_cmd(wh), env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    lines = [s for s in rerun.stdout.splitlines() if s.startswith(("done", "cached"))]
    # Finished chunks were not redone: every ingest chunk and the first features chunk are cache hits.
    assert [s.split()[0] for s in lines if " ingest " in s] == ["cached"] * 5
    assert [s.split()[0] for s in lines if " features " in s][0] == "cached"

    ref_sum, ref_dups, ref_feats, ref_cross = _contents(ref_wh)
    got_sum, got_dups, got_feats, got_cross = _contents(wh)
    assert (got_sum, got_dups) == (ref_sum, ref_dups) and got_dups == 0
    assert got_feats.equals(ref_feats) and got_feats.height > 250
    assert got_cross.equals(ref_cross)
    print(f"bars checksum uninterrupted {ref_sum} == killed+restarted {got_sum}")


class _FailedRuns:
    """``run_deployment`` whose runs (every idempotency key) are already FAILED; no API polling."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, name: str, parameters: dict, idempotency_key: str, **_: object) -> object:
        from types import SimpleNamespace

        self.keys.append(idempotency_key)
        n = len(self.keys)
        return SimpleNamespace(
            id=f"id-{n}", name=f"run-{n}", state=SimpleNamespace(type=SimpleNamespace(value="FAILED"))
        )

    def read_flow_run(self, run_id: str) -> object:
        raise AssertionError(f"waited for {run_id}, a run known to have failed")


def test_a_deployment_window_still_failed_after_its_retries_is_a_failure() -> None:
    from flows.backfill import BackfillSettings, run_backfill
    from flows.backfill_runners import SUBMIT_ATTEMPTS, DeploymentRunner

    runs = _FailedRuns()
    settings = BackfillSettings(
        start=date(2019, 1, 1), end=date(2019, 2, 1), symbols=["BTC-USDT"], stage="ingest"
    )
    summary = run_backfill(settings, DeploymentRunner(settings, run_deployment=runs, client=runs))
    assert len(runs.keys) == SUBMIT_ATTEMPTS and runs.keys[1] == f"{runs.keys[0]}-retry-1"
    assert [c["status"] for c in summary["chunks"]] == ["failed"]
    [failure] = summary["failed"]
    assert f"still FAILED after {SUBMIT_ATTEMPTS} submissions" in failure["error"]
    assert "\n" not in failure["error"] and summary["stages"]["ingest"]["failed"] == 1


def test_the_cli_exits_non_zero_when_a_deployment_window_keeps_failing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from contextlib import nullcontext

    import prefect.client.orchestration as orchestration
    import prefect.deployments as deployments
    from typer.testing import CliRunner

    from flows.cli import app

    runs = _FailedRuns()
    monkeypatch.setattr(deployments, "run_deployment", runs)
    monkeypatch.setattr(orchestration, "get_client", lambda sync_client: nullcontext(runs))
    args = ["backfill", "--start", "2019-01-01", "--end", "2019-02-01", "--symbols", "BTC-USDT"]
    out = CliRunner().invoke(app, [*args, "--stage", "ingest", "--via-deployment"])
    assert out.exit_code == 1, out.output
    assert "still FAILED after 20 submissions" in " ".join(out.output.split())
