"""Instruments, the ingest log, quarantine, and what the warehouse holds (``volrisk warehouse info``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import polars as pl

from core.symbols import validate_symbol

ASSET_CLASSES = ("crypto", "fx", "equity_index", "commodity")


@dataclass(frozen=True)
class Instrument:
    """One tradable instrument, the session calendar its data follows and that calendar's time zone."""

    symbol: str
    asset_class: str
    calendar: str
    quote_currency: str | None = None
    default_source: str | None = None
    timezone: str | None = None


_INSTRUMENT_COLUMNS = ("symbol", "asset_class", "calendar", "quote_currency", "default_source", "timezone")


def warehouse_id(con: duckdb.DuckDBPyConnection) -> str:
    """The warehouse file's identity (a UUID made when it was created)."""
    return str(con.sql("SELECT value FROM warehouse_meta WHERE key = 'warehouse_id'").fetchall()[0][0])


def upsert_instrument(con: duckdb.DuckDBPyConnection, inst: Instrument) -> None:
    """Insert or replace one instrument's registration (every field, the time zone included)."""
    validate_symbol(inst.symbol)
    if inst.asset_class not in ASSET_CLASSES:
        raise ValueError(f"asset_class {inst.asset_class!r} is not one of {ASSET_CLASSES}")
    con.sql(
        f"INSERT INTO instruments ({', '.join(_INSTRUMENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?) "  # noqa: S608
        "ON CONFLICT (symbol) DO UPDATE SET asset_class = excluded.asset_class, "
        "calendar = excluded.calendar, quote_currency = excluded.quote_currency, "
        "default_source = excluded.default_source, timezone = excluded.timezone",
        params=[getattr(inst, c) for c in _INSTRUMENT_COLUMNS],
    )


def _instrument(row: dict[str, object]) -> Instrument:
    """An ``instruments`` row as an :class:`Instrument` (a pre-008 read-only file has no time zone)."""
    return Instrument(**{c: row.get(c) for c in _INSTRUMENT_COLUMNS})  # type: ignore[arg-type]


def get_instrument(con: duckdb.DuckDBPyConnection, symbol: str) -> Instrument | None:
    """The stored instrument, or ``None``."""
    rel = con.sql("SELECT * FROM instruments WHERE symbol = ?", params=[validate_symbol(symbol)])
    rows = rel.fetchall()
    return _instrument(dict(zip(rel.columns, rows[0], strict=True))) if rows else None


def symbols_with_source(con: duckdb.DuckDBPyConnection, symbols: list[str], source: str) -> list[str]:
    """Those of ``symbols`` registered with ``default_source = source``, in the order given."""
    rows = con.sql("SELECT symbol FROM instruments WHERE default_source = ?", params=[source]).fetchall()
    found = {r[0] for r in rows}
    return [s for s in symbols if s in found]


def list_instruments(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every registered instrument, and every symbol with data but no registration (its class null).

    Columns: the :class:`Instrument` fields, then ``bars``, ``realized`` and ``features`` (row counts).
    """
    stored = con.sql("SELECT * FROM instruments").pl()
    if "timezone" not in stored.columns:  # a read-only pre-008 warehouse
        stored = stored.with_columns(pl.lit(None, pl.String).alias("timezone"))
    counts = con.sql(
        "WITH b AS (SELECT symbol, count(*) AS n FROM bars GROUP BY 1), "
        "r AS (SELECT symbol, count(*) AS n FROM realized_daily GROUP BY 1), "
        "f AS (SELECT symbol, count(*) AS n FROM features_daily GROUP BY 1), "
        "s AS (SELECT symbol FROM b UNION SELECT symbol FROM r UNION SELECT symbol FROM f "
        "UNION SELECT symbol FROM instruments) "
        "SELECT s.symbol, coalesce(b.n, 0) AS bars, coalesce(r.n, 0) AS realized, "
        "coalesce(f.n, 0) AS features FROM s LEFT JOIN b USING (symbol) LEFT JOIN r USING (symbol) "
        "LEFT JOIN f USING (symbol)"
    ).pl()
    out = counts.join(stored.select(_INSTRUMENT_COLUMNS), on="symbol", how="left")
    return out.select(*_INSTRUMENT_COLUMNS, "bars", "realized", "features").sort("symbol")


@dataclass
class LogEntry:
    """One row of ``ingest_log``: a (source, symbol, interval, window) partition's last ingest."""

    source: str
    symbol: str
    interval: str
    window_start: datetime
    window_end: datetime
    run_id: str
    started_at: datetime
    status: str = "running"
    location: str | None = None
    rows: int = 0
    rows_new: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_quarantined: int = 0
    checksum: str | None = None
    finished_at: datetime | None = None
    error: str | None = None


_LOG_COLUMNS = (
    "source",
    "symbol",
    "interval",
    "window_start",
    "window_end",
    "run_id",
    "location",
    "rows",
    "rows_new",
    "rows_updated",
    "rows_unchanged",
    "rows_quarantined",
    "checksum",
    "status",
    "started_at",
    "finished_at",
    "error",
)
_LOG_UPDATE = ", ".join(
    f"{c} = excluded.{c}"
    for c in _LOG_COLUMNS
    if c not in ("source", "symbol", "interval", "window_start", "window_end")
)
_LOG_COLS = ", ".join(_LOG_COLUMNS)
_LOG_MARKS = ", ".join("?" for _ in _LOG_COLUMNS)
# Fixed column list; every value is bound.
_Q_LOG_UPSERT = (
    f"INSERT INTO ingest_log ({_LOG_COLS}) VALUES ({_LOG_MARKS}) "  # noqa: S608
    f"ON CONFLICT (source, symbol, interval, window_start, window_end) DO UPDATE SET {_LOG_UPDATE}"
)


def record_ingest(con: duckdb.DuckDBPyConnection, entry: LogEntry) -> None:
    """Upsert one ingest-log row (one per source/symbol/interval/window)."""
    con.sql(_Q_LOG_UPSERT, params=[getattr(entry, c) for c in _LOG_COLUMNS])


def read_ingest_log(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> pl.DataFrame:
    """The ingest log, optionally for one run."""
    if run_id:
        return con.sql(
            "SELECT * FROM ingest_log WHERE run_id = ? ORDER BY symbol, window_start", params=[run_id]
        ).pl()
    return con.sql("SELECT * FROM ingest_log ORDER BY symbol, window_start").pl()


def write_quarantine(
    con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, *, source: str, symbol: str | None, run_id: str
) -> int:
    """Store quarantined rows (location, reason, raw); the same row and reason is stored once."""
    if rows.height == 0:
        return 0
    stage = (
        rows.select("location", "reason", "raw")
        .unique(["location", "reason"], keep="last")
        .with_columns(
            pl.lit(source).alias("source"),
            pl.lit(symbol).alias("symbol"),
            pl.lit(run_id).alias("run_id"),
        )
        .to_arrow()
    )
    con.register("_volrisk_quarantine", stage)
    try:
        con.sql(
            "INSERT INTO quarantine SELECT location, reason, raw, source, symbol, run_id, now() "
            "FROM _volrisk_quarantine ON CONFLICT (location, reason) DO UPDATE SET raw = excluded.raw"
        )
    finally:
        con.unregister("_volrisk_quarantine")
    return stage.num_rows


def read_quarantine(con: duckdb.DuckDBPyConnection, symbol: str | None = None) -> pl.DataFrame:
    """Quarantined rows, optionally for one symbol."""
    if symbol:
        return con.sql(
            "SELECT * FROM quarantine WHERE symbol = ? ORDER BY location", params=[validate_symbol(symbol)]
        ).pl()
    return con.sql("SELECT * FROM quarantine ORDER BY location").pl()


def table_counts(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Row count of every table in the main schema."""
    tables = [
        r[0]
        for r in con.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
    ]
    counts = []
    for name in tables:
        # `name` comes from the catalog, not from a user; quote it as an identifier.
        quoted = '"' + name.replace('"', '""') + '"'
        counts.append(con.sql("SELECT count(*) FROM " + quoted).fetchall()[0][0])  # noqa: S608
    return pl.DataFrame({"table": tables, "rows": counts}, schema={"table": pl.String, "rows": pl.Int64})


def bar_symbols(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Symbols with at least one stored bar, sorted."""
    return [r[0] for r in con.sql("SELECT DISTINCT symbol FROM bars ORDER BY 1").fetchall()]


def feature_symbols(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Symbols with at least one ``features_daily`` row (any feature-set version), sorted."""
    return [r[0] for r in con.sql("SELECT DISTINCT symbol FROM features_daily ORDER BY 1").fetchall()]


def feature_sessions(
    con: duckdb.DuckDBPyConnection, symbols: list[str], start: date, end: date
) -> list[date]:
    """Distinct session dates with features of any of ``symbols`` in ``[start, end]``, sorted."""
    rows = con.sql(
        "SELECT DISTINCT session_date FROM features_daily WHERE list_contains(?::VARCHAR[], symbol) "
        "AND session_date BETWEEN ? AND ? ORDER BY 1",
        params=[[validate_symbol(s) for s in symbols], start, end],
    ).fetchall()
    return [r[0] for r in rows]


def feature_intervals(
    con: duckdb.DuckDBPyConnection, symbol: str, start: date, end: date
) -> list[tuple[str, date, date, int]]:
    """(bar interval, first session, last session, sessions) of ``symbol``'s stored features in a range.

    Every feature-set version counts.
    """
    rows = con.sql(
        'SELECT "interval", min(session_date), max(session_date), count(*) FROM features_daily '
        "WHERE symbol = ? AND session_date BETWEEN ? AND ? "
        "GROUP BY 1 ORDER BY 2",
        params=[validate_symbol(symbol), start, end],
    ).fetchall()
    return [(str(r[0]), r[1], r[2], int(r[3])) for r in rows]


def features_interval(con: duckdb.DuckDBPyConnection, symbol: str) -> str | None:
    """The bar interval most of ``symbol``'s stored features came from (None: no features)."""
    rows = con.sql(
        'SELECT "interval" FROM features_daily WHERE symbol = ? GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1',
        params=[validate_symbol(symbol)],
    ).fetchall()
    return str(rows[0][0]) if rows else None


def has_model_run(con: duckdb.DuckDBPyConnection, model_run: str) -> bool:
    """Whether ``model_runs`` holds ``model_run`` (a cheap check: no model code is imported)."""
    return bool(
        con.sql("SELECT count(*) FROM model_runs WHERE model_run = ?", params=[model_run]).fetchall()[0][0]
    )


def bar_coverage(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per (symbol, interval): rows, first and last bar (UTC), sources, distinct UTC days."""
    return con.sql(
        "SELECT symbol, interval, count(*) AS rows, min(ts) AS first_ts, max(ts) AS last_ts, "
        "count(DISTINCT ts::DATE) AS days, string_agg(DISTINCT source, ',') AS sources "
        "FROM bars GROUP BY symbol, interval ORDER BY symbol, interval"
    ).pl()


def duplicate_bar_keys(con: duckdb.DuckDBPyConnection) -> int:
    """Number of (symbol, interval, ts) keys stored more than once (must be 0)."""
    return int(
        con.sql(
            "SELECT count(*) FROM (SELECT symbol, interval, ts FROM bars GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    )
