"""Reading and writing daily features and cross-asset correlations.

A write covers one partition in one transaction: it deletes the partition's rows in ``[start, end]``
(inclusive session dates) for the given feature-set version that were built from the same bar interval,
or that it recomputes, and inserts the new rows. Running it twice therefore leaves exactly one copy;
sessions that disappeared from the input disappear from the table; sessions built from another bar
interval that the write did not recompute are never deleted (``features_daily.interval``).

Partitions:
- ``features_daily``: one symbol, a date range, a version.
- ``cross_asset_daily``: every pair among a set of symbols, a date range, a version, a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import polars as pl

from core.errors import ConfigError, DataError
from core.schema import CROSS_ASSET_SCHEMA, DAILY_FEATURES_SCHEMA, FEATURE_SET_VERSION
from core.symbols import validate_symbol
from warehouse.db import staged_transaction

_VERSION = "feature_set_version"
_FEATURE_COLS = list(DAILY_FEATURES_SCHEMA)
_CROSS_COLS = list(CROSS_ASSET_SCHEMA)


def _q(name: str) -> str:
    """Quote an identifier from the fixed column lists (``window`` is an SQL keyword)."""
    return f'"{name}"'


def _check_range(start: date, end: date) -> None:
    if not isinstance(start, date) or not isinstance(end, date) or start > end:
        raise ConfigError(f"start/end must be dates with start <= end; got start={start!r}, end={end!r}")


def _check_version(version: str) -> str:
    if not isinstance(version, str) or not version or len(version) > 64:
        raise ConfigError(f"version must be a non-empty string of at most 64 characters; got {version!r}")
    return version


def _symbols(symbols: Sequence[str] | str) -> list[str]:
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    if not names:
        raise ConfigError("symbols must name at least one symbol")
    return [validate_symbol(s) for s in names]


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType], what: str, version: str) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"{what} must be a polars DataFrame; got {type(frame)}")
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise DataError(f"{what} frame lacks columns {missing}; expected {list(schema)}")
    if _VERSION in frame.columns and frame.height:
        found = frame[_VERSION].unique().to_list()
        if found != [version]:
            raise DataError(f"{what} frame has {_VERSION} {found}; expected only {version!r}")
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def _in_range(frame: pl.DataFrame, start: date, end: date, what: str) -> None:
    outside = frame.filter((pl.col("session_date") < start) | (pl.col("session_date") > end))
    if outside.height:
        raise DataError(
            f"{outside.height} {what} row(s) fall outside the partition {start}..{end}, e.g. "
            f"{outside['session_date'].head(3).to_list()}"
        )


_STAGE_VIEW = "_volrisk_features_stage"


def _insert_query(table: str, columns: list[str]) -> str:
    cols = ", ".join(_q(c) for c in columns)
    return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {_STAGE_VIEW}"  # noqa: S608


# Assembled once from fixed identifiers; every value is bound.
_Q_DELETE_FEATURES = (
    "DELETE FROM features_daily WHERE symbol = ? AND feature_set_version = ? "
    'AND session_date BETWEEN ? AND ? AND (?::VARCHAR IS NULL OR "interval" = ? '
    "OR session_date IN (SELECT session_date FROM _volrisk_features_stage))"
)
assert _STAGE_VIEW in _Q_DELETE_FEATURES
_Q_INSERT_FEATURES = _insert_query("features_daily", [*_FEATURE_COLS, _VERSION])
_Q_DELETE_CROSS = (
    "DELETE FROM cross_asset_daily WHERE list_contains(?::VARCHAR[], symbol_a) "
    'AND list_contains(?::VARCHAR[], symbol_b) AND feature_set_version = ? AND "window" = ? '
    "AND session_date BETWEEN ? AND ?"
)
_Q_INSERT_CROSS = _insert_query("cross_asset_daily", [*_CROSS_COLS, _VERSION])


def _replace(
    con: duckdb.DuckDBPyConnection,
    delete_query: str,
    insert_query: str,
    stage: pl.DataFrame,
    params: list[object],
) -> None:
    """Run ``delete_query`` and insert ``stage`` in one transaction."""
    with staged_transaction(con, _STAGE_VIEW, stage.to_arrow()):
        con.sql(delete_query, params=params)
        if stage.height:
            con.sql(insert_query)


def write_features(
    con: duckdb.DuckDBPyConnection,
    frame: pl.DataFrame,
    symbol: str,
    start: date,
    end: date,
    version: str = FEATURE_SET_VERSION,
    interval: str | None = None,
) -> int:
    """Replace one symbol's daily features for sessions ``start..end`` (inclusive) in one transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable, migrated warehouse connection.
    frame : pl.DataFrame
        Rows in :data:`tasks.features.DAILY_FEATURES_SCHEMA`, all of ``symbol`` and inside the range;
        an empty frame clears the range.
    symbol : str
        The partition's symbol.
    start, end : date
        Inclusive session-date range that is replaced.
    version : str
        Feature-set version stored in ``feature_set_version``.
    interval : str | None
        The bar interval the features were computed from (default: the frame's). Stored sessions of
        the range built from another interval are replaced only where ``frame`` recomputes them,
        never deleted; with no interval at all (an empty frame), the whole range is cleared.

    Returns
    -------
    int
        Rows written.
    """
    validate_symbol(symbol)
    _check_range(start, end)
    _check_version(version)
    rows = _conform(frame, DAILY_FEATURES_SCHEMA, "features", version)
    others = rows.filter(pl.col("symbol") != symbol)["symbol"].unique().to_list()
    if others:
        raise DataError(f"features frame holds symbols {sorted(others)[:5]}; this partition is {symbol!r}")
    _in_range(rows, start, end, "features")
    dupes = rows["session_date"].is_duplicated().sum()
    if dupes:
        raise DataError(f"features frame repeats {dupes} session_date row(s) for {symbol!r}")
    interval = _one_interval(rows, interval, symbol)
    stage = rows.with_columns(pl.lit(version).alias(_VERSION))
    params = [symbol, version, start, end, interval, interval]
    _replace(con, _Q_DELETE_FEATURES, _Q_INSERT_FEATURES, stage, params)
    return stage.height


def _one_interval(rows: pl.DataFrame, interval: str | None, symbol: str) -> str | None:
    """The bar interval of a features write: the frame's single one, which must match ``interval``."""
    found = rows["interval"].unique().to_list()
    if len(found) > 1 or (found and interval is not None and found != [interval]):
        raise DataError(
            f"features frame of {symbol!r} holds bar intervals {found}; this write is {interval!r}"
        )
    return interval if interval is not None else (found[0] if found else None)


def read_features(
    con: duckdb.DuckDBPyConnection,
    symbols: Sequence[str] | str,
    start: date | None = None,
    end: date | None = None,
    version: str = FEATURE_SET_VERSION,
) -> pl.DataFrame:
    """Daily features of ``symbols`` with ``start <= session_date <= end``, sorted by symbol and date.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse connection (read-only is fine).
    symbols : Sequence[str] | str
        One or more symbols.
    start, end : date | None
        Optional inclusive bounds.
    version : str
        Feature-set version.

    Returns
    -------
    pl.DataFrame
        :data:`tasks.features.DAILY_FEATURES_SCHEMA`.
    """
    names = _symbols(symbols)
    _check_version(version)
    clauses = [f"symbol IN ({', '.join('?' for _ in names)})", "feature_set_version = ?"]
    params: list[object] = [*names, version]
    _add_bounds(clauses, params, start, end)
    cols = ", ".join(_q(c) for c in _FEATURE_COLS)
    query = f"SELECT {cols} FROM features_daily WHERE {' AND '.join(clauses)} ORDER BY symbol, session_date"  # noqa: S608
    return _result(con.sql(query, params=params).pl(), DAILY_FEATURES_SCHEMA)


def _add_bounds(clauses: list[str], params: list[object], start: date | None, end: date | None) -> None:
    if start is not None and end is not None:
        _check_range(start, end)
    if start is not None:
        clauses.append("session_date >= ?")
        params.append(start)
    if end is not None:
        clauses.append("session_date <= ?")
        params.append(end)


def _result(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def write_cross_asset(
    con: duckdb.DuckDBPyConnection,
    frame: pl.DataFrame,
    symbols: Sequence[str],
    start: date,
    end: date,
    version: str = FEATURE_SET_VERSION,
    window: int = 30,
) -> int:
    """Replace the cross-asset rows of every pair among ``symbols`` for ``start..end`` and ``window``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable, migrated warehouse connection.
    frame : pl.DataFrame
        Rows in :data:`tasks.features.CROSS_ASSET_SCHEMA` (from ``cross_asset_features``), both symbols
        of each row in ``symbols``, ``symbol_a < symbol_b``, ``window`` equal to ``window``.
    symbols : Sequence[str]
        The symbols whose pairs form the partition.
    start, end : date
        Inclusive session-date range that is replaced.
    version : str
        Feature-set version.
    window : int
        Rolling window of the partition.

    Returns
    -------
    int
        Rows written.
    """
    names = _symbols(symbols)
    if len(set(names)) < 2:
        raise ConfigError(f"symbols must list at least two distinct symbols; got {names!r}")
    _check_range(start, end)
    _check_version(version)
    if not isinstance(window, int) or window < 2:
        raise ConfigError(f"window must be an integer >= 2; got {window!r}")
    rows = _conform(frame, CROSS_ASSET_SCHEMA, "cross-asset", version)
    stray = rows.filter(~pl.col("symbol_a").is_in(names) | ~pl.col("symbol_b").is_in(names))
    if stray.height:
        pairs = stray.select("symbol_a", "symbol_b").unique().rows()[:5]
        raise DataError(f"cross-asset frame holds pairs outside {names}: {pairs}")
    if rows.filter(pl.col("symbol_a") >= pl.col("symbol_b")).height:
        raise DataError("cross-asset pairs must be ordered symbol_a < symbol_b")
    if rows.filter(pl.col("window") != window).height:
        found = rows["window"].unique().to_list()
        raise DataError(f"cross-asset frame holds windows {found}; expected {window}")
    _in_range(rows, start, end, "cross-asset")
    dupes = rows.select(pl.struct("session_date", "symbol_a", "symbol_b").is_duplicated().sum()).item()
    if dupes:
        raise DataError(f"cross-asset frame repeats {dupes} (session_date, symbol_a, symbol_b) row(s)")
    _replace(
        con,
        _Q_DELETE_CROSS,
        _Q_INSERT_CROSS,
        rows.with_columns(pl.lit(version).alias(_VERSION)),
        [names, names, version, window, start, end],
    )
    return rows.height


def read_cross_asset(
    con: duckdb.DuckDBPyConnection,
    symbols: Sequence[str],
    start: date | None = None,
    end: date | None = None,
    version: str = FEATURE_SET_VERSION,
    window: int | None = None,
    any_partner: bool = False,
) -> pl.DataFrame:
    """Cross-asset rows whose two symbols are both in ``symbols``, sorted by pair and date.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse connection (read-only is fine).
    symbols : Sequence[str]
        Symbols; pairs among them are returned.
    start, end : date | None
        Optional inclusive bounds.
    version : str
        Feature-set version.
    window : int | None
        Only this rolling window (all windows when None).
    any_partner : bool
        Return every pair with at least one symbol in ``symbols`` (a symbol's correlations with
        everything stored), instead of pairs among ``symbols`` only.

    Returns
    -------
    pl.DataFrame
        :data:`tasks.features.CROSS_ASSET_SCHEMA`.
    """
    names = _symbols(symbols)
    _check_version(version)
    marks = ", ".join("?" for _ in names)
    join = "OR" if any_partner else "AND"
    clauses = [f"(symbol_a IN ({marks}) {join} symbol_b IN ({marks}))", "feature_set_version = ?"]
    params: list[object] = [*names, *names, version]
    if window is not None:
        clauses.append('"window" = ?')
        params.append(window)
    _add_bounds(clauses, params, start, end)
    cols = ", ".join(_q(c) for c in _CROSS_COLS)
    query = (
        f"SELECT {cols} FROM cross_asset_daily WHERE {' AND '.join(clauses)} "  # noqa: S608
        'ORDER BY symbol_a, symbol_b, "window", session_date'
    )
    return _result(con.sql(query, params=params).pl(), CROSS_ASSET_SCHEMA)
