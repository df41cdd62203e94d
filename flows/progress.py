"""A tiny hook so the CLI can draw progress for work a flow runs (flows stay UI-agnostic)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_listeners: list[Callable[[str, int, dict[str, Any] | None], None]] = []


def report(stage: str, total: int = 0, item: dict[str, Any] | None = None) -> None:
    """Tell listeners a stage has ``total`` items (item None) or finished one item."""
    for listener in list(_listeners):
        listener(stage, total, item)


@contextmanager
def listening(callback: Callable[[str, int, dict[str, Any] | None], None]) -> Iterator[None]:
    """Register ``callback`` for the duration of the block."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)
