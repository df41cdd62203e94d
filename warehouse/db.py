"""Opening the DuckDB warehouse: the only place that creates connections.

DuckDB allows one writer process per file. :func:`connect` waits out a lock held by another process
(up to ``lock_timeout`` seconds) and then raises :class:`~core.errors.TransientError`, which tasks retry.
A file that is not a DuckDB database raises :class:`~core.errors.WarehouseError` naming the file.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from core.errors import TransientError, WarehouseError
from warehouse.migrate import migrate

_LOCK_MARKERS = (
    "could not set lock",
    "conflicting lock",
    "database is locked",
    "lock on file",
    "unique file handle conflict",  # another thread of this process is attaching the same file
    # another thread of this process holds the file open in the other mode (read-only vs read-write):
    # DuckDB refuses a second configuration of one file per process until that connection closes
    "different configuration than existing connections",
)
# Threads of one process take turns to attach a file and to migrate it: DuckDB's per-process
# database cache and concurrent catalog writes (CREATE TABLE IF NOT EXISTS) conflict otherwise.
_OPEN_LOCK = threading.Lock()
_MIGRATE_LOCK = threading.Lock()
_CORRUPT_MARKERS = (
    "not a valid duckdb database",
    "corrupt",
    "the file is not a valid",
    "failed to read database header",
    "invalid database",
    "checksum",
    "could not read enough bytes",
    "serialization error",
    "invalid magic",
)


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    with _OPEN_LOCK:
        con = duckdb.connect(str(path), read_only=read_only)
    con.sql("SET TimeZone = 'UTC'")
    return con


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    lock_timeout: float = 30.0,
) -> duckdb.DuckDBPyConnection:
    """Open (and, for writers, create and migrate) the warehouse.

    Parameters
    ----------
    path : Path | str
        DuckDB file. Its folder is created for a writer.
    read_only : bool
        Open for reading only; the file must exist and be migrated.
    lock_timeout : float
        Seconds to wait for another process's write lock before raising ``TransientError``.

    Returns
    -------
    duckdb.DuckDBPyConnection
        A connection with the session time zone set to UTC.
    """
    path = Path(path).expanduser().resolve()  # one spelling per file: DuckDB caches by path text
    if read_only and not path.exists():
        raise WarehouseError(f"warehouse {path} does not exist yet; run `volrisk ingest` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            con = _open(path, read_only)
            break
        except duckdb.Error as exc:
            text = str(exc).lower()
            if any(marker in text for marker in _LOCK_MARKERS):
                if time.monotonic() >= deadline:
                    raise TransientError(
                        f"warehouse {path} is locked by another process for over {lock_timeout:.0f}s"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if any(marker in text for marker in _CORRUPT_MARKERS) or isinstance(
                exc, duckdb.SerializationException
            ):
                raise WarehouseError(
                    f"warehouse {path} is not a readable DuckDB database ({exc}). "
                    "Move it aside and rebuild it with `volrisk ingest`, or restore it from a backup."
                ) from exc
            raise WarehouseError(f"cannot open warehouse {path}: {exc}") from exc
    if read_only and not _has_schema(con):
        con.close()
        raise WarehouseError(
            f"warehouse {path} has no tables yet (a run stopped before creating them); "
            "run `volrisk ingest` to initialise it"
        )
    if not read_only:
        with _MIGRATE_LOCK:  # checking a current file is one catalog read: every writer checks
            try:
                migrate(con)
            except duckdb.Error as exc:
                con.close()
                raise WarehouseError(f"cannot migrate warehouse {path}: {exc}") from exc
    return con


# Query-time signs of a damaged file (narrower than _CORRUPT_MARKERS: "checksum" is also a column name).
_DAMAGED_MARKERS = ("corrupt database file", "could not read enough bytes", "not a valid duckdb database")


def _raise_if_corrupt(path: Path | str, exc: duckdb.Error) -> None:
    """Re-raise a query-time sign of a damaged file (bad block checksum, short read) as WarehouseError."""
    if any(marker in str(exc).lower() for marker in _DAMAGED_MARKERS):
        raise WarehouseError(
            f"warehouse {Path(path).expanduser().resolve()} is damaged ({str(exc).splitlines()[0]}). "
            "Move it aside and rebuild it with `volrisk ingest`, or restore it from a backup."
        ) from exc


def _has_schema(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the first migration has been committed (a run killed while creating a file leaves none)."""
    return bool(
        con.sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('schema_version', 'bars')"
        ).fetchall()[0][0]
        == 2
    )


@contextmanager
def session(path: Path | str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager around :func:`connect` that always closes the connection.

    DuckDB reads blocks lazily, so a damaged file may open and fail only when a query reaches the bad
    block; such an error is raised as :class:`WarehouseError` naming the file.
    """
    con = connect(path, read_only=read_only)
    try:
        yield con
    except duckdb.Error as exc:
        _raise_if_corrupt(path, exc)
        raise
    finally:
        con.close()


@contextmanager
def staged_transaction(con: duckdb.DuckDBPyConnection, view: str, stage: Any) -> Iterator[None]:
    """Register ``stage`` (an Arrow table) as ``view`` and run the block in one transaction.

    The block's statements commit together, or roll back on any exception, which is re-raised; the
    view is unregistered either way.
    """
    con.register(view, stage)
    try:
        con.sql("BEGIN TRANSACTION")
        try:
            yield
            con.sql("COMMIT")
        except BaseException:
            con.sql("ROLLBACK")
            raise
    finally:
        con.unregister(view)


_WRITE_LOCK = threading.RLock()


@contextmanager
def writer(path: Path | str, *, lock_timeout: float = 300.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Exclusive write access to the warehouse: one writer at a time, across threads and processes.

    DuckDB allows one writing process per file. Writers in this process queue on a lock; writers
    in other processes (parallel flows, a worker) queue on an ``flock`` of ``<warehouse>.lock``. A
    writer that waits longer than ``lock_timeout`` seconds gets :class:`TransientError`, which
    tasks retry. Parsing and computing happen outside this block, so only the write is serialized.
    """
    path = Path(path).expanduser().resolve()  # one spelling per file: DuckDB caches by path text
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    with _WRITE_LOCK, open(path.with_name(path.name + ".lock"), "a") as lock_file:
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() >= deadline:
                    raise TransientError(
                        f"another process has been writing to {path} for over {lock_timeout:.0f}s"
                    ) from exc
                time.sleep(0.05)
        try:
            con = connect(path, lock_timeout=max(1.0, deadline - time.monotonic()))
            try:
                yield con
            except duckdb.Error as exc:
                _raise_if_corrupt(path, exc)
                raise
            finally:
                con.close()
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
