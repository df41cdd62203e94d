"""A dead Prefect API: the CLI says so in one line and suggests running in-process, without hanging."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never answers: a hung server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def _run_cli(tmp_path: Path, api_url: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "VOLRISK_HOME": str(tmp_path / "home"),
    }
    args = ["ingest", "synthetic", "AAA", "--start", "2024-01-01", "--end", "2024-01-02"]
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args, "-w", str(tmp_path / "w.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    return out, time.monotonic() - started


@pytest.mark.parametrize("kind", ["closed-port", "silent-server"])
def test_unreachable_api_is_reported_with_advice(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    port = _closed_port() if kind == "closed-port" else request.getfixturevalue("silent_server")
    url = f"http://127.0.0.1:{port}/api"
    out, elapsed = _run_cli(tmp_path, url)
    text = " ".join((out.stderr + out.stdout).split())
    assert out.returncode == 2, text
    assert f"Prefect API at {url} is unreachable" in text, text
    assert "unset PREFECT_API_URL" in text and "in-process" in text
    assert "Traceback" not in text
    assert elapsed < 30, f"took {elapsed:.0f}s: the probe must time out quickly"
    assert not (tmp_path / "w.duckdb").exists(), "nothing was started against the dead API"


def test_probe_is_silent_without_an_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.runtime import check_prefect_api

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        check_prefect_api(timeout=0.5)  # ephemeral mode: nothing to probe, no error
