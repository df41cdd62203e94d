"""``volrisk backfill``: the command over :func:`flows.backfill.run_backfill` (see :mod:`flows.backfill`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from core.errors import ConfigError
from flows import preflight, progress
from flows.backfill import STAGES, BackfillSettings, plan_chunks
from flows.cli_common import console, err_console, friendly_errors

_SOURCES = ("samples", "synthetic", "yfinance", "warehouse")


def _print_item(item: dict[str, Any]) -> None:
    """One line per finished (stage, chunk)."""
    colour = {"failed": "red", "skipped": "yellow", "cached": "dim"}.get(item["status"], "green")
    extra = f" ({item['partitions']} partitions, {item['cached']} cached)" if "partitions" in item else ""
    if item.get("flow_run_name"):
        extra += f" run {item['flow_run_name']}"
    if item.get("why"):
        extra += f": {item['why']}"
    console.print(
        f"[{colour}]{item['status']:<7}[/] {item['stage']:<8} {item['start']}..{item['end']}"
        f"{extra} {item.get('seconds', 0):.1f}s"
    )


def _symbols(values: list[str], extra: list[str]) -> list[str]:
    out: list[str] = []
    for raw in [*values, *extra]:
        if raw.startswith("-"):
            raise ConfigError(f"unexpected option {raw!r}")
        out += [s for s in raw.split(",") if s]
    if not out:
        raise ConfigError("give at least one symbol: --symbols BTC-USDT EURUSD SPY")
    return list(dict.fromkeys(out))


def _settings(
    start: str, end: str, symbols: list[str], extra: list[str], source: str, chunk: str, stage: str,
    task_runner: str, interval: str | None, seed: int, warehouse: Path | None,
) -> BackfillSettings:  # fmt: skip
    """Check the options (before Prefect is imported) and gather them."""
    lo, hi = preflight.parse_date(start, "start"), preflight.parse_date(end, "end")
    assert lo is not None and hi is not None
    syms = preflight.symbols(_symbols(symbols, extra))
    preflight.choice(source, _SOURCES, "--source")
    plan_chunks(lo, hi, chunk)  # refuse a bad range or chunk before starting Prefect
    if stage not in STAGES:
        raise ConfigError(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    if task_runner not in ("thread", "dask"):
        raise ConfigError(f"--task-runner {task_runner!r}: expected thread or dask")
    return BackfillSettings(
        start=lo, end=hi, symbols=syms, source=source, chunk=chunk, stage=stage, task_runner=task_runner,
        interval=interval, seed=seed, warehouse=str(warehouse) if warehouse else None,
    )  # fmt: skip


def _run(settings: BackfillSettings, via_deployment: bool, deployment: str) -> dict[str, Any]:
    """The summary of the backfill: in-process as one ``backfill`` flow run, or as deployment runs."""
    if via_deployment:
        from flows.backfill import run_backfill
        from flows.backfill_runners import DeploymentRunner

        return run_backfill(settings, DeploymentRunner(settings, deployment=deployment))
    from flows.pipeline_flow import backfill_flow

    state = backfill_flow(**vars(settings), return_state=True)
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, dict):
        raise ConfigError(f"backfill ended {state.type.value}: {state.message}")
    return summary


def backfill_command(
    ctx: typer.Context,
    start: Annotated[str, typer.Option(help="First UTC date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="End UTC date, exclusive.")],
    symbols: Annotated[
        list[str], typer.Option("--symbols", "-s", help="Symbols: --symbols BTC-USDT EURUSD SPY.")
    ],
    source: Annotated[
        str, typer.Option(help="samples (bundled files), synthetic, yfinance, or warehouse (stored bars).")
    ] = "samples",
    chunk: Annotated[str, typer.Option(help="Partition per run: day, week or month.")] = "month",
    stage: Annotated[
        str, typer.Option(help="ingest, features, evaluate, or all (ingest then features).")
    ] = "all",
    via_deployment: Annotated[
        bool, typer.Option("--via-deployment", help="One run of the backfill deployment per chunk.")
    ] = False,
    deployment: Annotated[str, typer.Option(help="Deployment for --via-deployment.")] = "backfill/backfill",
    task_runner: Annotated[str, typer.Option(help="thread, or dask (local cluster).")] = "thread",
    interval: Annotated[str | None, typer.Option(help="Bar interval for synthetic/yfinance.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic source.")] = 0,
    warehouse: Annotated[
        Path | None, typer.Option("--warehouse", "-w", help="DuckDB file (default: $VOLRISK_WAREHOUSE_PATH).")
    ] = None,
) -> None:
    """Backfill a date range chunk by chunk; rerun the same command to resume after a kill.

    Ingest then quality + features per chunk (--stage), in-process by default or as one run of the
    backfill deployment per chunk with an idempotency key (--via-deployment). Finished chunks are
    cache hits, so an interrupted backfill resumes where it stopped and never duplicates a row.
    """
    settings = _settings(
        start, end, symbols, list(ctx.args), source, chunk, stage, task_runner, interval, seed, warehouse
    )
    label = f"backfill {settings.start}..{settings.end} by {chunk}"
    with progress.tracking(label, err_console, stages=("backfill",), on_item=_print_item):
        summary = _run(settings, via_deployment, deployment)
    print_summary(summary, console)
    if summary["failed"] or summary["skipped"]:
        raise typer.Exit(1)


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """Per-stage totals, then every failed and skipped chunk and the report."""
    table = Table(title=f"backfill {summary['params']['start']}..{summary['params']['end']}")
    for col in ("stage", "chunks", "partitions", "cached", "failed", "skipped", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for st, tot in summary["stages"].items():
        chunks = [c for c in summary["chunks"] if c["stage"] == st]
        table.add_row(
            st,
            str(len(chunks)),
            f"{tot.get('partitions', 0):,}",
            f"{tot.get('cached', 0):,}",
            f"{tot.get('failed', 0):,}",
            str(sum(c["status"] == "skipped" for c in chunks)),
            f"{tot.get('seconds', sum(c.get('seconds', 0) for c in chunks)):.1f}",
        )
    console.print(table)
    for f in summary["failed"]:
        console.print(f"[red]failed[/] {f['stage']} {f.get('symbol') or ''} {f['partition']}: {f['error']}")
    for what, why in summary["skipped"].items():
        console.print(f"[yellow]skipped[/] {what}: {why}")
    if summary.get("report"):
        console.print(f"report: [bold]{summary['report']}[/]")
    console.print(f"wall {summary['wall_s']:.1f}s; rerun the same command to resume or verify (cache hits)")


def register(app: typer.Typer) -> None:
    """Add ``volrisk backfill`` to the CLI (extra arguments after ``--symbols`` are more symbols)."""
    app.command("backfill", context_settings={"allow_extra_args": True})(friendly_errors(backfill_command))
