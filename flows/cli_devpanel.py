"""``volrisk dev-panel``: build the development panel into a warehouse.

:func:`register` adds the command to the CLI. The work is in :mod:`flows.dev_panel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from core.errors import ConfigError
from flows import preflight
from flows.cli_common import WarehouseOpt, console, friendly_errors, run_with_progress, warehouse_path
from flows.dev_panel import (
    DEFAULT_FIRST,
    DEFAULT_LAST,
    MANIFEST,
    RULE,
    SHARED_DATA_DIR,
    DevPanel,
    DevPanelRequest,
)
from tasks.config import get_settings


def dev_panel(
    synthetic: Annotated[
        int, typer.Option("--synthetic", help="Synthetic symbols with a common volatility factor (0: none).")
    ] = 6,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for the panel files and the manifest (default <VOLRISK_HOME>/dev-panel)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic panel.")] = 12,
    start: Annotated[
        str | None, typer.Option(help=f"Synthetic panel's first date (default {DEFAULT_FIRST}).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help=f"Synthetic panel's last date (default {DEFAULT_LAST}).")
    ] = None,
    shipped: Annotated[
        bool, typer.Option("--shipped/--no-shipped", help="Include the realized series of the shipped bars.")
    ] = True,
    shared_data: Annotated[
        Path | None,
        typer.Option("--shared-data", help="The shared real-data folder (default ../shared/data)."),
    ] = None,
    regimes: Annotated[
        str,
        typer.Option(
            "--regimes",
            help="Regime preset of the synthetic panel: none, or crisis (a calm 2017 and the 2008 and "
            "2020 crises: volatility-level shifts and fatter tails; the 2008 one needs --start before it).",
        ),
    ] = "none",
    no_ingest: Annotated[
        bool, typer.Option("--no-ingest", help="Only write the files and the manifest; no warehouse.")
    ] = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Build the development panel: write its files, register and ingest them, build features.

    The panel is a seeded synthetic panel (HAR log RV with a common AR(1) market factor, leverage,
    Student-t returns; --regimes crisis adds volatility regimes) plus every realized series built
    from the shipped bar files. These are the development (tuning) assets: settings are chosen on
    them only, and out-of-sample results are reported only on assets outside them. The manifest
    (dev_panel.json in --out) lists them.
    """
    preflight.date_range(start, end)
    req = DevPanelRequest(
        out=out or get_settings().home / "dev-panel",
        synthetic=synthetic,
        seed=seed,
        first=preflight.parse_date(start, "start") or DEFAULT_FIRST,
        last=preflight.parse_date(end, "end") or DEFAULT_LAST,
        shipped=shipped,
        shared_dir=shared_data or SHARED_DATA_DIR,
        regimes=regimes,
    ).check()
    if shared_data is not None and not shared_data.is_dir():
        raise ConfigError(f"--shared-data {shared_data} is not a folder")
    from flows.dev_panel import build_dev_panel

    panel = build_dev_panel(req)
    for note in panel.notes:
        console.print(f"[dim]{escape(note)}[/]")
    if not no_ingest:
        _ingest(panel, warehouse_path(warehouse))
    _print_members(panel, req.out / MANIFEST)


def _ingest(panel: DevPanel, wh: str) -> None:
    """Register the members, import the generic-layout files, build the members' features."""
    from flows.dev_panel import register_instruments

    Path(wh).parent.mkdir(parents=True, exist_ok=True)
    new = register_instruments(wh, panel.members)
    console.print(f"registered {len(new)} instrument(s); {len(panel.members) - len(new)} already were")
    from flows.features_flow import features_flow  # Prefect: after the checks and the files
    from flows.ingest_flow import IngestRequest, run_ingest

    request = IngestRequest(symbols=[], paths=[str(p) for p in panel.ingest], source="realized", warehouse=wh)
    rows = run_with_progress(lambda: run_ingest(request), "import dev panel")
    failed = [r for r in rows if r.get("status") == "failed"]
    for r in failed:
        console.print(f"[red]failed[/] {escape(str(r.get('location')))}: {escape(str(r.get('error')))}")
    if failed:
        raise typer.Exit(1)
    result: dict[str, Any] = {}

    def features() -> list[dict[str, Any]]:
        result.update(features_flow(symbols=panel.symbols, cross_asset=False, warehouse=wh))
        return list(result["partitions"])

    run_with_progress(features, "dev panel features")
    for r in result["failed"]:
        console.print(f"[red]{r['status']}[/] {r['symbol']}: {escape(str(r.get('error')))}")
    console.print(f"warehouse {escape(wh)}: {len(panel.members)} symbols imported, features built")
    if result["failed"]:
        raise typer.Exit(1)


def _print_members(panel: DevPanel, manifest: Path) -> None:
    """The members as a table, then the rule they are kept for."""
    table = Table(title="development panel (tuning set)")
    for col in ("symbol", "kind", "asset class", "calendar", "first", "last", "days", "made from"):
        table.add_column(col, justify="right" if col == "days" else "left")
    for m in panel.members:
        table.add_row(
            m.symbol, m.kind, m.asset_class, m.calendar, m.first, m.last, f"{m.days:,}", escape(m.detail)
        )
    console.print(table)
    console.print(f"development (tuning) set: {' '.join(panel.symbols)}")
    console.print(f"rule: {RULE}")
    console.print(f"manifest: {escape(str(manifest))}; files: {', '.join(p.name for p in panel.written)}")


def register(app: typer.Typer) -> None:
    """Add ``volrisk dev-panel`` to the CLI."""
    app.command("dev-panel")(friendly_errors(dev_panel))
