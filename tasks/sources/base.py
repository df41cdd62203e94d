"""The one interface every ingest source implements, and the values that cross it.

A :class:`Source` plans a request into partitions (plain keys: what its Prefect entry point takes)
and loads one partition into frames. It does no warehouse I/O and knows nothing of Prefect: the
stage door (``flows/steps/ingest.py``) writes what :meth:`Source.load` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import polars as pl


@dataclass(frozen=True)
class SourceRequest:
    """What to ingest, as a source plans it.

    Attributes
    ----------
    symbols : list[str]
        Symbols (validated by the caller).
    start, end : date | None
        Half-open UTC date range.
    interval : str | None
        Bar interval, or None for the source's default (files: inferred).
    paths : list[str]
        Files, for the sources that read files.
    formats : list[str | None]
        One format (or None: detect) per path.
    seed : int
        Seed of the synthetic source.
    generic : dict | None
        The generic layout's parameters (``fmt="generic"``).
    run_id : str
        This run's id.
    now : datetime
        The current UTC time (open windows are fetched again).
    resolve : Callable[[list[str]], list[Path]]
        Resolves ``paths`` and refuses any outside the allowed data roots.
    """

    symbols: list[str]
    start: date | None
    end: date | None
    interval: str | None
    paths: list[str]
    formats: list[str | None]
    seed: int
    generic: dict[str, Any] | None
    run_id: str
    now: datetime
    resolve: Callable[[list[str]], list[Path]]


@dataclass(frozen=True)
class Partition:
    """One planned partition.

    Attributes
    ----------
    params : dict
        The entry point's keyword arguments besides the warehouse and the run id.
    label : dict
        source, symbol, interval and location: the row reported if the partition fails.
    """

    params: dict[str, Any]
    label: dict[str, Any]


@dataclass
class Loaded:
    """What a source gave for one partition.

    Attributes
    ----------
    frame : pl.DataFrame
        Bars in :data:`core.schema.BAR_SCHEMA`, or rows in :data:`core.schema.REALIZED_SCHEMA` for the
        realized source.
    quarantine : pl.DataFrame
        Rows set aside, in :data:`core.schema.QUARANTINE_SCHEMA`.
    source : str
        The source label logged with the partition (a file's layout name for files).
    interval : str
        The bars' interval (``1d`` for realized measures).
    checksum : str | None
        Content hash of what was loaded, when the source computes one.
    notes : list[str]
        What the reader noticed.
    """

    frame: pl.DataFrame
    quarantine: pl.DataFrame
    source: str
    interval: str
    checksum: str | None = None
    notes: list[str] = field(default_factory=list)


class Source(Protocol):
    """An ingest source: registered by ``name`` in :data:`tasks.sources.registry.SOURCES`."""

    @property
    def name(self) -> str:
        """The name the source is registered under (``IngestRequest.source``)."""
        ...

    def plan(self, req: SourceRequest) -> list[Partition]:
        """Validate ``req`` for this source and split it into partitions."""
        ...

    def load(self, params: Mapping[str, Any]) -> Loaded:
        """Read, generate or fetch one partition (``params`` as planned)."""
        ...
