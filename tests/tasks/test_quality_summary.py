"""Quality results a person can read: every symbol's warnings summarised, and ``volrisk quality show``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from core.schema import DQ_SCHEMA
from flows.cli import app
from tasks.quality_report import _dq_table, dq_summary, latest_results
from warehouse.db import session
from warehouse.quality import write_dq_results

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _row(symbol: str, month: int, check: str, success: bool, run: str = "r1", unexpected: int = 3,
         severity: str = "warning", year: int = 2011) -> dict[str, object]:  # fmt: skip
    lo = datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    hi = datetime(year + month // 12, month % 12 + 1, 1)
    return {
        "run_id": run,
        "suite": "bars",
        "partition": f"{symbol}/1h/{lo:%Y-%m-%d}..{hi:%Y-%m-%d}",
        "expectation": check,
        "column_name": "ts",
        "severity": severity,
        "success": success,
        "observed_value": json.dumps(unexpected),
        "unexpected_count": 0 if success else unexpected,
        "element_count": 500,
        "details": json.dumps({"message": f"{check}(ts): {unexpected} unexpected"}),
        "created_at": T0 + timedelta(seconds=month) + (timedelta(days=1) if run == "r2" else timedelta(0)),
    }


def _results() -> pl.DataFrame:
    """250 failing BTC months (more than the old report's 200 rows), then 5 SPY months, then passes."""
    rows = [_row("BTC-USDT", m, "return_outlier", False, year=2000) for m in range(1, 251)]
    rows += [_row("SPY", m, "bar_gaps", False, unexpected=m) for m in range(1, 6)]
    rows += [_row("SPY", m, "stale_bars", True) for m in range(1, 6)]
    rows.append(_row("EURUSD", 3, "stale_bars_severe", False, severity="error", unexpected=200))
    rows.append(_row("EURUSD", 3, "stale_bars_severe", True, run="r2"))  # fixed and rerun: passes now
    return pl.DataFrame(rows, schema=DQ_SCHEMA)


def test_the_summary_hides_no_symbol_and_counts_only_the_newest_run() -> None:
    dq = _results()
    summary = dq_summary(dq)
    spy = summary.filter(pl.col("symbol") == "SPY").row(0, named=True)
    assert (spy["check"], spy["partitions"], spy["first"], spy["last"], spy["unexpected"], spy["worst"]) == (
        "bar_gaps",
        5,
        "2011-01",
        "2011-05",
        15,
        5,
    )
    assert summary.filter(pl.col("symbol") == "BTC-USDT")["partitions"].to_list() == [250]
    assert "EURUSD" not in summary["symbol"].to_list()  # its newest run passed
    assert latest_results(dq).height == dq.height - 1
    table = "\n".join(_dq_table(dq))
    assert "| SPY | warning | bars | bar_gaps | ts | 5 | 2011-01 | 2011-05 | 15 | 5 |" in table
    assert table.count("\n| ") <= 5  # one row per (symbol, check), not one per partition


def _warehouse(tmp_path: Path, dq: pl.DataFrame | None) -> Path:
    path = tmp_path / "wh.duckdb"
    with session(path) as con:
        if dq is not None:
            write_dq_results(con, dq)
    return path


def test_quality_show_reads_dq_results(tmp_path: Path) -> None:
    wh = str(_warehouse(tmp_path, _results()))
    runner = CliRunner()
    out = runner.invoke(
        app, ["quality", "show", "SPY", "--detail", "--limit", "3", "-w", wh], env={"COLUMNS": "220"}
    )
    assert out.exit_code == 0, out.output
    assert "bar_gaps" in out.output and "BTC-USDT" not in out.output
    assert "SPY/1h/2011-01-01..2011-02-01" in out.output and "... and 2 more (raise --limit)" in out.output
    every = runner.invoke(app, ["quality", "show", "-w", wh], env={"COLUMNS": "220"})
    assert "BTC-USDT" in every.output and "SPY" in every.output and "EURUSD" not in every.output
    only = runner.invoke(app, ["quality", "show", "--check", "stale_bars", "-w", wh])
    assert only.exit_code == 0 and "no failed checks" in only.output
    bad = runner.invoke(app, ["quality", "show", "--severity", "fatal", "-w", wh])
    assert bad.exit_code == 2 and "--severity 'fatal'" in bad.output


def test_quality_show_says_what_to_run_when_there_is_nothing(tmp_path: Path) -> None:
    wh = str(_warehouse(tmp_path, None))
    out = CliRunner().invoke(app, ["quality", "show", "-w", wh])
    assert out.exit_code == 2 and "volrisk features SYMBOL" in " ".join(out.output.split())
