"""``make demo``: the main job on the bundled real data (BTC/USDT, EUR/USD, SPY)."""

from __future__ import annotations

import sys
import time

from rich.console import Console

from flows.cli import app
from tasks.config import get_settings

console = Console()


def _step(title: str, args: list[str]) -> None:
    console.rule(f"[bold]{title}[/]  (volrisk {' '.join(args)})")
    t0 = time.perf_counter()
    try:
        code = app(args, standalone_mode=False)  # returns typer.Exit's code instead of raising it
    except SystemExit as exc:
        code = exc.code
    if code:
        console.print(f"[bold red]{title} failed (exit {code}); see above[/]")
        sys.exit(int(code))
    console.print(f"[dim]{title}: {time.perf_counter() - t0:.1f}s[/]")


def main() -> None:
    """Ingest the bundled samples, check them, build daily features and write the quality report."""
    settings = get_settings()
    console.print(f"warehouse: {settings.warehouse}")
    symbols = ["BTC-USDT", "EURUSD", "SPY"]
    _step("ingest bundled real data", ["ingest", "samples"])
    _step("warehouse contents", ["warehouse", "info"])
    _step("warehouse invariants and checksums", ["warehouse", "check"])
    _step("data quality gate + daily features + cross-asset", ["features", *symbols])
    report_dir = settings.reports / "demo-quality"
    _step("data-quality report", ["quality", "report", *symbols, "--out", str(report_dir)])
    console.print(f"\n[bold green]demo finished[/]; warehouse at {settings.warehouse}")
    console.print(f"data-quality report: [bold]{report_dir / 'quality_report.md'}[/]")


if __name__ == "__main__":
    main()
