"""Reading and writing daily realized measures (table ``realized_daily``).

A write upserts on the natural key (symbol, date, source) in one transaction: rows repeated inside the
batch are dropped first (keeping the last), rows identical to what is stored are left alone (their
``ingest_run`` too), changed rows are updated and new rows inserted. Importing the same file twice
therefore changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

import duckdb
import polars as pl

from core.errors import DataError
from core.schema import REALIZED_SCHEMA
from core.symbols import validate_symbol
from warehouse.db import staged_transaction

REALIZED_KEY = ("symbol", "date", "source")
REALIZED_VALUES = tuple(c for c in REALIZED_SCHEMA if c not in REALIZED_KEY)

_STAGE = "_volrisk_realized_stage"
_DELTA = "_volrisk_realized_delta"
_COLS = ", ".join(REALIZED_SCHEMA)
_KEY_JOIN = " AND ".join(f"r.{k} = s.{k}" for k in REALIZED_KEY)
# extra is JSON in the table and text in the stage; DuckDB keeps JSON text as written, so compare text.
_DIFFERS = " OR ".join(
    f"r.{c}::VARCHAR IS DISTINCT FROM s.{c}" if c == "extra" else f"r.{c} IS DISTINCT FROM s.{c}"
    for c in REALIZED_VALUES
)
# Queries are assembled once from the fixed identifiers above; every value is a bound parameter.
_Q_DELTA = (
    f"CREATE OR REPLACE TEMP TABLE {_DELTA} AS "  # noqa: S608
    f"SELECT s.*, r.symbol IS NOT NULL AS existed FROM {_STAGE} s "
    f"LEFT JOIN realized_daily r ON {_KEY_JOIN} "
    f"WHERE r.symbol IS NULL OR {_DIFFERS}"
)
_Q_DELTA_COUNTS = f"SELECT count(*) FILTER (WHERE NOT existed), count(*) FILTER (WHERE existed) FROM {_DELTA}"  # noqa: S608
_Q_UPSERT = (
    f"INSERT INTO realized_daily ({_COLS}, ingest_run) "  # noqa: S608
    f"SELECT {', '.join('extra::JSON' if c == 'extra' else c for c in REALIZED_SCHEMA)}, ? FROM {_DELTA} "
    f"ON CONFLICT ({', '.join(REALIZED_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*REALIZED_VALUES, "ingest_run"))
)
_Q_DROP_DELTA = f"DROP TABLE IF EXISTS {_DELTA}"
_Q_SELECT = (
    "SELECT "  # noqa: S608
    + ", ".join("extra::VARCHAR AS extra" if c == "extra" else c for c in REALIZED_SCHEMA)
    + " FROM realized_daily WHERE list_contains(?, symbol)"
)
_Q_AND_START = " AND date >= ?"
_Q_AND_END = " AND date < ?"
_Q_AND_SOURCE = " AND source = ?"
_Q_ORDER = " ORDER BY symbol, date, source"


class RealizedStats(NamedTuple):
    """Row counts of one realized write: ``(new, updated, unchanged)``."""

    new: int
    updated: int
    unchanged: int


def conform_realized(frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast ``frame`` to :data:`~core.schema.REALIZED_SCHEMA`.

    Parameters
    ----------
    frame : pl.DataFrame
        Realized measures; ``extra`` may be absent (then null).

    Returns
    -------
    pl.DataFrame
        The frame with exactly the schema's columns and types.
    """
    if "extra" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("extra"))
    missing = [c for c in REALIZED_SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"realized frame lacks columns {missing}; expected {list(REALIZED_SCHEMA)}")
    return frame.select([pl.col(c).cast(t) for c, t in REALIZED_SCHEMA.items()])


def upsert_realized(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, run_id: str) -> RealizedStats:
    """Upsert daily realized measures on (symbol, date, source) in a single transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable warehouse connection.
    frame : pl.DataFrame
        Rows in :data:`~core.schema.REALIZED_SCHEMA`; any number of symbols and sources. A key
        repeated inside the frame keeps its last row.
    run_id : str
        The ingest run recorded on new and changed rows.

    Returns
    -------
    RealizedStats
        ``(new, updated, unchanged)`` counts over the deduplicated rows.

    Raises
    ------
    ConfigError
        A symbol fails :func:`~core.symbols.validate_symbol`.
    DataError
        A key column is null.
    """
    if frame.height == 0:
        return RealizedStats(0, 0, 0)
    frame = conform_realized(frame)
    null_keys = frame.filter(pl.any_horizontal([pl.col(k).is_null() for k in REALIZED_KEY])).height
    if null_keys:
        raise DataError(f"{null_keys} realized rows have a null symbol, date or source; nothing was written")
    for symbol in frame["symbol"].unique().to_list():
        validate_symbol(symbol)
    frame = frame.unique(subset=list(REALIZED_KEY), keep="last", maintain_order=True)
    with staged_transaction(con, _STAGE, frame.to_arrow()):
        con.sql(_Q_DELTA)
        counts = con.sql(_Q_DELTA_COUNTS).fetchall()[0]
        new, updated = int(counts[0]), int(counts[1])
        if new or updated:
            con.sql(_Q_UPSERT, params=[run_id])
        con.sql(_Q_DROP_DELTA)
    return RealizedStats(new=new, updated=updated, unchanged=frame.height - new - updated)


def read_realized(
    con: duckdb.DuckDBPyConnection,
    symbols: str | Sequence[str],
    start: date | None = None,
    end: date | None = None,
    *,
    source: str | None = None,
) -> pl.DataFrame:
    """Realized measures of some symbols with ``start <= date < end``, sorted by symbol, date, source.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse connection (read-only is fine).
    symbols : str | Sequence[str]
        One symbol or several; each is validated.
    start, end : date | None
        Optional half-open window of local trading dates.
    source : str | None
        Only rows from this source (default: every source).

    Returns
    -------
    pl.DataFrame
        Rows in :data:`~core.schema.REALIZED_SCHEMA` (``extra`` as JSON text).
    """
    wanted = [symbols] if isinstance(symbols, str) else list(symbols)
    for symbol in wanted:
        validate_symbol(symbol)
    query = _Q_SELECT
    params: list[object] = [wanted]
    if start is not None:
        query += _Q_AND_START
        params.append(start)
    if end is not None:
        query += _Q_AND_END
        params.append(end)
    if source is not None:
        query += _Q_AND_SOURCE
        params.append(source)
    frame = con.sql(query + _Q_ORDER, params=params).pl()
    if frame.height == 0:
        return pl.DataFrame(schema=REALIZED_SCHEMA)
    return conform_realized(frame)


def realized_symbols(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Symbols with at least one imported realized row, sorted."""
    return [r[0] for r in con.sql("SELECT DISTINCT symbol FROM realized_daily ORDER BY 1").fetchall()]


def realized_sources(con: duckdb.DuckDBPyConnection, symbol: str) -> list[tuple[str, date, date, int]]:
    """(source, first date, last date, rows) of ``symbol``'s imported realized measures, most rows first."""
    rows = con.sql(
        "SELECT source, min(date), max(date), count(*) FROM realized_daily WHERE symbol = ? "
        "GROUP BY 1 ORDER BY 4 DESC, 1",
        params=[validate_symbol(symbol)],
    ).fetchall()
    return [(str(s), a, b, int(n)) for s, a, b, n in rows]
