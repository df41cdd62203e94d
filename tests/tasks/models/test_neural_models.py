"""voltransformer, prob_lstm and lstm_point on real BTC/USDT daily data (tiny configs, fast).

Each is trained through 2022-12-31 and forecasts every session from 2023-01-01 to 2024-04-20 one step
ahead; it must beat the naive last-RV forecast in QLIKE there (honest out-of-sample, chronological).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from core.errors import ConfigError, DataError
from core.schema import PREDICTION_SCHEMA, QUANTILE_COLUMNS
from tasks.features import cross_asset_features
from tasks.models.base import ModelData, get_model
from tasks.models.checkpoint import load_checkpoint, save_checkpoint
from tasks.models.daily_nn import DailyTorchForecaster
from tasks.models.torch_fit import EpochStats
from tasks.models.transformer import VolTransformerNet, positive_head
from tasks.train import volatility_metrics

TRAIN_END = date(2022, 12, 31)
TINY: dict[str, dict[str, Any]] = {
    "voltransformer": {"epochs": 3, "d_model": 16, "heads": 2, "layers": 1, "ff": 32, "window": 10},
    "prob_lstm": {"epochs": 3, "hidden": 8, "window": 10},
    "prob_lstm_t": {"epochs": 3, "hidden": 8, "window": 10, "likelihood": "student_t"},
    "lstm_point": {"epochs": 3, "hidden": 8, "window": 10},
}


def _model(key: str, **extra: Any) -> DailyTorchForecaster:
    name = "prob_lstm" if key == "prob_lstm_t" else key
    model = get_model(name, **{**TINY[key], **extra})
    assert isinstance(model, DailyTorchForecaster)
    return model


@pytest.fixture(scope="module")
def data(btc_daily: pl.DataFrame) -> ModelData:
    return ModelData(btc_daily)


@pytest.fixture(scope="module")
def test_origins(btc_daily: pl.DataFrame) -> list[date]:
    days = btc_daily["session_date"]
    return days.filter(days.is_between(TRAIN_END, date(2024, 4, 19))).to_list()


@pytest.fixture(scope="module")
def fitted(data: ModelData) -> dict[str, DailyTorchForecaster]:
    return {key: _model(key).fit(data, TRAIN_END) for key in TINY}


def _score(pred: pl.DataFrame, daily: pl.DataFrame) -> dict[str, Any]:
    actual = daily.select(pl.col("session_date").alias("target"), pl.col("rv").alias("actual"))
    naive = daily.select(pl.col("session_date").alias("origin"), pl.col("rv_d").alias("naive"))
    scored = pred.join(actual, on="target").join(naive, on="origin")
    model = volatility_metrics(scored["actual"].to_numpy(), scored["rv"].to_numpy())
    base = volatility_metrics(scored["actual"].to_numpy(), scored["naive"].to_numpy())
    return {"model": model["qlike"], "naive": base["qlike"], "n": model["n"]}


@pytest.mark.parametrize("key", list(TINY))
def test_fits_and_forecasts_btc_out_of_sample(
    key: str,
    fitted: dict[str, DailyTorchForecaster],
    data: ModelData,
    btc_daily: pl.DataFrame,
    test_origins: list[date],
) -> None:
    model = fitted[key]
    pred = model.predict(data, test_origins)
    assert pred.schema == pl.Schema(PREDICTION_SCHEMA)
    assert pred["origin"].to_list() == test_origins
    assert (pred["target"] == pred["origin"] + timedelta(days=1)).all()
    assert pred["target"].max() == date(2024, 4, 20)
    state = model.symbols["BTC-USDT"]
    np.testing.assert_allclose(pred["variance"].to_numpy(), state.var_scale * pred["rv"].to_numpy())
    q = pred.select(QUANTILE_COLUMNS).to_numpy()
    assert np.isfinite(q).all() and (np.diff(q, axis=1) > 0).all()
    assert (pred["family"] == "student_t").all()
    score = _score(pred, btc_daily)
    assert score["n"] == len(test_origins)
    assert score["model"] < score["naive"], score  # beats the last RV out of sample
    assert set(model.validation) >= {"qlike", "mse", "r2_vs_naive", "samples", "first"}
    assert model.history is not None and len(model.history.train_loss) == 3


def test_same_seed_gives_identical_forecasts_and_another_seed_does_not(
    fitted: dict[str, DailyTorchForecaster], data: ModelData, test_origins: list[date]
) -> None:
    first = fitted["voltransformer"].predict(data, test_origins)
    again = _model("voltransformer").fit(data, TRAIN_END).predict(data, test_origins)
    assert first.equals(again)
    other = _model("voltransformer", seed=1).fit(data, TRAIN_END).predict(data, test_origins)
    assert not np.array_equal(first["rv"].to_numpy(), other["rv"].to_numpy())


def test_scaler_ignores_the_validation_rows(data: ModelData, btc_daily: pl.DataFrame) -> None:
    """Changing every feature of the validation split leaves the input scaler as it was."""
    base = _model("prob_lstm", epochs=1).fit(data, TRAIN_END)
    first_val = date.fromisoformat(base.validation["first"])  # first validation origin
    # sessions after it are neither inputs nor targets of any training sample
    later = pl.col("session_date") > first_val
    changed = btc_daily.with_columns(
        [
            pl.when(later).then(pl.col(c) * 7.0).otherwise(pl.col(c)).alias(c)
            for c in ("rv_d", "rv_w", "rv_m", "ret_cc")
        ]
    )
    other = _model("prob_lstm", epochs=1).fit(ModelData(changed), TRAIN_END)
    assert other.symbols["BTC-USDT"].x_scaler == base.symbols["BTC-USDT"].x_scaler
    assert other.symbols["BTC-USDT"].y_mean == base.symbols["BTC-USDT"].y_mean
    # ... whereas the validation-based smearing factor does see them
    assert other.validation["qlike"] != base.validation["qlike"]


@pytest.mark.parametrize("key", ["voltransformer", "prob_lstm_t", "lstm_point"])
def test_checkpoint_round_trip_reproduces_forecasts(
    key: str,
    fitted: dict[str, DailyTorchForecaster],
    data: ModelData,
    test_origins: list[date],
    tmp_path: Path,
) -> None:
    model = fitted[key]
    weights, meta = model.checkpoint_state()
    path = save_checkpoint(tmp_path / "model.pt", weights, {**meta, "data_version": "dv1"})
    fresh = _model(key)
    w, m = load_checkpoint(path, expected_features=fresh.input_names())
    fresh.restore_checkpoint(w, m)
    assert m["data_version"] == "dv1" and m["config"] == model.config()
    assert fresh.predict(data, test_origins[:40]).equals(model.predict(data, test_origins[:40]))
    other = _model(key, features=["log_rv", "ret"])
    with pytest.raises(ConfigError, match="trained on features"):
        load_checkpoint(path, expected_features=other.input_names())
    with pytest.raises(ConfigError, match="features"):
        other.restore_checkpoint(w, m)


def test_last_token_only_equals_the_full_encoder() -> None:
    torch.manual_seed(0)
    for norm_first in (False, True):
        net = VolTransformerNet(3, 12, 16, 4, 3, 32, 0.0, positive_head(16), last_token_only=True)
        for layer in net.encoder.layers:
            layer.norm_first = norm_first  # type: ignore[union-attr]
        x = torch.randn(5, 12, 3)
        fast = net.encode(x)
        net.last_token_only = False
        full = net.encode(x)
        torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
        net.train()
        net.last_token_only = True
        torch.testing.assert_close(net.encode(x), full, rtol=1e-5, atol=1e-6)


def test_progress_is_reported_per_epoch(data: ModelData) -> None:
    seen: list[EpochStats] = []
    model = _model("lstm_point", epochs=2)
    model.progress = seen.append
    model.fit(data, date(2019, 12, 31))
    assert [s.epoch for s in seen] == [0, 1] and all(s.epochs == 2 for s in seen)


def test_lstm_point_plots_history_and_reports_r2(data: ModelData, tmp_path: Path) -> None:
    path = tmp_path / "history.png"
    model = _model("lstm_point", plot_path=str(path)).fit(data, date(2020, 12, 31))
    assert path.read_bytes()[:4] == b"\x89PNG"
    r2 = model.validation["r2_vs_naive"]
    assert isinstance(r2, float) and np.isfinite(r2)  # may legitimately be negative


def test_horizon_two(data: ModelData, test_origins: list[date]) -> None:
    model = _model("prob_lstm", epochs=1, horizon=2).fit(data, TRAIN_END)
    pred = model.predict(data, test_origins[:5], horizon=2)
    assert (pred["target"] == pred["origin"] + timedelta(days=2)).all()
    with pytest.raises(ConfigError, match="trained for horizon=2"):
        model.predict(data, test_origins[:5], horizon=1)


def test_cross_asset_inputs(btc_daily: pl.DataFrame, eurusd_daily: pl.DataFrame) -> None:
    eur = eurusd_daily.filter(pl.col("session_date") >= date(2017, 1, 1))
    both = pl.concat([btc_daily, eur]).sort("symbol", "session_date")
    cross = cross_asset_features(both, ["BTC-USDT", "EUR-USD"], 30)
    data = ModelData(both, cross_asset=cross)
    model = _model("prob_lstm", cross_asset=True, min_train=50).fit(data, date(2018, 10, 31))
    assert model.input_names()[-2:] == ["corr_ret_mean", "corr_logrv_mean"]
    days = [date(2018, 11, 1), date(2018, 11, 2)]
    pred = model.predict(data, days)
    assert set(pred["symbol"].to_list()) == {"BTC-USDT", "EUR-USD"} and pred.height == 4
    with pytest.raises(DataError, match="needs ModelData.cross_asset"):
        _model("prob_lstm", cross_asset=True).fit(ModelData(both), date(2018, 10, 31))


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("voltransformer", {"d_model": 10, "heads": 4}, "d_model must be a multiple of heads"),
        ("voltransformer", {"loss": "student_t_nll"}, "loss must be one of"),
        ("voltransformer", {"features": ["log_rv", "nope"]}, "features must be distinct names"),
        ("voltransformer", {"window": 0}, "window must be"),
        ("voltransformer", {"colour": "red"}, r"unknown voltransformer config key\(s\) \['colour'\]"),
        ("prob_lstm", {"likelihood": "laplace"}, "likelihood must be one of"),
        ("prob_lstm", {"loss": "mse"}, "likelihood"),
        ("prob_lstm", {"hidden": 0}, "hidden must be"),
        ("lstm_point", {"family": "cauchy"}, "family must be one of"),
        ("lstm_point", {"val_fraction": 0.95}, "val_fraction"),
        ("lstm_point", {"device": "tpu"}, "device must be one of"),
    ],
)
def test_bad_config_names_the_parameter(name: str, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_model(name, **config)


def test_unfitted_and_short_history(btc_daily: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        _model("voltransformer").predict(ModelData(btc_daily), [date(2023, 1, 1)])
    with pytest.raises(DataError, match="min_train"):
        _model("voltransformer").fit(ModelData(btc_daily), date(2017, 10, 1))
