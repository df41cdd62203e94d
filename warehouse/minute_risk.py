"""Minute-mode runs and predictions (migration 010): typed writes and reads.

``minute_runs``
    One row per ``run_id`` (:func:`write_minute_run` upserts it; ``created_at`` is set once).
``minute_predictions``
    One row per (run_id, symbol, model, variant, ts, horizon_minutes) in
    :data:`MINUTE_PREDICTION_SCHEMA`. :func:`write_minute_predictions` replaces a run's rows of one
    symbol in one transaction, so writing the same predictions twice changes nothing.

Every value is a bound parameter; the frame travels as Arrow.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl

from core.errors import ConfigError, DataError
from core.schema import QUANTILE_COLUMNS, UTC_TS
from core.symbols import validate_symbol
from warehouse.db import staged_transaction

#: Frame layout of ``minute_predictions``.
MINUTE_PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "symbol": pl.String(),
    "model": pl.String(),
    "variant": pl.String(),
    "ts": UTC_TS,
    "horizon_minutes": pl.Int32(),
    "ret": pl.Float64(),
    "season": pl.Float64(),
    "variance": pl.Float64(),
    **{c: pl.Float64() for c in QUANTILE_COLUMNS},
    "var95": pl.Float64(),
    "var99": pl.Float64(),
    "es975": pl.Float64(),
}
_KEY = ("run_id", "symbol", "model", "variant", "ts", "horizon_minutes")
_COLS = ", ".join(MINUTE_PREDICTION_SCHEMA)
_STAGE = "_volrisk_minute_stage"
_Q_DELETE = "DELETE FROM minute_predictions WHERE run_id = ? AND symbol = ?"
_Q_INSERT = f"INSERT INTO minute_predictions ({_COLS}) SELECT {_COLS} FROM {_STAGE}"  # noqa: S608
_Q_READ = f"SELECT {_COLS} FROM minute_predictions WHERE run_id = ?"  # noqa: S608
_RUN_JSON = ("spec", "meta", "summary", "recommended")
_Q_RUN_UPSERT = (
    "INSERT INTO minute_runs (run_id, symbol, spec, meta, summary, recommended, report, created_at) "
    "VALUES (?, ?, ?::JSON, ?::JSON, ?::JSON, ?::JSON, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
    "symbol = excluded.symbol, spec = excluded.spec, meta = excluded.meta, summary = excluded.summary, "
    "recommended = excluded.recommended, report = excluded.report"
)
_Q_RUN_READ = (
    "SELECT run_id, symbol, spec::VARCHAR, meta::VARCHAR, summary::VARCHAR, recommended::VARCHAR, "
    "report, created_at FROM minute_runs WHERE run_id = ?"
)


def _run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not run_id or len(run_id) > 100:
        raise ConfigError(f"run_id must be a non-empty string of at most 100 characters; got {run_id!r}")
    return run_id


def _conform(frame: pl.DataFrame, run_id: str, symbol: str) -> pl.DataFrame:
    need = [c for c in MINUTE_PREDICTION_SCHEMA if c not in ("run_id", "symbol", "horizon_minutes")]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DataError(f"minute predictions lack columns {missing}")
    rows = frame.with_columns(run_id=pl.lit(run_id), symbol=pl.lit(symbol))
    if "horizon_minutes" not in rows.columns:
        rows = rows.with_columns(horizon_minutes=pl.lit(1, pl.Int32()))
    try:
        rows = rows.select([pl.col(c).cast(t) for c, t in MINUTE_PREDICTION_SCHEMA.items()])
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"minute predictions do not cast to their schema: {exc}") from None
    nulls = [c for c in _KEY if rows[c].null_count()]
    if nulls:
        raise DataError(f"minute predictions have nulls in key columns {nulls}")
    return rows.unique(subset=list(_KEY), keep="last", maintain_order=True)


def write_minute_predictions(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, run_id: str, symbol: str
) -> int:
    """Replace run ``run_id``'s predictions of ``symbol`` by ``frame`` in one transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable, migrated warehouse connection.
    frame : pl.DataFrame
        ``model``, ``variant``, ``ts``, ``ret``, ``season``, ``variance``, ``q01``..``q99``,
        ``var95``, ``var99``, ``es975`` (``horizon_minutes`` optional, default 1).
    run_id, symbol : str
        The partition.

    Returns
    -------
    int
        Rows stored.
    """
    rows = _conform(frame, _run_id(run_id), validate_symbol(symbol))
    with staged_transaction(con, _STAGE, rows.to_arrow()):
        con.sql(_Q_DELETE, params=[run_id, symbol])
        con.sql(_Q_INSERT)
    return rows.height


def read_minute_predictions(
    con: duckdb.DuckDBPyConnection, run_id: str, model: str | None = None, variant: str | None = None
) -> pl.DataFrame:
    """A run's predictions (optionally one model / variant), sorted by model, variant and ts."""
    query, params = _Q_READ, [_run_id(run_id)]
    for col, value in (("model", model), ("variant", variant)):
        if value is not None:
            query += f" AND {col} = ?"
            params.append(value)
    frame = con.sql(query + " ORDER BY model, variant, ts", params=params).pl()
    if frame.height == 0:
        return pl.DataFrame(schema=MINUTE_PREDICTION_SCHEMA)
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC")).cast(MINUTE_PREDICTION_SCHEMA)


def write_minute_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    """Upsert one ``minute_runs`` row from ``run_id``, ``symbol``, the JSON fields and ``report``."""
    values = [json.dumps(run.get(k), default=str) if run.get(k) is not None else None for k in _RUN_JSON]
    con.sql(
        _Q_RUN_UPSERT,
        params=[
            _run_id(run.get("run_id")),
            validate_symbol(str(run.get("symbol"))),
            *values,
            run.get("report"),
            datetime.now(UTC),
        ],  # fmt: skip
    )


def read_minute_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """The stored run (JSON fields parsed), or None."""
    rows = con.sql(_Q_RUN_READ, params=[_run_id(run_id)]).fetchall()
    if not rows:
        return None
    out = dict(zip(("run_id", "symbol", *_RUN_JSON, "report", "created_at"), rows[0], strict=True))
    for key in _RUN_JSON:
        if out[key] is not None:
            out[key] = json.loads(out[key])
    return out
