"""The warehouse as one resource: a DuckDB file and the only way stage doors reach it.

A :class:`Warehouse` owns connections (``reading``/``writing``); every query lives in a
``warehouse/`` module as a function over the connection it hands out, so no SQL exists outside this
package. Stage doors (``flows/steps``) take a ``Warehouse``; pure stage code (``tasks/``) never does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.db import session, writer


@dataclass(frozen=True)
class Warehouse:
    """A DuckDB warehouse file.

    Parameters
    ----------
    path : Path
        The ``.duckdb`` file; created and migrated on first write.
    """

    path: Path

    @classmethod
    def at(cls, path: Path | str) -> Warehouse:
        """The warehouse at ``path`` (``~`` expanded; one spelling per file)."""
        return cls(Path(path).expanduser().resolve())

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, closed on exit; readers never block each other."""
        with session(self.path, read_only=True) as con:
            yield con

    @contextmanager
    def writing(self, *, lock_timeout: float = 300.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writer connection (one per file across processes), closed on exit."""
        with writer(self.path, lock_timeout=lock_timeout) as con:
            yield con

    @contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection without the writer lock: for migrations, checks and tests."""
        with session(self.path, read_only=read_only) as con:
            yield con

    def __str__(self) -> str:
        return str(self.path)
