"""Minute-mode predictions and runs through a real DuckDB file: round trip, idempotence, partitions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.schema import QUANTILE_COLUMNS
from warehouse.db import connect
from warehouse.minute_risk import (
    MINUTE_PREDICTION_SCHEMA,
    read_minute_predictions,
    read_minute_run,
    write_minute_predictions,
    write_minute_run,
)


@pytest.fixture()
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "warehouse.duckdb")
    try:
        yield connection
    finally:
        connection.close()


def _frame(n: int = 50, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t0 = datetime(2022, 1, 3, 14, 30, tzinfo=UTC)
    rows = []
    for model, variant in (("ewma", "deseasonalised"), ("ewma", "calibrated")):
        q = np.sort(rng.normal(0, 1e-3, (n, len(QUANTILE_COLUMNS))), axis=1)
        rows.append(
            pl.DataFrame({
                "model": model, "variant": variant,
                "ts": [t0 + timedelta(minutes=i) for i in range(n)],
                "ret": rng.normal(0, 1e-3, n), "season": rng.uniform(0.5, 2, n),
                "variance": rng.uniform(1e-7, 1e-6, n),
                **{c: q[:, j] for j, c in enumerate(QUANTILE_COLUMNS)},
                "var95": q[:, 2], "var99": q[:, 0], "es975": q[:, 0] * 1.1,
            })
        )  # fmt: skip
    return pl.concat(rows)


def test_predictions_round_trip_and_rewrite_is_idempotent(con: duckdb.DuckDBPyConnection) -> None:
    frame = _frame()
    assert write_minute_predictions(con, frame, "run1", "BTC-PERP") == 100
    back = read_minute_predictions(con, "run1")
    assert back.schema == pl.Schema(MINUTE_PREDICTION_SCHEMA)
    assert back.height == 100 and set(back["horizon_minutes"].to_list()) == {1}
    want = frame.sort(["model", "variant", "ts"])
    for col in ("ts", "ret", "variance", "var99", "es975", *QUANTILE_COLUMNS):
        assert back[col].to_list() == want[col].to_list(), col
    assert write_minute_predictions(con, frame, "run1", "BTC-PERP") == 100
    assert read_minute_predictions(con, "run1").equals(back)
    one = read_minute_predictions(con, "run1", model="ewma", variant="calibrated")
    assert one.height == 50 and set(one["variant"].to_list()) == {"calibrated"}


def test_a_rewrite_replaces_only_its_partition(con: duckdb.DuckDBPyConnection) -> None:
    write_minute_predictions(con, _frame(), "run1", "BTC-PERP")
    write_minute_predictions(con, _frame(), "run1", "SPY")
    write_minute_predictions(con, _frame(10, seed=1), "run1", "SPY")
    back = read_minute_predictions(con, "run1")
    assert back.filter(pl.col("symbol") == "BTC-PERP").height == 100
    assert back.filter(pl.col("symbol") == "SPY").height == 20
    assert read_minute_predictions(con, "nothing").height == 0


def test_bad_frames_and_ids_are_refused(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(DataError, match="lack columns"):
        write_minute_predictions(con, _frame().drop("var99"), "run1", "BTC-PERP")
    with pytest.raises(ConfigError):
        write_minute_predictions(con, _frame(), "", "BTC-PERP")
    assert read_minute_predictions(con, "run1").height == 0


def test_run_row_round_trip(con: duckdb.DuckDBPyConnection) -> None:
    run = {"run_id": "run1", "symbol": "SPY", "spec": {"models": ["ewma"]}, "meta": {"n_test": 5},
           "summary": [{"model": "ewma", "var99_rate": 0.01}], "recommended": {"model": "ewma"},
           "report": "r.md"}  # fmt: skip
    write_minute_run(con, run)
    write_minute_run(con, run | {"report": "r2.md"})
    back = read_minute_run(con, "run1")
    assert back is not None
    assert back["spec"] == {"models": ["ewma"]} and back["summary"][0]["var99_rate"] == 0.01
    assert back["report"] == "r2.md"
    assert read_minute_run(con, "other") is None
