"""A warehouse file as an older volrisk left it: for tests of the migrations that come after."""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.migrate import available_migrations, current_version


def warehouse_before(path: Path, version: int) -> duckdb.DuckDBPyConnection:
    """A new DuckDB file at ``path`` with every migration below ``version`` applied, left open."""
    con = duckdb.connect(str(path))
    current_version(con)  # creates schema_version
    for m in available_migrations():
        if m.version < version:
            con.sql(m.sql)
            con.sql("INSERT INTO schema_version VALUES (?, ?, now())", params=[m.version, m.name])
    return con
