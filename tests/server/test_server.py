"""A real local Prefect server: the scheduler creates runs from cron, and a worker completes a run.

The scheduler test catches the trap in DESIGN.md: with sqlalchemy>=2.1, Prefect 3.8.8's scheduler
silently never creates runs from a cron schedule while manual runs still work.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.api = f"http://127.0.0.1:{port}/api"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "VOLRISK_HOME": str(home / "volrisk"),
            "PYTHONUNBUFFERED": "1",
        }

    def request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.api}{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "prefect"), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        script = self.home / f"script_{time.monotonic_ns()}.py"  # flows must live in a file to deploy
        script.write_text(textwrap.dedent(code))
        return subprocess.run(
            [sys.executable, str(script)],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _stop(proc: subprocess.Popen[bytes], sig: int, wait: float) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)  # the group this test started (start_new_session=True)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-server")
    srv = Server(home, _free_port())
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(srv.port)],
        env=srv.env,
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                srv.request("/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start: {(home / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        for pool in ("process", "gpu"):
            out = srv.cli("work-pool", "create", pool, "--type", "process")
            assert out.returncode == 0, out.stdout + out.stderr
        yield srv
    finally:
        _stop(proc, signal.SIGTERM, 30)
        log.close()


def _runs(server: Server, deployment_id: str) -> list[dict[str, Any]]:
    return server.request(
        "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "limit": 50}
    )


def test_the_scheduler_creates_runs_from_cron_schedules(server: Server) -> None:
    # The real deployments file deploys (four deployments, their pools and schedules) ...
    out = server.cli("--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    deployments = {d["name"]: d for d in server.request("/deployments/filter", {})}
    assert set(deployments) == {"daily-ingest", "weekly-evaluate", "weekly-stack", "backfill"}
    assert deployments["weekly-evaluate"]["work_pool_name"] == "gpu"
    crons = {n: [s["schedule"].get("cron") for s in d["schedules"]] for n, d in deployments.items()}
    assert crons == {
        "daily-ingest": ["15 0 * * *"],
        "weekly-evaluate": ["0 8 * * 0"],
        "weekly-stack": ["0 9 * * 0"],
        "backfill": [],
    }
    # ... plus a deployment with an every-minute cron schedule.
    made = server.python(
        """
        from prefect import flow
        from prefect.schedules import Cron

        @flow
        def tick() -> int:
            return 1

        print(tick.to_deployment(name="every-minute", schedules=[Cron("* * * * *")]).apply())
        """
    )
    assert made.returncode == 0, made.stderr
    minute_id = made.stdout.strip().splitlines()[-1]

    deadline = time.monotonic() + 90
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = _runs(server, minute_id)
        if len(runs) >= 2:
            break
        time.sleep(1)
    assert len(runs) >= 2, "the scheduler created no runs from '* * * * *' (sqlalchemy>=2.1?)"
    assert all(r["auto_scheduled"] and r["state_type"] == "SCHEDULED" for r in runs)
    starts = sorted(r["expected_start_time"] for r in runs)
    assert all(":00" in s[16:19] for s in starts), starts  # on minute boundaries

    # The scheduled daily-ingest runs carry no date: each resolves it from its scheduled start.
    daily = _runs(server, deployments["daily-ingest"]["id"])
    assert daily, "no scheduled daily-ingest runs"
    assert all("day" not in r["parameters"] for r in daily)
    assert all(r["expected_start_time"][11:16] == "00:15" for r in daily)


@pytest.mark.slow
def test_a_parameterized_deployment_run_completes_on_a_worker(server: Server, tmp_path: Path) -> None:
    if not any(d["name"] == "backfill" for d in server.request("/deployments/filter", {})):
        yaml = "deployments/prefect.yaml"
        out = server.cli("--no-prompt", "deploy", "--name", "backfill", "--prefect-file", yaml)
        assert out.returncode == 0, out.stdout + out.stderr
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "process", "--type", "process"],
        env=server.env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wh = tmp_path / "wh.duckdb"
    try:
        # As from the UI's "Custom run" form or `prefect deployment run ... --param`.
        out = server.cli(
            "deployment", "run", "backfill/backfill",
            "--param", 'symbols=["SYN1"]', "--param", "source=synthetic",
            "--param", "start=2024-01-01", "--param", "end=2024-01-15",
            "--param", "chunk=week", "--param", f"warehouse={wh}",
            "--watch", "--watch-timeout", "240",
            timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "Completed" in out.stdout
        runs = server.request("/flow_runs/filter", {"flow_runs": {"name": {"like_": "%"}}, "limit": 200})
        backfills = [r for r in runs if r["deployment_id"] and r["parameters"].get("warehouse") == str(wh)]
        assert [r["state_type"] for r in backfills] == ["COMPLETED"]
        arts = server.request("/artifacts/filter", {"artifacts": {"key": {"any_": ["backfill-summary"]}}})
        assert "all partitions succeeded" in arts[0]["data"]

        # --via-deployment: one run per (stage, chunk) with an idempotency key; repeating the
        # command creates no new run.
        cmd = [
            str(BIN / "volrisk"), "backfill", "--start", "2024-01-01", "--end", "2024-01-15",
            "--symbols", "SYN1", "--source", "synthetic", "--chunk", "week", "-w", str(wh),
            "--via-deployment",
        ]  # fmt: skip
        first = subprocess.run(cmd, env=server.env, cwd=REPO, capture_output=True, text=True, timeout=400)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        n_runs = len(server.request("/flow_runs/filter", {"limit": 200}))
        again = subprocess.run(cmd, env=server.env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout[-3000:]
        assert len(server.request("/flow_runs/filter", {"limit": 200})) == n_runs
    finally:
        _stop(worker, signal.SIGINT, 30)  # workers stop on SIGINT, not SIGTERM
        log.close()
