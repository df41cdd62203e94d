"""What every ``volrisk`` command shares: consoles, one-line errors, ``--warehouse``, the progress bar.

The command modules (:mod:`flows.cli`, :mod:`flows.cli_evaluate`, :mod:`flows.backfill_cli`) import
this; nothing here imports them, so :mod:`flows.cli` stays the top of the import graph.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from core.errors import VolriskError
from flows import progress
from tasks.config import get_settings

console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
F = TypeVar("F", bound=Callable[..., Any])
#: ``--debug``: show tracebacks instead of one-line errors (set by the CLI's callback).
DEBUG = {"on": False}

WarehouseOpt = Annotated[
    Path | None, typer.Option("--warehouse", "-w", help="DuckDB file (default: $VOLRISK_WAREHOUSE_PATH).")
]


def warehouse_path(path: Path | None) -> str:
    """``--warehouse``, or the configured warehouse when it is not given."""
    return str(path or get_settings().warehouse)


def release(exc: BaseException) -> None:
    """Drop the locals of the frames an error passed through.

    A DuckDB connection or type object still referenced from a traceback at interpreter exit makes
    DuckDB's bindings (nanobind) print dozens of ``leaked instance`` lines after the error message.
    """
    import gc
    import traceback

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    gc.collect()


def friendly_errors(fn: F) -> F:
    """Print volrisk errors as one line and exit 2 instead of showing a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VolriskError as exc:
            if DEBUG["on"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
            release(exc)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as exc:
            err_console.print("[yellow]interrupted[/]; finished partitions are kept, rerun to resume")
            release(exc)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def run_with_progress(run: Callable[[], list[dict[str, Any]]], label: str) -> list[dict[str, Any]]:
    """Check the Prefect API, then call ``run`` under one progress bar fed by every stage's reports."""
    from flows.runtime import check_prefect_api

    check_prefect_api()  # a dead PREFECT_API_URL: one clear line, not a hang or a traceback
    with progress.tracking(label, err_console):
        return run()
