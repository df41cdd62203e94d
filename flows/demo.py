"""``make demo``: ``pipeline_flow`` end to end on the bundled real data (BTC/USDT, EUR/USD, SPY).

Ingest -> data-quality gate + daily features + cross-asset -> walk-forward evaluation of every model
and the LightGBM ensemble (the last two years of each symbol, refitted every 126 sessions to keep the
demo short; ``volrisk evaluate`` defaults to 63) -> report; then the data-quality report. It prints
where both reports are. A second run is almost all cache hits.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from flows.cli import app
from tasks.config import get_settings

console = Console()
SYMBOLS = ["BTC-USDT", "EURUSD", "SPY"]
#: Sessions per walk-forward fold in the demo.
DEMO_REFIT_EVERY = 126


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


def _pipeline() -> dict[str, Any]:
    from flows.cli import _run_with_progress
    from flows.pipeline_flow import EvaluationWindow, run_pipeline

    console.rule("[bold]pipeline_flow: ingest -> quality + features -> evaluate -> stack -> report[/]")
    out: dict[str, Any] = {}

    def run() -> list[dict[str, Any]]:
        out.update(
            run_pipeline(
                symbols=SYMBOLS,
                source="samples",
                evaluation=EvaluationWindow(refit_every=DEMO_REFIT_EVERY),
                name="demo",
            )
        )
        return []

    _run_with_progress(run, "pipeline partitions")
    table = Table(title="pipeline stages")
    for col in ("stage", "partitions", "ok / cached", "failed", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, s in out.get("stages", {}).items():
        ok = s.get("ok", s.get("success", 0))
        done = f"{ok} / {s.get('cached', '-')}"
        table.add_row(
            stage, str(s.get("partitions", "")), done, str(s.get("failed", 0)), f"{s.get('seconds', 0):.0f}"
        )
    console.print(table)
    for f in out.get("failed", []):
        console.print(f"[red]failed[/] {f.get('stage')} {f.get('partition')}: {f.get('error')}")
    evaluation = out.get("evaluation") or {}
    for r in evaluation.get("summary", []):
        verdict = "beats" if r["beats_har"] else "does not significantly beat"
        console.print(
            f"{r['symbol']}: best {r['best_model']} (QLIKE {r['best_qlike']:.4f}) {verdict} HAR-RV "
            f"({r['har_qlike']:.4f}); VaR95 {'pass' if r['var95_pass'] else 'FAIL'}, "
            f"VaR99 {'pass' if r['var99_pass'] else 'FAIL'}"
        )
    return out


def _quiet_prefect() -> None:
    """Prefect's run logs go to the API (and the UI), not the terminal, unless ``-v`` is given."""
    if "-v" in sys.argv[1:] or "--verbose" in sys.argv[1:]:
        return
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")


def main() -> None:
    """Run the pipeline on the bundled samples, check the warehouse, write the data-quality report."""
    _quiet_prefect()
    t0 = time.perf_counter()
    settings = get_settings()
    console.print(f"warehouse: {settings.warehouse}")
    out = _pipeline()
    _step("warehouse contents", ["warehouse", "info"])
    _step("warehouse invariants and checksums", ["warehouse", "check"])
    report_dir = settings.reports / "demo-quality"
    _step("data-quality report", ["quality", "report", *SYMBOLS, "--out", str(report_dir)])
    if out.get("failed") or not out.get("report"):
        console.print("[bold red]the pipeline reported failures (above)[/]")
        sys.exit(1)
    console.print(
        f"\n[bold green]demo finished[/] in {time.perf_counter() - t0:.0f}s; warehouse {settings.warehouse}"
    )
    console.print(f"evaluation report:   [bold]{out['report']}[/]")
    console.print(f"data-quality report: [bold]{report_dir / 'quality_report.md'}[/]")


if __name__ == "__main__":
    main()
