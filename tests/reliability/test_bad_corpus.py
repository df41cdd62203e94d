"""The bad-input corpus (tests/data/bad/, manifest EXPECTED.json): each file gets its named outcome.

A file-level problem raises the project's own error (DataError/ConfigError) whose message names the file;
a row-level problem quarantines the row with ``file:line`` and a reason while the good rows still arrive.
Nothing else may escape. ``tests/data/bad/make_bad.py`` regenerates the files and the manifest.

Beyond the committed files: a 2 GB sparse file made at test time (refused without being read: peak RSS is
measured), and the formula-injection file pushed through the CLI and the quality report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core import errors
from core.errors import VolriskError
from tasks.sources.files import read_bars_file

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
EXPECTED: dict[str, dict[str, Any]] = json.loads((BAD / "EXPECTED.json").read_text())
INJECTION = "=cmd|' /C calc'!A0"


def test_corpus_is_complete() -> None:
    on_disk = {p.name for p in BAD.iterdir()} - {"EXPECTED.json", "make_bad.py", "README.md"}
    assert on_disk == set(EXPECTED), "every bad file has an expected outcome, and every outcome a file"
    assert len(EXPECTED) >= 30
    assert sum(p.stat().st_size for p in BAD.iterdir()) < 256 * 1024, "keep the committed corpus small"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_outcome(name: str) -> None:
    spec = EXPECTED[name]
    path = BAD / name
    kwargs = {"symbol": "BTC-USD", "fmt": spec.get("format"), "interval": spec.get("interval")}
    if spec["outcome"] == "error":
        with pytest.raises(VolriskError) as info:
            read_bars_file(path, **kwargs)
        assert type(info.value) is getattr(errors, spec["error"]), info.value
        assert spec["match"] in str(info.value)
        if spec["error"] == "DataError" or "--interval" in spec["match"]:
            assert str(path) in str(info.value), "the message names the file"
        return
    result = read_bars_file(path, **kwargs)
    reasons = result.quarantine["reason"].to_list()
    assert any(spec["reason"] in r for r in reasons), reasons
    for extra in spec.get("also", []):
        assert any(extra in r for r in reasons), reasons
    assert result.bars.height == spec["bars"]
    assert result.quarantine["location"].str.starts_with(f"{path}:").all()
    assert result.bars.height + result.quarantine.height == result.lines_read - 1 * (
        spec["format"] != "histdata"
    )


_SPARSE_PROBE = """
import resource, sys
from core.errors import VolriskError
from tasks.sources.files import read_bars_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_bars_file(sys.argv[1], symbol="BTC-USD", fmt=sys.argv[2] if sys.argv[2] != "-" else None)
    print("ACCEPTED")
except VolriskError as exc:
    print("REFUSED", exc)
print("RSS_KB", before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.parametrize(("suffix", "fmt"), [(".csv", "-"), (".parquet", "-")])
def test_two_gigabyte_sparse_file_is_refused_without_reading_it(
    tmp_path: Path, suffix: str, fmt: str
) -> None:
    big = tmp_path / f"huge{suffix}"
    subprocess.run(["truncate", "-s", "2G", str(big)], check=True)
    assert big.stat().st_size == 2 * 2**30 and big.stat().st_blocks < 100  # sparse: no disk used
    out = subprocess.run(
        [sys.executable, "-c", _SPARSE_PROBE, str(big), fmt],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    assert "REFUSED" in out.stdout and str(big) in out.stdout and "limit" in out.stdout, out.stdout
    before, after = (int(x) for x in out.stdout.split("RSS_KB")[1].split())
    assert after - before < 100 * 1024, f"refusing a 2 GB file grew RSS by {(after - before) / 1024:.0f} MiB"


@pytest.mark.usefixtures("prefect_harness")
def test_formula_injection_never_reaches_output_unescaped(tmp_path: Path) -> None:
    """A formula in a symbol is refused; in a field it is quarantined, and shown as literal text only."""
    from typer.testing import CliRunner

    from core.symbols import validate_symbol
    from flows.cli import app, print_ingest_summary
    from tasks.quality_report import _md

    for symbol in (INJECTION, "=A1", "-2", "=HYPERLINK"):
        with pytest.raises(errors.ConfigError, match="invalid symbol"):
            validate_symbol(symbol)
    runner = CliRunner()
    res = runner.invoke(
        app, ["ingest", "file", str(BAD / "empty.csv"), "-s", INJECTION, "-w", str(tmp_path / "w")]
    )
    assert res.exit_code == 2 and "invalid symbol" in res.output

    # The quarantine note carries the raw text; the CLI prints it literally (no rich markup, which would
    # otherwise eat "[/dim]"-style text or crash on an unmatched closing tag).
    hostile = tmp_path / "hostile.csv"
    hostile.write_text((BAD / "formula_injection.csv").read_text() + "[/x][bold]=1+1,1,2,0.5,1.5,1\n")
    result = read_bars_file(hostile, symbol="BTC-USD", fmt="ftx")
    row = {"symbol": "BTC-USD", "location": str(hostile), "status": "success", "notes": result.notes}
    import io

    from rich.console import Console

    import flows.cli as cli

    buffer = io.StringIO()
    original = cli.console
    cli.console = Console(file=buffer, width=400, color_system=None)
    try:
        print_ingest_summary([row, {**row, "status": "failed", "error": "DataError: [/x] " + INJECTION}])
    finally:
        cli.console = original
    shown = buffer.getvalue()
    assert INJECTION in shown and "[/x][bold]=1+1" in shown and "DataError: [/x]" in shown
    # The markdown report escapes the pipe that would otherwise split a table cell.
    assert _md(INJECTION) == INJECTION.replace("|", "\\|")
