"""Numbered SQL migrations with a schema-version table.

Files in ``warehouse/migrations`` named ``NNN_description.sql`` are applied in order, each in its own
transaction, and recorded in ``schema_version``. Applying them again is a no-op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import duckdb

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("warehouse").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in warehouse/migrations: {versions}")
    return found


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """Highest applied migration version (0 for an empty warehouse)."""
    con.sql(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    rows = con.sql("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    return int(rows[0][0])


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded, in order; return the names applied."""
    applied: list[str] = []
    current_version(con)  # creates schema_version on a new warehouse
    done = {int(r[0]) for r in con.sql("SELECT version FROM schema_version").fetchall()}
    for migration in available_migrations():
        if migration.version in done:  # applied: skip. Any missing number is applied, even a lower one.
            continue
        con.sql("BEGIN TRANSACTION")
        try:
            con.sql(migration.sql)
            con.sql(
                "INSERT INTO schema_version VALUES (?, ?, now())",
                params=[migration.version, migration.name],
            )
            con.sql("COMMIT")
        except Exception:
            con.sql("ROLLBACK")
            raise
        applied.append(migration.name)
    return applied
