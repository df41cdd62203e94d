"""Progress: a tiny hook flows report to (they stay UI-agnostic), and the one bar the CLI draws."""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

Listener = Callable[[str, int, dict[str, Any] | None], None]
_listeners: list[Listener] = []


def report(stage: str, total: int = 0, item: dict[str, Any] | None = None) -> None:
    """Tell listeners a stage has ``total`` items (item None) or finished one item."""
    for listener in list(_listeners):
        listener(stage, total, item)


@contextmanager
def listening(callback: Listener) -> Iterator[None]:
    """Register ``callback`` for the duration of the block."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


class CountColumn(ProgressColumn):
    """``done/total`` once the work's size is known; ``starting`` or ``N done`` before (never ``0/?``)."""

    def render(self, task: Task) -> Text:
        """The count text of ``task``."""
        done = int(task.completed)
        if task.total is not None:
            return Text(f"{done:,}/{int(task.total):,}", style="progress.download")
        return Text("starting" if done == 0 else f"{done:,} done", style="progress.download")


def progress_bar(*extra: ProgressColumn, console: Console) -> Progress:
    """The one progress bar every command draws (silent under pytest when not a terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        CountColumn(),
        *extra,
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and "pytest" in sys.modules,
    )


@contextmanager
def tracking(
    label: str,
    console: Console,
    stages: Collection[str] | None = None,
    on_item: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[tuple[Progress, TaskID]]:
    """Draw one bar for the block, fed by :func:`report` from the stages in ``stages`` (None: all).

    A stage announcing its size sets the total (a pipeline's stages add up); each finished item
    advances the bar and goes to ``on_item``. When nothing announced a size, the bar ends complete
    rather than ``0/?``.
    """
    bar = progress_bar(console=console)
    task_id = bar.add_task(label, total=None)
    totals: dict[str, int] = {}

    def listener(stage: str, total: int, item: dict[str, Any] | None) -> None:
        if stages is not None and stage not in stages:
            return
        if item is None:
            totals[stage] = total
            bar.update(task_id, total=sum(totals.values()))
            return
        bar.advance(task_id)
        if on_item is not None:
            on_item(item)

    with bar, listening(listener):
        yield bar, task_id
        if not totals:
            done = int(bar.tasks[0].completed)
            bar.update(task_id, total=done or 1, completed=done or 1)
