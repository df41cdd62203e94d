"""``volrisk instruments`` and the instrument checks of ingest, in real child processes (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
from repo_paths import REPO

CHILD = Path(__file__).with_name("_child.py")
BTC = REPO / "data" / "samples" / "BTC_USDT-1h_binance_2017_2024.csv"
OXFORD = REPO / "tests" / "data" / "realized" / "oxfordman_sample.csv"


def _run(args: list[str], home: Path, mode: str = "plain") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, "VOLRISK_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(REPO), "COLUMNS": "200",
    }  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, str(CHILD), mode, *args],
        env=env, capture_output=True, text=True, timeout=240, cwd=REPO,
    )  # fmt: skip


def _registered(home: Path) -> dict[str, tuple[str, str, str | None]]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT symbol, asset_class, calendar, timezone FROM instruments").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _error(out: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and lines and lines[0].startswith("error:"), out.stderr
    assert len(lines) <= 3 and "Traceback" not in out.stderr, out.stderr  # one message (rich may wrap it)
    assert "imported before" not in out.stderr, out.stderr  # answered before Prefect or torch loaded
    return " ".join(lines)


def test_an_unknown_symbol_is_refused_before_any_work(tmp_path: Path) -> None:
    out = _run(["ingest", "file", str(BTC), "-s", "6EH4", "--start", "2024-01-01"], tmp_path, "no-heavy")
    message = _error(out)
    assert "unknown instrument 6EH4" in message and "volrisk instruments set 6EH4 --asset-class" in message
    assert not (tmp_path / "warehouse.duckdb").exists()  # nothing was created, read or written


def test_ingest_options_register_and_a_registration_is_never_overwritten(tmp_path: Path) -> None:
    args = ["ingest", "file", str(BTC), "-s", "6EH4", "--start", "2024-01-01"]
    ok = _run([*args, "--asset-class", "fx", "--calendar", "fx"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert _registered(tmp_path)["6EH4"] == ("fx", "fx", "America/New_York")
    clash = _error(_run([*args, "--calendar", "XNYS"], tmp_path, "no-heavy"))
    assert "registered as fx on calendar fx" in clash and "volrisk instruments set 6EH4" in clash
    moved = _run(["instruments", "set", "6EH4", "--calendar", "CMES", "--quote", "USD"], tmp_path)
    assert moved.returncode == 0 and "calendar CMES, timezone America/Chicago" in moved.stdout, moved.stderr
    again = _run(args, tmp_path)  # a plain re-ingest keeps what the user set
    assert again.returncode == 0, again.stderr
    assert _registered(tmp_path)["6EH4"] == ("fx", "CMES", "America/Chicago")
    listed = _run(["instruments", "list"], tmp_path)
    row = next(line for line in listed.stdout.splitlines() if "6EH4" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:5] == ["6EH4", "fx", "CMES", "America/Chicago", "USD"], listed.stdout
    assert int(cells[6].replace(",", "")) > 0, listed.stdout  # its bars are counted


def test_instruments_set_then_list(tmp_path: Path) -> None:
    out = _run(
        ["instruments", "set", "ACME", "--asset-class", "equity_index", "--calendar", "XLON"], tmp_path
    )
    assert out.returncode == 0, out.stderr
    known = _run(["instruments", "set", ".N225"], tmp_path)  # a known code: its calendar, not a guess
    assert known.returncode == 0, known.stderr
    listed = _run(["instruments", "list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if "equity_index" in line}
    assert "XLON" in rows["ACME"] and "Europe/London" in rows["ACME"]
    assert "XTKS" in rows[".N225"] and "Asia/Tokyo" in rows[".N225"] and "JPY" in rows[".N225"]
    for args, message in (
        (["instruments", "set", "ACME", "--asset-class", "stock"], "--asset-class 'stock'"),
        (["instruments", "set", "ACME", "--calendar", "NYSEX"], "unknown calendar 'NYSEX'"),
        (["instruments", "set", "ACME", "--timezone", "Mars/Olympus"], "not an IANA time zone"),
        (["instruments", "set", "6EH4"], "unknown instrument 6EH4"),
    ):
        assert message in _error(_run(args, tmp_path, "no-heavy")), args


def test_realized_import_checks_and_registers_its_symbols(tmp_path: Path) -> None:
    panel = tmp_path / "vendor.csv"
    panel.write_text("date,symbol,rv\n2024-01-02,ACME,0.0001\n2024-01-03,ACME,0.0002\n")
    message = _error(_run(["ingest", "realized", str(panel)], tmp_path, "no-heavy"))
    assert "unknown instrument ACME" in message and "volrisk instruments set ACME" in message
    ok = _run(
        ["ingest", "realized", str(panel), "--asset-class", "equity_index", "--calendar", "XNYS"], tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    oxford = _run(["ingest", "realized", str(OXFORD)], tmp_path)  # known Oxford-Man codes: no options
    assert oxford.returncode == 0, oxford.stderr
    registered = _registered(tmp_path)
    assert registered["ACME"] == ("equity_index", "XNYS", "America/New_York")
    assert registered[".AEX"] == ("equity_index", "XAMS", "Europe/Amsterdam")
    assert registered[".SPX"] == ("equity_index", "XNYS", "America/New_York")
