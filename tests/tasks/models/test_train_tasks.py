"""train_model / predict: warehouse features in, a model_runs row, a checkpoint and predictions out."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError
from flows.steps.train import predict_and_record, restore_run, train_and_record
from tasks.models.base import ModelData, get_model
from tasks.train import model_run_id
from warehouse.db import session, writer
from warehouse.features import write_features
from warehouse.models import read_model_run, read_predictions, write_model_run

TINY = {"epochs": 2, "d_model": 16, "heads": 2, "layers": 1, "ff": 32, "window": 10}
TRAIN_END = date(2021, 12, 31)


@pytest.fixture(scope="module")
def warehouse(btc_daily: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    with writer(path) as con:
        write_features(
            con, btc_daily, "BTC-USDT", btc_daily["session_date"].min(), btc_daily["session_date"].max()
        )
    return str(path)


@pytest.fixture(scope="module")
def trained(warehouse: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    models_dir = tmp_path_factory.mktemp("models")
    result = train_and_record(
        warehouse, "voltransformer", ["BTC-USDT"], "2021-12-31", TINY, "dv-1", models_dir=str(models_dir)
    )
    return result, models_dir


def test_train_records_the_run_and_saves_the_checkpoint(
    trained: tuple[dict[str, Any], Path], warehouse: str
) -> None:
    result, models_dir = trained
    run_id = result["model_run"]
    assert run_id.startswith("voltransformer-")
    folder = models_dir / run_id
    assert (folder / "model.pt").is_file() and (folder / "history.png").is_file()
    with session(warehouse, read_only=True) as con:
        run = read_model_run(con, run_id)
    assert run is not None
    assert run["model"] == "voltransformer" and run["symbols"] == ["BTC-USDT"]
    assert run["train_end"] == TRAIN_END and run["train_start"] == date(2017, 8, 17)
    assert run["data_version"] == "dv-1" and run["device"] == "cpu"
    assert run["checkpoint"] == str(folder / "model.pt") and run["wall_s"] > 0
    assert run["config"] == get_model("voltransformer", **TINY).config()
    metrics = run["metrics"]
    assert metrics["holdout_end"] == "2021-12-31" and metrics["n"] > 200
    assert 0 < metrics["qlike"] < 2 and metrics["mse"] > 0 and "r2_vs_naive" in metrics
    assert metrics["early_stopping_split"]["split"] == "validation"


def test_predict_writes_the_checkpointed_models_forecasts(
    trained: tuple[dict[str, Any], Path], warehouse: str, btc_daily: pl.DataFrame
) -> None:
    run_id = trained[0]["model_run"]
    origins = [date(2022, 1, 1), date(2022, 1, 2), date(2022, 6, 30)]
    out = predict_and_record(warehouse, run_id, [d.isoformat() for d in origins])
    assert out["rows"] == 3
    again = predict_and_record(warehouse, run_id, origins)  # idempotent upsert
    assert again["rows"] == 3
    with session(warehouse, read_only=True) as con:
        stored = read_predictions(con, model_run=run_id)
    assert stored.height == 3 and stored["origin"].to_list() == origins
    # the same config refitted in memory on the same data gives the same forecasts (determinism)
    direct = (
        get_model("voltransformer", **TINY)
        .fit(ModelData(btc_daily), TRAIN_END)
        .predict(ModelData(btc_daily), origins)
    )
    np.testing.assert_array_equal(stored["rv"].to_numpy(), direct["rv"].to_numpy())


def test_a_run_whose_features_differ_from_its_checkpoint_is_refused(
    trained: tuple[dict[str, Any], Path], warehouse: str
) -> None:
    with session(warehouse, read_only=True) as con:
        run = read_model_run(con, trained[0]["model_run"])
    assert run is not None
    run = {**run, "config": {**run["config"], "features": ["log_rv", "ret"]}}
    with pytest.raises(ConfigError, match="trained on features"):
        restore_run(warehouse, run)


def test_rerun_is_the_same_run(trained: tuple[dict[str, Any], Path], warehouse: str) -> None:
    result, _ = trained
    cfg = get_model("voltransformer", **TINY).config()
    assert result["model_run"] == model_run_id("voltransformer", cfg, ["BTC-USDT"], None, TRAIN_END, "dv-1")
    assert model_run_id("voltransformer", cfg, ["BTC-USDT"], None, TRAIN_END, "dv-2") != result["model_run"]


def test_a_baseline_without_checkpoint_is_refitted_for_predict(warehouse: str, tmp_path: Path) -> None:
    result = train_and_record(warehouse, "har", ["BTC-USDT"], TRAIN_END, {}, "dv-1", models_dir=str(tmp_path))
    assert result["checkpoint"] is None and not list(tmp_path.iterdir())
    out = predict_and_record(warehouse, result["model_run"], [date(2022, 3, 1)])
    assert out["rows"] == 1
    with session(warehouse, read_only=True) as con:
        row = read_predictions(con, model_run=result["model_run"])
    assert row["model"].to_list() == ["har"] and json.loads(row["params"][0]) is not None


def test_predict_unknown_run_and_bad_dates(warehouse: str) -> None:
    with pytest.raises(ConfigError, match="not recorded"):
        predict_and_record(warehouse, "nope-123", [date(2022, 1, 1)])
    with pytest.raises(ConfigError, match="train_end must be an ISO date"):
        train_and_record(warehouse, "har", ["BTC-USDT"], "31/12/2021", {}, "dv")
    with writer(warehouse) as con:
        write_model_run(con, {"model_run": "naive-tmp", "model": "naive", "symbols": ["BTC-USDT"]})
    with pytest.raises(ConfigError, match="origin_dates"):
        predict_and_record(warehouse, "naive-tmp", [])


def test_prefect_task_is_cached_on_its_training_inputs(
    prefect_harness: None, warehouse: str, tmp_path: Path
) -> None:
    from prefect import flow

    from flows.steps.train import predict, train_model

    @flow
    def pipeline(data_version: str) -> list[Any]:
        a = train_model(
            warehouse,
            "naive",
            ["BTC-USDT"],
            "2021-12-31",
            {},
            data_version,
            models_dir=str(tmp_path),
            return_state=True,
        )
        b = train_model(
            warehouse,
            "naive",
            ["BTC-USDT"],
            "2021-12-31",
            {},
            data_version,
            models_dir=str(tmp_path),
            return_state=True,
        )
        c = train_model(
            warehouse,
            "naive",
            ["BTC-USDT"],
            "2021-12-31",
            {},
            data_version + "x",
            models_dir=str(tmp_path),
            return_state=True,
        )
        p = predict(warehouse, a.result()["model_run"], ["2022-01-05"], return_state=True)
        return [a, b, c, p]

    a, b, c, p = pipeline(f"dv-cache-{tmp_path.name}")
    assert a.is_completed() and b.name == "Cached" and c.name != "Cached"
    assert a.result() == b.result()
    assert c.result()["model_run"] != a.result()["model_run"]
    assert p.result()["rows"] == 1


def test_a_quantile_run_is_restored_from_its_checkpoint_without_refitting(
    warehouse: str, tmp_path: Path, btc_daily: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.models.quantile import QuantileForecaster

    config = {"epochs": 5}
    result = train_and_record(
        warehouse, "quantile", ["BTC-USDT"], TRAIN_END, config, "dv-1", models_dir=str(tmp_path)
    )
    assert result["checkpoint"] == str(tmp_path / result["model_run"] / "model.pt")
    with session(warehouse, read_only=True) as con:
        run = read_model_run(con, result["model_run"])
    assert run is not None

    def no_refit(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("restore_run refitted a checkpointed model")

    monkeypatch.setattr(QuantileForecaster, "fit", no_refit)
    restored = restore_run(warehouse, run)
    monkeypatch.undo()
    origins = [date(2022, 1, 1), date(2022, 6, 30)]
    direct = get_model("quantile", **config).fit(ModelData(btc_daily), TRAIN_END)
    assert restored.predict(ModelData(btc_daily), origins).equals(
        direct.predict(ModelData(btc_daily), origins)
    )
    run = {**run, "config": {**run["config"], "window": 5}}
    with pytest.raises(ConfigError, match="trained on features"):
        restore_run(warehouse, run)
