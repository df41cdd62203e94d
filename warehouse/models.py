"""Model runs and predictions (migrations 004, 006): typed reads and idempotent upserts.

``model_runs``
    One row per trained model, keyed on ``model_run``. :func:`write_model_run` upserts a dict: a field
    that is absent or ``None`` keeps the stored value, so a run can be recorded at the start of
    training and completed (metrics, wall time, checkpoint) at the end. ``created_at`` is set once.
``predictions``
    One row per (model_run, symbol, origin, horizon) in ``core.schema.PREDICTION_SCHEMA`` plus
    ``model_run``, ``fold`` and ``created_at``. :func:`write_predictions` upserts a batch in one
    transaction: keys repeated inside the batch keep their last row, and ``created_at`` changes only
    when a stored row's values change, so writing the same predictions twice changes nothing.

Queries are module constants assembled from fixed identifiers; every value is a bound parameter.
JSON columns travel as text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import polars as pl

from core.errors import ConfigError, DataError
from core.hashing import content_hash
from core.schema import PREDICTION_SCHEMA
from core.symbols import validate_symbol
from warehouse.db import staged_transaction

UTC_TS = pl.Datetime("us", "UTC")

#: Frame layout of ``model_runs`` (JSON columns as text).
MODEL_RUN_SCHEMA: dict[str, pl.DataType] = {
    "model_run": pl.String(),
    "model": pl.String(),
    "symbols": pl.String(),
    "train_start": pl.Date(),
    "train_end": pl.Date(),
    "config": pl.String(),
    "config_hash": pl.String(),
    "data_version": pl.String(),
    "metrics": pl.String(),
    "device": pl.String(),
    "wall_s": pl.Float64(),
    "checkpoint": pl.String(),
    "created_at": UTC_TS,
}
_RUN_JSON = ("symbols", "config", "metrics")
_RUN_TEXT = ("model_run", "model", "config_hash", "data_version", "device", "checkpoint")
_RUN_DATES = ("train_start", "train_end")

#: Frame layout of ``predictions`` as read back.
PREDICTION_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "model_run": pl.String(),
    **PREDICTION_SCHEMA,
    "fold": pl.Int32(),
    "created_at": UTC_TS,
}
PREDICTION_KEY = ("model_run", "symbol", "origin", "horizon")
_PRED_VALUES = tuple(c for c in PREDICTION_TABLE_SCHEMA if c not in PREDICTION_KEY and c != "created_at")
_STAGE = "_volrisk_predictions_stage"


def _q(name: str) -> str:
    return f'"{name}"'


# --- fixed queries ---------------------------------------------------------------------------------
_RUN_COLS = list(MODEL_RUN_SCHEMA)
_Q_RUN_UPSERT = (
    f"INSERT INTO model_runs ({', '.join(_q(c) for c in _RUN_COLS)}) VALUES ("  # noqa: S608
    + ", ".join("?::JSON" if c in _RUN_JSON else "?" for c in _RUN_COLS)
    + ") ON CONFLICT (model_run) DO UPDATE SET "
    + ", ".join(
        f"{_q(c)} = coalesce(excluded.{_q(c)}, model_runs.{_q(c)})"
        for c in _RUN_COLS
        if c not in ("model_run", "created_at")
    )
)
_RUN_SELECT = ", ".join(f"{_q(c)}::VARCHAR AS {_q(c)}" if c in _RUN_JSON else _q(c) for c in _RUN_COLS)
_Q_RUN_ONE = f"SELECT {_RUN_SELECT} FROM model_runs WHERE model_run = ?"  # noqa: S608
_Q_RUN_LIST = (
    f"SELECT {_RUN_SELECT} FROM model_runs WHERE (?::VARCHAR IS NULL OR model = ?) "  # noqa: S608
    "ORDER BY created_at, model_run"
)
_Q_RUN_MODEL = "SELECT model FROM model_runs WHERE model_run = ?"

_PRED_COLS = list(PREDICTION_TABLE_SCHEMA)
_PRED_CHANGED = " OR ".join(
    f"predictions.{_q(c)}::VARCHAR IS DISTINCT FROM excluded.{_q(c)}::VARCHAR"
    if c == "params"
    else f"predictions.{_q(c)} IS DISTINCT FROM excluded.{_q(c)}"
    for c in _PRED_VALUES
)
_Q_PRED_UPSERT = (
    f"INSERT INTO predictions ({', '.join(_q(c) for c in _PRED_COLS)}) SELECT "  # noqa: S608
    + ", ".join(f"{_q(c)}::JSON" if c == "params" else _q(c) for c in _PRED_COLS)
    + f" FROM {_STAGE} ON CONFLICT ({', '.join(PREDICTION_KEY)}) DO UPDATE SET "
    + ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in _PRED_VALUES)
    + f", created_at = CASE WHEN {_PRED_CHANGED} THEN excluded.created_at ELSE predictions.created_at END"
)
_Q_PRED_SELECT = (
    "SELECT "  # noqa: S608
    + ", ".join(f"{_q(c)}::VARCHAR AS {_q(c)}" if c == "params" else _q(c) for c in _PRED_COLS)
    + " FROM predictions WHERE (?::VARCHAR IS NULL OR model_run = ?) AND (?::VARCHAR IS NULL OR model = ?)"
    " AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], symbol))"
    " AND (?::DATE IS NULL OR origin >= ?) AND (?::DATE IS NULL OR origin <= ?)"
    " ORDER BY model_run, symbol, origin, horizon"
)

_Q_RUNS_PRED_SELECT = (
    "SELECT "  # noqa: S608
    + ", ".join(f"{_q(c)}::VARCHAR AS {_q(c)}" if c == "params" else _q(c) for c in _PRED_COLS)
    + " FROM predictions WHERE model_run IN (SELECT unnest(?::VARCHAR[]))"
    " ORDER BY model_run, symbol, origin, horizon"
)


# --- model runs -----------------------------------------------------------------------------------


def _text(value: object, name: str, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 512:
        raise ConfigError(
            f"model run field {name!r} must be a non-empty string (<= 512 chars); got {value!r}"
        )
    return value


def _json(value: object, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model run field {name!r} is not valid JSON: {exc}") from None
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model run field {name!r} cannot be stored as JSON: {exc}") from None


def _day(value: object, name: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ConfigError(f"model run field {name!r} must be a datetime.date; got {value!r}")
    return value


def _run_values(run: Mapping[str, Any]) -> list[object]:
    if not isinstance(run, Mapping):
        raise ConfigError(f"run must be a mapping of model_runs fields; got {type(run)}")
    unknown = sorted(set(run) - set(MODEL_RUN_SCHEMA))
    if unknown:
        raise ConfigError(f"unknown model run field(s) {unknown}; expected some of {_RUN_COLS}")
    fields = dict(run)
    if isinstance(fields.get("symbols"), str):
        fields["symbols"] = [fields["symbols"]]
    if fields.get("symbols") is not None:
        fields["symbols"] = [validate_symbol(s) for s in fields["symbols"]]
    if (
        fields.get("config") is not None
        and fields.get("config_hash") is None
        and not isinstance(fields["config"], str)
    ):
        fields["config_hash"] = content_hash(fields["config"])
    wall = fields.get("wall_s")
    if wall is not None and (
        isinstance(wall, bool) or not isinstance(wall, int | float) or not math.isfinite(wall) or wall < 0
    ):
        raise ConfigError(f"model run field 'wall_s' must be a finite number >= 0; got {wall!r}")
    created = fields.get("created_at")
    if created is None:
        created = datetime.now(UTC)
    elif not isinstance(created, datetime) or created.tzinfo is None:
        raise ConfigError(f"model run field 'created_at' must be a timezone-aware datetime; got {created!r}")
    values: list[object] = []
    for c in _RUN_COLS:
        v = fields.get(c)
        if c in _RUN_TEXT:
            values.append(_text(v, c, required=c in ("model_run", "model")))
        elif c in _RUN_JSON:
            values.append(_json(v, c))
        elif c in _RUN_DATES:
            values.append(_day(v, c))
        elif c == "wall_s":
            values.append(None if v is None else float(v))
        else:  # created_at
            values.append(created)
    return values


def write_model_run(con: duckdb.DuckDBPyConnection, run: Mapping[str, Any]) -> None:
    """Insert or update one ``model_runs`` row.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable, migrated warehouse connection.
    run : Mapping[str, Any]
        Fields of :data:`MODEL_RUN_SCHEMA`; ``model_run`` and ``model`` are required. ``symbols`` is a
        list of symbols (or one), ``config``/``metrics`` JSON-able values (or JSON text),
        ``train_start``/``train_end`` dates. ``config_hash`` defaults to a content hash of ``config``.
        An absent or ``None`` field keeps the stored value; ``created_at`` is kept once set.

    Raises
    ------
    ConfigError
        For an unknown field or a value of the wrong type (the message names the field).
    DataError
        When ``model_run`` is already stored as a run of another model.
    """
    values = _run_values(run)
    stored = con.sql(_Q_RUN_MODEL, params=[values[0]]).fetchall()
    if stored and stored[0][0] != values[1]:
        raise DataError(f"model_run {values[0]!r} is already a run of {stored[0][0]!r}, not {values[1]!r}")
    con.sql(_Q_RUN_UPSERT, params=values)


def _parse_run(row: dict[str, Any]) -> dict[str, Any]:
    for c in _RUN_JSON:
        if row[c] is not None:
            row[c] = json.loads(row[c])
    return row


def read_model_run(con: duckdb.DuckDBPyConnection, model_run: str) -> dict[str, Any] | None:
    """One model run as a dict (JSON fields parsed), or ``None`` when it is not stored."""
    _text(model_run, "model_run", required=True)
    rows = con.sql(_Q_RUN_ONE, params=[model_run]).fetchall()
    if not rows:
        return None
    return _parse_run(dict(zip(_RUN_COLS, rows[0], strict=True)))


def list_model_runs(con: duckdb.DuckDBPyConnection, model: str | None = None) -> pl.DataFrame:
    """Stored model runs (optionally of one model), oldest first, in :data:`MODEL_RUN_SCHEMA`."""
    _text(model, "model")
    frame = con.sql(_Q_RUN_LIST, params=[model, model]).pl()
    if frame.height == 0:
        return pl.DataFrame(schema=MODEL_RUN_SCHEMA)
    return frame.select([pl.col(c).cast(t) for c, t in MODEL_RUN_SCHEMA.items()])


# --- predictions ----------------------------------------------------------------------------------


def _conform_predictions(frame: pl.DataFrame) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"predictions must be a polars DataFrame; got {type(frame)}")
    missing = [c for c in PREDICTION_SCHEMA if c not in frame.columns]
    if missing:
        raise DataError(f"predictions frame lacks columns {missing}; expected {list(PREDICTION_SCHEMA)}")
    try:
        rows = frame.select([pl.col(c).cast(t) for c, t in PREDICTION_SCHEMA.items()])
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"predictions frame does not cast to PREDICTION_SCHEMA: {exc}") from None
    required = ("model", "symbol", "origin", "target", "horizon", "family")
    nulls = [c for c in required if rows[c].null_count()]
    if nulls:
        raise DataError(f"predictions have nulls in required columns {nulls}")
    bad = rows.filter((pl.col("target") <= pl.col("origin")) | (pl.col("horizon") < 1))
    if bad.height:
        raise DataError(
            f"{bad.height} prediction row(s) have target <= origin or horizon < 1, e.g. "
            f"{bad.select('symbol', 'origin', 'target', 'horizon').head(3).rows()}"
        )
    for symbol in rows["symbol"].unique().to_list():
        validate_symbol(symbol)
    return rows


def _check_batch_model(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, model_run: str) -> None:
    """Refuse a batch of several models, or of a model other than the recorded run's."""
    models = rows["model"].unique().to_list()
    if len(models) != 1:
        raise DataError(f"one predictions batch must hold one model; got {sorted(models)}")
    stored = con.sql(_Q_RUN_MODEL, params=[model_run]).fetchall()
    if stored and stored[0][0] != models[0]:
        raise DataError(
            f"model_run {model_run!r} is a run of {stored[0][0]!r}; these predictions are {models[0]!r}"
        )


def write_predictions(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, model_run: str, fold: int | None = None
) -> int:
    """Upsert one batch of predictions of ``model_run`` in one transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable, migrated warehouse connection.
    frame : pl.DataFrame
        Rows in :data:`~core.schema.PREDICTION_SCHEMA` (extra columns are ignored), all of one
        model; ``params`` is JSON text or null.
    model_run : str
        The run the rows belong to; when it is recorded in ``model_runs`` its model must match.
    fold : int | None
        Walk-forward fold stored with every row.

    Returns
    -------
    int
        Distinct (symbol, origin, horizon) rows written.
    """
    _text(model_run, "model_run", required=True)
    if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int) or fold < 0):
        raise ConfigError(f"fold must be None or an integer >= 0; got {fold!r}")
    rows = _conform_predictions(frame)
    if rows.height == 0:
        return 0
    _check_batch_model(con, rows, model_run)
    stage = (
        rows.unique(subset=["symbol", "origin", "horizon"], keep="last", maintain_order=True)
        .with_columns(
            pl.lit(model_run, pl.String()).alias("model_run"),
            pl.lit(fold, pl.Int32()).alias("fold"),
            pl.lit(datetime.now(UTC), UTC_TS).alias("created_at"),
        )
        .select(_PRED_COLS)
    )
    with staged_transaction(con, _STAGE, stage.to_arrow()):
        try:
            con.sql(_Q_PRED_UPSERT)
        except duckdb.ConversionException as exc:
            raise DataError(f"predictions params must be JSON text: {exc}") from None
    return stage.height


def read_predictions(
    con: duckdb.DuckDBPyConnection,
    model_run: str | None = None,
    model: str | None = None,
    symbols: Sequence[str] | str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """Stored predictions, filtered, in :data:`PREDICTION_TABLE_SCHEMA`.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse connection (read-only is fine).
    model_run, model : str | None
        Exact-match filters.
    symbols : Sequence[str] | str | None
        Only these symbols.
    start, end : date | None
        Inclusive bounds on ``origin``.

    Returns
    -------
    pl.DataFrame
        Sorted by (model_run, symbol, origin, horizon).
    """
    _text(model_run, "model_run")
    _text(model, "model")
    names = None
    if symbols is not None:
        names = [validate_symbol(s) for s in ([symbols] if isinstance(symbols, str) else list(symbols))]
    for name, bound in (("start", start), ("end", end)):
        if bound is not None and (isinstance(bound, datetime) or not isinstance(bound, date)):
            raise ConfigError(f"{name} must be a datetime.date; got {bound!r}")
    if start is not None and end is not None and start > end:
        raise ConfigError(f"start must not be after end; got start={start}, end={end}")
    params: list[object] = [model_run, model_run, model, model, names, names, start, start, end, end]
    return _prediction_frame(con.sql(_Q_PRED_SELECT, params=params).pl())


def read_run_predictions(con: duckdb.DuckDBPyConnection, model_runs: Sequence[str]) -> pl.DataFrame:
    """The stored predictions of every run in ``model_runs``, in one query.

    An evaluation stacks or scores thousands of fold runs; one query per run cost seconds per
    ensemble block. Sorted by (model_run, symbol, origin, horizon), in :data:`PREDICTION_TABLE_SCHEMA`.
    """
    runs = sorted({str(_text(r, "model_run", required=True)) for r in model_runs})
    return _prediction_frame(con.sql(_Q_RUNS_PRED_SELECT, params=[runs]).pl())


def _prediction_frame(frame: pl.DataFrame) -> pl.DataFrame:
    if frame.height == 0:
        return pl.DataFrame(schema=PREDICTION_TABLE_SCHEMA)
    return frame.select([pl.col(c).cast(t) for c, t in PREDICTION_TABLE_SCHEMA.items()])
