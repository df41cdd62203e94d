"""Data-quality storage and the SQL-side checks: gaps between bars and missing sessions.

``dq_results`` (migration 003) holds one row per (run_id, suite, partition, expectation, column_name).
:func:`write_dq_results` upserts one batch in a single transaction, so writing the same results twice
changes nothing. :func:`find_gaps` and :func:`missing_sessions` run in DuckDB over the ``bars`` table;
every value reaches SQL as a parameter and every identifier comes from a fixed list in this module.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import duckdb
import polars as pl

from core.errors import ConfigError
from core.schema import DQ_SCHEMA, interval_seconds
from core.symbols import validate_symbol
from warehouse.db import staged_transaction

DQ_KEY = ("run_id", "suite", "partition", "expectation", "column_name")
_DQ_VALUES = tuple(c for c in DQ_SCHEMA if c not in DQ_KEY and c != "created_at")
_JSON_COLS = ("observed_value", "details")

#: Columns of :func:`find_gaps`' result.
GAP_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "interval": pl.String(),
    "gap_start": pl.Datetime("us", "UTC"),
    "gap_end": pl.Datetime("us", "UTC"),
    "length": pl.Duration("us"),
    "missing_bars": pl.Int64(),
}

#: Columns of :func:`missing_sessions`' result.
MISSING_SESSION_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "interval": pl.String(),
    "session_date": pl.Date(),
}

_SESSION_WINDOW_COLS = ("session_date", "open_utc", "close_utc")


def empty_dq_results() -> pl.DataFrame:
    """A zero-row frame in :data:`DQ_SCHEMA`."""
    return pl.DataFrame(schema=DQ_SCHEMA)


def _conform_dq(rows: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in DQ_SCHEMA if c not in rows.columns]
    if missing:
        raise ConfigError(f"dq_results rows lack columns {missing}; expected {list(DQ_SCHEMA)}")
    frame = rows.select([pl.col(c).cast(t) for c, t in DQ_SCHEMA.items()])
    nulls = [c for c in (*DQ_KEY, "severity", "success", "created_at") if frame[c].null_count()]
    if nulls:
        raise ConfigError(f"dq_results rows have nulls in required columns {nulls}")
    bad = set(frame["severity"].unique().to_list()) - {"error", "warning"}
    if bad:
        raise ConfigError(f"dq_results severity must be 'error' or 'warning'; got {sorted(bad)}")
    return frame


def write_dq_results(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> int:
    """Upsert data-quality results in one transaction.

    Rows repeating a key inside the batch keep the last one. A stored row with the same key is
    updated; its ``created_at`` changes only if the outcome (severity, success, observed value,
    counts or details) changed, so writing the same results twice changes nothing.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable warehouse connection (migrated to version 3 or later).
    rows : pl.DataFrame
        Results in :data:`DQ_SCHEMA`; ``observed_value`` and ``details`` are JSON text.

    Returns
    -------
    int
        Number of distinct result rows written.
    """
    if rows.height == 0:
        return 0
    frame = _conform_dq(rows).unique(subset=list(DQ_KEY), keep="last", maintain_order=True)
    cols = ", ".join(DQ_SCHEMA)
    select = ", ".join(f"{c}::JSON" if c in _JSON_COLS else c for c in DQ_SCHEMA)
    changed = " OR ".join(f"dq_results.{c} IS DISTINCT FROM excluded.{c}" for c in _DQ_VALUES)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _DQ_VALUES)
    view = "_volrisk_dq_stage"
    with staged_transaction(con, view, frame.to_arrow()):
        con.sql(
            f"INSERT INTO dq_results ({cols}) SELECT {select} FROM {view} "  # noqa: S608 - fixed names
            f"ON CONFLICT ({', '.join(DQ_KEY)}) DO UPDATE SET {updates}, "
            f"created_at = CASE WHEN {changed} THEN excluded.created_at ELSE dq_results.created_at END"
        )
    return frame.height


def read_dq_results(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None = None,
    suite: str | None = None,
    partition: str | None = None,
    failed_only: bool = False,
) -> pl.DataFrame:
    """Stored data-quality results, optionally filtered, in :data:`DQ_SCHEMA`.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse connection (read-only is fine).
    run_id, suite, partition : str | None
        Exact-match filters; ``None`` means any.
    failed_only : bool
        Keep only checks that did not succeed.

    Returns
    -------
    pl.DataFrame
        Sorted by run, suite, partition, severity (errors first) and expectation.
    """
    clauses: list[str] = []
    params: list[object] = []
    for name, value in (("run_id", run_id), ("suite", suite), ("partition", partition)):
        if value is not None:
            clauses.append(f"{name} = ?")
            params.append(value)
    if failed_only:
        clauses.append("NOT success")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    select = ", ".join(f"{c}::VARCHAR AS {c}" if c in _JSON_COLS else c for c in DQ_SCHEMA)
    frame = con.sql(
        f"SELECT {select} FROM dq_results {where} "  # noqa: S608 - fixed clauses
        "ORDER BY run_id, suite, partition, severity, expectation, column_name",
        params=params,
    ).pl()
    if frame.height == 0:
        return empty_dq_results()
    return frame.select([pl.col(c).cast(t) for c, t in DQ_SCHEMA.items()])


def find_gaps(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    interval: str,
    start: datetime | None = None,
    end: datetime | None = None,
    factor: float = 1.5,
) -> pl.DataFrame:
    """Gaps between consecutive bars of one (symbol, interval) longer than ``factor`` bars.

    A gap is a pair of consecutive stored bars (``lag(ts)`` over time) whose start times lie more
    than ``factor * interval`` apart. Only gaps between two bars inside ``[start, end)`` are found;
    a window that starts or ends without bars is reported by :func:`missing_sessions`.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse connection (read-only is fine).
    symbol, interval : str
        The partition; ``interval`` must be a key of :data:`core.schema.INTERVAL_SECONDS`.
    start, end : datetime | None
        Optional half-open UTC window.
    factor : float
        Threshold in bars; the default 1.5 reports every missing bar.

    Returns
    -------
    pl.DataFrame
        :data:`GAP_SCHEMA`, one row per gap in time order: ``gap_start`` is the start of the last bar
        before the gap, ``gap_end`` the start of the first bar after it, ``length`` their distance and
        ``missing_bars`` how many bars of ``interval`` fit in between.
    """
    validate_symbol(symbol)
    seconds = interval_seconds(interval)
    if not factor > 0:
        raise ConfigError(f"find_gaps factor must be > 0; got {factor!r}")
    clauses = ["symbol = ?", "interval = ?"]
    params: list[object] = [symbol, interval]
    if start is not None:
        clauses.append("ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("ts < ?")
        params.append(end)
    bar_us = seconds * 1_000_000
    query = (
        "WITH b AS (SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev_ts FROM bars "  # noqa: S608
        f"WHERE {' AND '.join(clauses)}) "
        "SELECT prev_ts AS gap_start, ts AS gap_end, "
        "epoch_us(ts) - epoch_us(prev_ts) AS length_us FROM b "
        "WHERE prev_ts IS NOT NULL AND epoch_us(ts) - epoch_us(prev_ts) > ? ORDER BY ts"
    )
    params.append(factor * bar_us)
    return _gap_frame(con.sql(query, params=params).pl(), symbol, interval, bar_us)


def _gap_frame(frame: pl.DataFrame, symbol: str, interval: str, bar_us: int) -> pl.DataFrame:
    """:data:`GAP_SCHEMA` rows from the gap query's ``gap_start, gap_end, length_us``."""
    if frame.height == 0:
        return pl.DataFrame(schema=GAP_SCHEMA)
    return frame.select(
        pl.lit(symbol).alias("symbol"),
        pl.lit(interval).alias("interval"),
        pl.col("gap_start").cast(GAP_SCHEMA["gap_start"]),
        pl.col("gap_end").cast(GAP_SCHEMA["gap_end"]),
        pl.duration(microseconds=pl.col("length_us")).cast(pl.Duration("us")).alias("length"),
        (pl.col("length_us") // bar_us - 1 + (pl.col("length_us") % bar_us > 0).cast(pl.Int64))
        .cast(pl.Int64)
        .alias("missing_bars"),
    )


def missing_sessions(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    interval: str,
    sessions: list[date],
    session_windows: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Expected sessions of one (symbol, interval) that have no stored bar.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse connection (read-only is fine).
    symbol, interval : str
        The partition.
    sessions : list[date]
        The sessions expected to have bars (e.g. ``tasks.calendars.sessions_between``).
    session_windows : pl.DataFrame | None
        How a bar maps to its session. ``None`` means the UTC day (``ts::DATE`` in UTC; crypto).
        Otherwise a frame ``[session_date, open_utc, close_utc]`` that covers every date in
        ``sessions`` (e.g. ``tasks.calendars.session_bounds`` renamed); a bar belongs to a session when
        ``[ts, ts + interval)`` overlaps ``[open_utc, close_utc)``.

    Returns
    -------
    pl.DataFrame
        :data:`MISSING_SESSION_SCHEMA`, one row per missing session, in date order.
    """
    validate_symbol(symbol)
    interval_seconds(interval)
    if not sessions:
        return pl.DataFrame(schema=MISSING_SESSION_SCHEMA)
    expected = pl.DataFrame({"session_date": sorted(set(sessions))}, schema={"session_date": pl.Date()})
    views = {"_volrisk_dq_expected": expected}
    if session_windows is None:
        query, params = _utc_day_query(symbol, interval, expected)
    else:
        views["_volrisk_dq_windows"] = _conform_windows(session_windows, expected)
        query, params = _window_query(symbol, interval)
    for name, frame in views.items():
        con.register(name, frame.to_arrow())
    try:
        found = con.sql(query, params=params).pl()
    finally:
        for name in views:
            con.unregister(name)
    return pl.DataFrame(
        {
            "symbol": [symbol] * found.height,
            "interval": [interval] * found.height,
            "session_date": found["session_date"].to_list() if found.height else [],
        },
        schema=MISSING_SESSION_SCHEMA,
    )


def _utc_day_query(symbol: str, interval: str, expected: pl.DataFrame) -> tuple[str, list[object]]:
    """Expected sessions without a bar, a session being the UTC day (``ts::DATE`` in UTC)."""
    first, last = expected["session_date"].min(), expected["session_date"].max()
    lo = datetime.combine(first, time(0), tzinfo=UTC)  # type: ignore[arg-type]
    hi = datetime.combine(last, time(0), tzinfo=UTC) + timedelta(days=1)  # type: ignore[arg-type]
    query = (
        "SELECT e.session_date FROM _volrisk_dq_expected e ANTI JOIN ("
        "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::DATE AS session_date FROM bars "
        "WHERE symbol = ? AND interval = ? AND ts >= ? AND ts < ?"
        ") b USING (session_date) ORDER BY e.session_date"
    )
    return query, [symbol, interval, lo, hi]


def _window_query(symbol: str, interval: str) -> tuple[str, list[object]]:
    """Expected sessions without a bar overlapping their ``[open_utc, close_utc)`` window."""
    query = (
        # A bar [ts, ts + interval) belongs to a session when it overlaps [open_utc, close_utc):
        # the hourly bar stamped 09:00 New York carries 09:30-10:00.
        "WITH w AS (SELECT session_date, open_utc - to_microseconds(?) AS lo, close_utc AS hi "
        "FROM _volrisk_dq_windows SEMI JOIN _volrisk_dq_expected USING (session_date)), "
        "hit AS (SELECT DISTINCT w.session_date FROM w JOIN bars b ON b.ts > w.lo AND b.ts < w.hi "
        "WHERE b.symbol = ? AND b.interval = ? "
        "AND b.ts > (SELECT min(lo) FROM w) AND b.ts < (SELECT max(hi) FROM w)) "
        "SELECT e.session_date FROM _volrisk_dq_expected e ANTI JOIN hit USING (session_date) "
        "ORDER BY e.session_date"
    )
    return query, [interval_seconds(interval) * 1_000_000, symbol, interval]


def _conform_windows(windows: pl.DataFrame, expected: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in _SESSION_WINDOW_COLS if c not in windows.columns]
    if missing:
        raise ConfigError(
            f"session_windows lacks columns {missing}; expected {list(_SESSION_WINDOW_COLS)} "
            "(session_date, open_utc, close_utc in UTC)"
        )
    frame = windows.select(
        pl.col("session_date").cast(pl.Date()),
        pl.col("open_utc").cast(pl.Datetime("us", "UTC")),
        pl.col("close_utc").cast(pl.Datetime("us", "UTC")),
    )
    uncovered = expected.join(frame, on="session_date", how="anti")
    if uncovered.height:
        raise ConfigError(
            f"session_windows has no window for {uncovered.height} expected sessions, e.g. "
            f"{[d.isoformat() for d in uncovered['session_date'].head(5).to_list()]}"
        )
    bad = frame.filter(~(pl.col("open_utc") < pl.col("close_utc")))
    if bad.height:
        raise ConfigError(
            f"session_windows needs open_utc < close_utc; {bad.height} rows do not, e.g. {bad.head(3).rows()}"
        )
    return frame
