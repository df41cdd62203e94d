"""Reading and writing bars.

A write covers one partition, a single (symbol, interval) over a window, in one transaction. It
upserts on the natural key (symbol, interval, ts): duplicates inside the batch are dropped first
(keeping the last), rows identical to what is stored are left alone, changed rows are replaced and
new rows appended. Writing the same data twice therefore changes no row, no count and no checksum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from core.schema import BAR_KEY, BAR_SCHEMA, conform_bars, empty_bars
from core.symbols import validate_symbol
from warehouse.db import staged_transaction

_COLS = ", ".join(BAR_SCHEMA)
_KEY_JOIN = " AND ".join(f"b.{k} = s.{k}" for k in BAR_KEY)
_DIFFERS = " OR ".join(
    f"b.{c} IS DISTINCT FROM s.{c}" for c in ("open", "high", "low", "close", "volume", "source")
)
_STAGE = "_volrisk_stage"
# Queries are assembled once from the fixed identifiers above; every value is a bound parameter.
_Q_COUNT_RANGE = "SELECT count(*) FROM bars WHERE symbol = ? AND interval = ? AND ts BETWEEN ? AND ?"
_Q_INSERT_STAGE = f"INSERT INTO bars SELECT {_COLS}, ingest_run FROM {_STAGE}"  # noqa: S608
_Q_DELTA = (
    "CREATE OR REPLACE TEMP TABLE _volrisk_delta AS "  # noqa: S608
    f"SELECT s.*, b.ts IS NOT NULL AS existed FROM {_STAGE} s LEFT JOIN "
    "(SELECT * FROM bars WHERE symbol = ? AND interval = ? AND ts BETWEEN ? AND ?) b "
    f"ON {_KEY_JOIN} WHERE b.ts IS NULL OR {_DIFFERS}"
)
_Q_DELTA_COUNTS = (
    "SELECT count(*) FILTER (WHERE NOT existed), count(*) FILTER (WHERE existed) FROM _volrisk_delta"
)
_Q_DELETE_CHANGED = f"DELETE FROM bars b USING _volrisk_delta s WHERE s.existed AND {_KEY_JOIN}"  # noqa: S608
_Q_INSERT_DELTA = f"INSERT INTO bars SELECT {_COLS}, ingest_run FROM _volrisk_delta"  # noqa: S608
_CHECKSUM_EXPR = (
    "count(*), coalesce(sum(hash(symbol, interval, ts, open, high, low, close, volume, source)::HUGEINT), 0)"
)
_Q_CHECKSUM_RANGE = (
    f"SELECT {_CHECKSUM_EXPR} FROM bars "  # noqa: S608
    "WHERE symbol = ? AND interval = ? AND ts >= ? AND ts < ?"
)
_Q_INTERVALS = (
    "SELECT interval, count(*), min(ts), max(ts) FROM bars WHERE symbol = ? GROUP BY interval ORDER BY 2 DESC"
)
_Q_SELECT = f"SELECT {_COLS} FROM bars WHERE "  # noqa: S608
_Q_CHECKSUM_ALL = f"SELECT {_CHECKSUM_EXPR} FROM bars"  # noqa: S608
_Q_CHECKSUM_SYMBOL = f"SELECT {_CHECKSUM_EXPR} FROM bars WHERE symbol = ?"  # noqa: S608


@dataclass(frozen=True)
class UpsertStats:
    """Row counts of one partition write."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged


def _partition_of(frame: pl.DataFrame) -> tuple[str, str]:
    pairs = frame.select("symbol", "interval").unique()
    if pairs.height != 1:
        raise ValueError(
            f"a bar write covers one (symbol, interval) partition; got {pairs.height}: {pairs.rows()[:5]}"
        )
    symbol, interval = pairs.row(0)
    return validate_symbol(symbol), interval


def dedupe_keep_last(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop rows whose key repeats, keeping the last occurrence, and sort by key.

    A single-partition frame whose stamps already strictly increase (every parser's output) is
    returned as is, which skips a hash-and-sort of the whole batch.
    """
    if frame.height < 2:
        return frame
    one_partition = (frame["symbol"] == frame["symbol"][0]).all() and (
        frame["interval"] == frame["interval"][0]
    ).all()
    if one_partition:
        steps = frame["ts"].diff().drop_nulls()
        if steps.null_count() == 0 and bool((steps.dt.total_microseconds() > 0).all()):
            return frame
    return frame.unique(subset=list(BAR_KEY), keep="last", maintain_order=True).sort(list(BAR_KEY))


def upsert_bars(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, run_id: str) -> UpsertStats:
    """Upsert one (symbol, interval) partition of bars in a single transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable warehouse connection.
    frame : pl.DataFrame
        Bars in :data:`~core.schema.BAR_SCHEMA`, one symbol and one interval.
    run_id : str
        The ingest run recorded on new and changed rows.

    Returns
    -------
    UpsertStats
        How many rows were new, updated and unchanged.
    """
    if frame.height == 0:
        return UpsertStats()
    frame = dedupe_keep_last(conform_bars(frame))
    symbol, interval = _partition_of(frame)
    lo: datetime = frame["ts"].min()  # type: ignore[assignment]
    hi: datetime = frame["ts"].max()  # type: ignore[assignment]
    stage = frame.with_columns(pl.lit(run_id).alias("ingest_run")).to_arrow()
    with staged_transaction(con, _STAGE, stage):
        existing = con.sql(_Q_COUNT_RANGE, params=[symbol, interval, lo, hi]).fetchall()[0][0]
        if existing == 0:
            con.sql(_Q_INSERT_STAGE)
            stats = UpsertStats(new=frame.height)
        else:
            stats = _merge(con, symbol, interval, lo, hi, frame.height)
    return stats


def _merge(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    interval: str,
    lo: datetime,
    hi: datetime,
    n_rows: int,
) -> UpsertStats:
    # Rows that are new or differ from what is stored; `existed` says which.
    con.sql(_Q_DELTA, params=[symbol, interval, lo, hi])
    counts = con.sql(_Q_DELTA_COUNTS).fetchall()[0]
    new, updated = int(counts[0]), int(counts[1])
    if updated:
        con.sql(_Q_DELETE_CHANGED)
    if new or updated:
        con.sql(_Q_INSERT_DELTA)
    con.sql("DROP TABLE _volrisk_delta")
    return UpsertStats(new=new, updated=updated, unchanged=n_rows - new - updated)


def read_bars(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    interval: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Bars of one symbol and interval with ``start <= ts < end`` (UTC), sorted by time.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse connection (read-only is fine).
    symbol, interval : str
        The partition.
    start, end : datetime | None
        Optional half-open UTC window.
    """
    validate_symbol(symbol)
    clauses = ["symbol = ?", "interval = ?"]
    params: list[object] = [symbol, interval]
    if start is not None:
        clauses.append("ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("ts < ?")
        params.append(end)
    query = _Q_SELECT + " AND ".join(clauses) + " ORDER BY ts"
    frame = con.sql(query, params=params).pl()
    if frame.height == 0:
        return empty_bars()
    return conform_bars(frame)


def bars_checksum(con: duckdb.DuckDBPyConnection, symbol: str | None = None) -> str:
    """Order-independent content checksum of stored bars (excludes the ingest run id)."""
    if symbol:
        row = con.sql(_Q_CHECKSUM_SYMBOL, params=[validate_symbol(symbol)]).fetchall()[0]
    else:
        row = con.sql(_Q_CHECKSUM_ALL).fetchall()[0]
    return f"{int(row[0])}:{int(row[1]) & ((1 << 64) - 1):016x}"


def bars_version(
    con: duckdb.DuckDBPyConnection, symbol: str, interval: str, start: datetime, end: datetime
) -> str:
    """Content checksum of one symbol's bars in ``[start, end)``: the data version of a partition.

    Anything that depends on those bars (features, quality results) keys its cache on it, so a
    changed bar recomputes exactly the partitions that read it.
    """
    row = con.sql(_Q_CHECKSUM_RANGE, params=[validate_symbol(symbol), interval, start, end]).fetchall()[0]
    return f"{int(row[0])}:{int(row[1]) & ((1 << 64) - 1):016x}"


def stored_intervals(
    con: duckdb.DuckDBPyConnection, symbol: str
) -> list[tuple[str, int, datetime, datetime]]:
    """(interval, rows, first ts, last ts) of one symbol's stored bars, most rows first."""
    return [
        (str(r[0]), int(r[1]), r[2], r[3])
        for r in con.sql(_Q_INTERVALS, params=[validate_symbol(symbol)]).fetchall()
    ]
