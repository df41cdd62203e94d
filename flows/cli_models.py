"""``volrisk models``: every registered model, its kind, and whether it can run here (and why not).

Reads only the model catalogue and, for the foundation models, whether their packages are installed
and their weight folders exist (``tasks.models.foundation_weights``): nothing heavy is imported, so the
command answers in well under a second with or without the ``foundation`` extra.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli_common import console, friendly_errors


def model_rows() -> list[dict[str, Any]]:
    """One row per built-in model: ``name``, ``kind``, ``research`` name, ``available``, ``why_not``."""
    from tasks.model_catalog import BUILTIN_MODELS, RESEARCH_NAMES, model_kind
    from tasks.models.foundation_weights import availability

    research = {v: k for k, v in RESEARCH_NAMES.items()}
    rows = []
    for name in BUILTIN_MODELS:
        ok, why = availability(name)
        rows.append(
            {
                "name": name,
                "kind": model_kind(name),
                "research": research.get(name, ""),
                "available": ok,
                "why_not": why,
            }
        )
    return rows


def models(
    unavailable: Annotated[
        bool, typer.Option("--unavailable", help="List only the models that cannot run here.")
    ] = False,
) -> None:
    """Every registered model: its kind, whether it is available here, and why not."""
    from tasks.models.foundation_weights import models_dir

    rows = [r for r in model_rows() if not (unavailable and r["available"])]
    table = Table(title="models")
    for col in ("name", "kind", "research name", "available", "why not"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"], r["kind"], r["research"], "[green]yes[/]" if r["available"] else "[red]no[/]",
            escape(r["why_not"]),
        )  # fmt: skip
    console.print(table)
    console.print(f"[dim]foundation weights folder: {escape(str(models_dir()))} (VOLRISK_MODELS_DIR)[/]")


def register(app: typer.Typer) -> None:
    """Add ``volrisk models`` to the CLI."""
    app.command("models")(friendly_errors(models))
