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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from flows import progress
from flows.cli import app  # demo is an entry point above the CLI: it runs its commands
from flows.cli_common import run_with_progress
from tasks.config import get_settings

console = Console()
SYMBOLS = ["BTC-USDT", "EURUSD", "SPY"]
#: Sessions per walk-forward fold in the demo.
DEMO_REFIT_EVERY = 126


class StageLines:
    """Plain progress lines for a log file: a stage's size, every 10% (or ``every_s``), and its end.

    A progress bar draws nothing when the output is a file, so ``make demo > log`` would be silent
    for minutes; these lines are flushed as they are written.
    """

    def __init__(
        self, stream: TextIO, clock: Callable[[], float] = time.perf_counter, every_s: float = 60.0
    ) -> None:
        self.stream, self.clock, self.every_s = stream, clock, every_s
        self.t0 = clock()
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.last: dict[str, tuple[int, float]] = {}

    def line(self, text: str) -> None:
        """Write one stamped line and flush it."""
        self.stream.write(f"[{self.clock() - self.t0:6.0f} s] {text}\n")
        self.stream.flush()

    def __call__(self, stage: str, total: int, item: dict[str, Any] | None) -> None:
        if item is None:
            self.totals[stage], self.done[stage] = total, 0
            self.last[stage] = (0, self.clock())
            self.line(f"{stage}: {total} partitions")
            return
        self.done[stage] = done = self.done.get(stage, 0) + 1
        total = self.totals.get(stage, 0)
        if total and done >= total:
            self.line(f"{stage}: {done}/{total} done")
            return
        shown, at = self.last.get(stage, (0, self.t0))
        step = max(1, total // 10) if total else 10
        if done - shown >= step or self.clock() - at >= self.every_s:
            self.last[stage] = (done, self.clock())
            self.line(f"{stage}: {done}/{total or '?'}")


@contextmanager
def stage_lines(stream: TextIO) -> Iterator[StageLines | None]:
    """Print :class:`StageLines` to ``stream`` while the block runs, unless it is a terminal."""
    if stream.isatty():
        with nullcontext():
            yield None
        return
    lines = StageLines(stream)
    with progress.listening(lines):
        yield lines


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
    from flows.pipeline_flow import run_pipeline
    from flows.stages import EvaluationWindow

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

    with stage_lines(sys.stdout):
        run_with_progress(run, "pipeline partitions")
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
