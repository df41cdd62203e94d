"""model_runs and predictions in a real DuckDB file: round trips, upserts, idempotence, filters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from old_warehouse import warehouse_before

from core.errors import ConfigError, DataError
from core.hashing import content_hash
from core.schema import PREDICTION_SCHEMA
from tasks.models.base import ModelData, get_model
from warehouse.db import connect, session
from warehouse.migrate import available_migrations, current_version
from warehouse.models import (
    MODEL_RUN_SCHEMA,
    PREDICTION_TABLE_SCHEMA,
    list_model_runs,
    read_model_run,
    read_predictions,
    read_run_predictions,
    write_model_run,
    write_predictions,
)

TRAIN_END = date(2021, 6, 30)


@pytest.fixture(scope="module")
def predictions(btc_daily: pl.DataFrame) -> pl.DataFrame:
    data = ModelData(btc_daily)
    origins = btc_daily.filter(pl.col("session_date") > TRAIN_END)["session_date"].head(40).to_list()
    return get_model("garch").fit(data, TRAIN_END).predict(data, origins)


@pytest.fixture
def con(warehouse_path: Path) -> duckdb.DuckDBPyConnection:
    connection = connect(warehouse_path)
    yield connection
    connection.close()


def test_model_run_round_trip_and_merge(con: duckdb.DuckDBPyConnection) -> None:
    config = {"family": "student_t", "mean": "zero"}
    write_model_run(
        con,
        {
            "model_run": "garch-1",
            "model": "garch",
            "symbols": ["BTC-USDT"],
            "train_start": date(2017, 8, 17),
            "train_end": TRAIN_END,
            "config": config,
            "data_version": "abc123",
            "device": "cpu",
        },
    )
    first = read_model_run(con, "garch-1")
    assert first is not None and first["config"] == config and first["symbols"] == ["BTC-USDT"]
    assert first["config_hash"] == content_hash(config) and first["metrics"] is None
    # completing the run later keeps what was stored and the creation time
    write_model_run(
        con, {"model_run": "garch-1", "model": "garch", "metrics": {"qlike": 0.31}, "wall_s": 2.5}
    )
    done = read_model_run(con, "garch-1")
    assert done is not None
    assert done["metrics"] == {"qlike": 0.31} and done["wall_s"] == 2.5
    assert done["train_end"] == TRAIN_END and done["device"] == "cpu" and done["config"] == config
    assert done["created_at"] == first["created_at"]
    write_model_run(con, {"model_run": "har-1", "model": "har", "symbols": "SPY"})
    runs = list_model_runs(con)
    assert runs.schema == pl.Schema(MODEL_RUN_SCHEMA) and runs["model_run"].to_list() == ["garch-1", "har-1"]
    assert list_model_runs(con, model="har")["model_run"].to_list() == ["har-1"]
    assert list_model_runs(con, model="lstm").height == 0
    assert read_model_run(con, "nope") is None


@pytest.mark.parametrize(
    ("run", "word"),
    [
        ({"model": "garch"}, "model_run"),
        ({"model_run": "x", "model": "garch", "colour": "red"}, "colour"),
        ({"model_run": "x", "model": "garch", "train_end": "2021-01-01"}, "train_end"),
        ({"model_run": "x", "model": "garch", "wall_s": -1}, "wall_s"),
        ({"model_run": "x", "model": "garch", "config": "{not json"}, "config"),
        ({"model_run": "x", "model": "garch", "symbols": ["BTC/USDT"]}, "symbol"),
        ({"model_run": "x", "model": "garch", "created_at": datetime(2024, 1, 1)}, "created_at"),
    ],
)
def test_bad_model_runs_are_refused(
    con: duckdb.DuckDBPyConnection, run: dict[str, object], word: str
) -> None:
    with pytest.raises(ConfigError, match=word):
        write_model_run(con, run)


def test_a_run_keeps_its_model(con: duckdb.DuckDBPyConnection, predictions: pl.DataFrame) -> None:
    write_model_run(con, {"model_run": "r", "model": "har"})
    with pytest.raises(DataError, match="already a run of 'har'"):
        write_model_run(con, {"model_run": "r", "model": "garch"})
    with pytest.raises(DataError, match="run of 'har'"):
        write_predictions(con, predictions, "r")


def test_predictions_round_trip_and_idempotent(
    warehouse_path: Path, con: duckdb.DuckDBPyConnection, predictions: pl.DataFrame
) -> None:
    write_model_run(con, {"model_run": "garch-1", "model": "garch"})
    assert write_predictions(con, predictions, "garch-1", fold=3) == predictions.height
    stored = read_predictions(con, model_run="garch-1")
    assert stored.schema == pl.Schema(PREDICTION_TABLE_SCHEMA)
    assert stored.select(list(PREDICTION_SCHEMA)).equals(predictions)  # floats round-trip exactly
    assert (stored["fold"] == 3).all() and (stored["model_run"] == "garch-1").all()
    # writing the same batch again changes nothing, creation times included
    assert write_predictions(con, predictions, "garch-1", fold=3) == predictions.height
    assert read_predictions(con, model_run="garch-1").equals(stored)
    # a changed row is updated in place; unchanged rows keep their created_at
    changed = predictions.with_columns(
        pl.when(pl.col("origin") == predictions["origin"][0])
        .then(pl.col("variance") * 2)
        .otherwise(pl.col("variance"))
    )
    write_predictions(con, changed, "garch-1", fold=3)
    again = read_predictions(con, model_run="garch-1")
    assert again.height == predictions.height
    assert again["variance"][0] == 2 * stored["variance"][0]
    assert again["created_at"][0] > stored["created_at"][0]
    assert again["created_at"][1:].equals(stored["created_at"][1:])
    con.close()
    with session(warehouse_path, read_only=True) as ro:  # readers open read-only
        assert read_predictions(ro, model="garch").height == predictions.height


def test_duplicates_in_a_batch_keep_the_last(
    con: duckdb.DuckDBPyConnection, predictions: pl.DataFrame
) -> None:
    first = predictions.head(3)
    dupes = pl.concat([first, first.with_columns(pl.col("rv") + 1.0)])
    assert write_predictions(con, dupes, "garch-2") == 3
    stored = read_predictions(con, model_run="garch-2")
    assert stored["rv"].to_list() == (first["rv"] + 1.0).to_list()
    assert stored["fold"].null_count() == 3


def test_read_filters(con: duckdb.DuckDBPyConnection, predictions: pl.DataFrame) -> None:
    write_predictions(con, predictions, "a")
    write_predictions(con, predictions.head(5), "b")
    days = predictions["origin"].to_list()
    assert read_predictions(con).height == predictions.height + 5
    assert read_predictions(con, model_run="b").height == 5
    window = read_predictions(con, symbols="BTC-USDT", start=days[2], end=days[4])
    assert window["origin"].to_list() == days[2:5] * 2  # sorted by model_run, then origin
    assert read_predictions(con, symbols=["SPY"]).height == 0
    assert read_predictions(con, model="har").height == 0
    empty = read_predictions(con, model_run="zzz")
    assert empty.height == 0 and empty.schema == pl.Schema(PREDICTION_TABLE_SCHEMA)
    with pytest.raises(ConfigError, match="start"):
        read_predictions(con, start=days[4], end=days[2])


def test_read_run_predictions_is_the_per_run_reads_in_one_query(
    con: duckdb.DuckDBPyConnection, predictions: pl.DataFrame
) -> None:
    for run, rows in (("b", 5), ("a", predictions.height), ("c", 3)):
        write_predictions(con, predictions.head(rows), run)
    both = read_run_predictions(con, ["c", "a", "a", "zzz"])  # any order, duplicates, an unknown run
    per_run = pl.concat([read_predictions(con, model_run=r) for r in ("a", "c")])
    assert both.equals(per_run) and both.height == predictions.height + 3
    empty = read_run_predictions(con, [])
    assert empty.height == 0 and empty.schema == pl.Schema(PREDICTION_TABLE_SCHEMA)
    with pytest.raises(ConfigError, match="model_run"):
        read_run_predictions(con, ["a", ""])


def test_bad_prediction_batches(con: duckdb.DuckDBPyConnection, predictions: pl.DataFrame) -> None:
    with pytest.raises(DataError, match="lacks columns"):
        write_predictions(con, predictions.drop("q50"), "x")
    with pytest.raises(DataError, match="target <= origin"):
        write_predictions(con, predictions.with_columns(pl.col("origin").alias("target")), "x")
    with pytest.raises(DataError, match="one model"):
        write_predictions(
            con, pl.concat([predictions.head(1), predictions.tail(1).with_columns(model=pl.lit("har"))]), "x"
        )
    with pytest.raises(DataError, match="JSON"):
        write_predictions(con, predictions.with_columns(params=pl.lit("{oops")), "x")
    with pytest.raises(ConfigError, match="fold"):
        write_predictions(con, predictions, "x", fold=-1)
    assert read_predictions(con, model_run="x").height == 0  # nothing half-written
    assert write_predictions(con, predictions.head(0), "x") == 0


def test_created_at_is_utc(con: duckdb.DuckDBPyConnection) -> None:
    write_model_run(
        con, {"model_run": "t", "model": "naive", "created_at": datetime(2024, 5, 1, 12, tzinfo=UTC)}
    )
    run = read_model_run(con, "t")
    assert run is not None and run["created_at"] == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_migration_renames_var_to_variance(tmp_path: Path) -> None:
    """A warehouse made before migration 006 keeps its predictions; the column reads as ``variance``."""
    path = tmp_path / "old.duckdb"
    old = warehouse_before(path, 6)
    old.sql(
        "INSERT INTO predictions (model_run, model, symbol, origin, target, horizon, fold, var, rv, mean,"
        " q50, family, params, created_at) VALUES ('garch-1', 'garch', 'BTC-USDT', DATE '2021-07-01',"
        " DATE '2021-07-02', 1, 0, 4e-4, 3e-4, 0.0, 0.0, 'gaussian', '{}', now())"
    )
    old.close()
    with session(path) as con:
        assert current_version(con) == max(m.version for m in available_migrations())
        stored = read_predictions(con, model_run="garch-1")
    assert "var" not in stored.columns
    assert stored.height == 1 and stored["variance"][0] == 4e-4 and stored["rv"][0] == 3e-4
