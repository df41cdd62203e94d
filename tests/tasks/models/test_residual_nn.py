"""The daily neural models as residuals over HAR, on real BTC/USDT daily data (tiny configs, fast).

- untrained (no epoch run) they forecast exactly what ``har`` forecasts, and early stopping keeps HAR
  when no epoch beats it on the validation tail;
- the validation tail is the chronologically last part of the training window;
- an input with no value in the training rows is dropped (the network is built without it), not fed
  as a constant zero, and predictions and checkpoints use the same reduced set.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from model_helpers import TRAIN_END, fast_config
from torch import nn

import tasks.models.daily_nn as daily_nn
from core.errors import ConfigError, DataError
from tasks.models.base import ModelData, get_model
from tasks.models.checkpoint import load_checkpoint, save_checkpoint
from tasks.models.daily_nn import DailyTorchForecaster, DistHead
from tasks.models.torch_fit import History, TrainConfig, fit_torch

NEURAL = ("prob_lstm", "lstm_point", "voltransformer")


def _model(name: str, **extra: Any) -> DailyTorchForecaster:
    model = get_model(name, **{**fast_config(name), **extra})
    assert isinstance(model, DailyTorchForecaster)
    return model


@pytest.fixture(scope="module")
def har_rv(btc_daily: pl.DataFrame, origins: list[date]) -> np.ndarray:
    data = ModelData(btc_daily)
    pred = get_model("har").fit(data, TRAIN_END).predict(data, origins)
    assert pred["origin"].to_list() == origins
    return pred["rv"].to_numpy()


@pytest.mark.parametrize("name", NEURAL)
def test_an_untrained_residual_model_forecasts_har(
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    btc_daily: pl.DataFrame,
    origins: list[date],
    har_rv: np.ndarray,
) -> None:
    monkeypatch.setattr(daily_nn, "fit_torch", lambda *args, **kwargs: History())  # 0 epochs
    data = ModelData(btc_daily)
    model = _model(name).fit(data, TRAIN_END)
    assert model.net is not None
    last = [m.mlp[-1] for m in model.net.modules() if isinstance(m, DistHead)]
    assert last and all(isinstance(x, nn.Linear) and not x.weight.any() for x in last)  # starts at zero
    pred = model.predict(data, origins)
    assert pred["origin"].to_list() == origins
    # qlike (the point models): HAR's exp(x'b + s2/2) exactly; gaussian (prob_lstm): to float32
    # rounding of the unit scale
    rtol = 1e-6 if name == "prob_lstm" else 1e-12
    np.testing.assert_allclose(pred["rv"].to_numpy(), har_rv, rtol=rtol)
    # ... while the research's model (residual=False) does not start at HAR
    plain = _model(name, residual=False).fit(data, TRAIN_END).predict(data, origins)
    assert np.max(np.abs(plain["rv"].to_numpy() / har_rv - 1.0)) > 0.01


def test_early_stopping_keeps_har_when_no_epoch_beats_it(
    btc_daily: pl.DataFrame, origins: list[date], har_rv: np.ndarray
) -> None:
    data = ModelData(btc_daily)
    model = _model("lstm_point", min_delta=10.0).fit(data, TRAIN_END)  # no epoch can improve by 10
    assert model.history is not None and len(model.history.train_loss) == 2
    assert model.history.best_epoch == -1 and model.validation["kept_har"] is True
    np.testing.assert_allclose(model.predict(data, origins)["rv"].to_numpy(), har_rv, rtol=1e-12)
    trained = _model("lstm_point").fit(data, TRAIN_END)
    h = trained.history
    assert h is not None and h.initial_loss is not None
    assert h.best_loss == min([h.initial_loss, *h.val_loss])
    assert trained.validation["kept_har"] is (h.best_epoch == -1)


def test_keep_initial_restores_the_starting_weights() -> None:
    """Training pulls w to +1; the validation data want -1, so w = 0 (the start) is the best state."""
    x = torch.linspace(-1.0, 1.0, 64)[:, None]

    def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.mean((out[:, 0] - y) ** 2)

    cfg = TrainConfig(epochs=3, lr=0.05, patience=5, device="cpu", amp=False)
    weights = []
    for keep in (True, False):
        net = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(net.weight)
        hist = fit_torch(net, mse, (x, x[:, 0]), (x, -x[:, 0]), cfg, keep_initial=keep)
        weights.append(float(net.weight.item()))
        if keep:
            assert hist.kept_initial and hist.best_epoch == -1
            assert hist.initial_loss == pytest.approx(float(torch.mean(x**2)))
        else:
            assert not hist.kept_initial and hist.best_epoch == 0 and hist.initial_loss is None
    assert weights[0] == 0.0 and weights[1] > 0.0


def test_validation_is_the_chronologically_last_part_of_the_training_window(btc_daily: pl.DataFrame) -> None:
    model = _model("prob_lstm", val_fraction=0.2).fit(ModelData(btc_daily), TRAIN_END)
    v = model.validation
    sessions = btc_daily.filter(pl.col("session_date") <= TRAIN_END)["session_date"].to_list()
    assert date.fromisoformat(v["last"]) == sessions[-2]  # the last origin whose target is known
    assert date.fromisoformat(v["train_last"]) < date.fromisoformat(v["first"])
    assert date.fromisoformat(v["train_first"]) == sessions[fast_config("prob_lstm")["window"] - 1]
    n_val, n_train = v["samples"], v["train_samples"]  # one symbol: one sample per origin date
    assert n_val == math.floor(0.2 * (n_val + n_train))


def _without(frame: pl.DataFrame, columns: list[str], until: date) -> pl.DataFrame:
    early = pl.col("session_date") <= until
    return frame.with_columns(pl.when(early).then(None).otherwise(pl.col(c)).alias(c) for c in columns)


def test_an_input_empty_in_training_is_dropped_not_zero_filled(
    btc_daily: pl.DataFrame, origins: list[date], tmp_path: Path
) -> None:
    """No jump variation up to train_end (as for realized measures without bipower variation): the
    model equals one configured without ``jump_share``, even though jv has values at predict time."""
    data = ModelData(_without(btc_daily, ["jv"], TRAIN_END))
    model = _model("prob_lstm").fit(data, TRAIN_END)
    assert model.inputs == ["log_rv", "log_rv_w", "log_rv_m", "ret", "neg_share", "mkt_rv"]
    assert model.validation["inputs_dropped"] == ["jump_share"]
    assert model.input_names()[-2] == "jump_share"  # the configured list is unchanged
    pred = model.predict(data, origins)
    assert pred.height == len(origins) and np.isfinite(pred["rv"].to_numpy()).all()
    reduced = _model("prob_lstm", features=model.inputs).fit(ModelData(btc_daily), TRAIN_END)
    assert pred.equals(reduced.predict(ModelData(btc_daily), origins))
    weights, meta = model.checkpoint_state()
    path = save_checkpoint(tmp_path / "model.pt", weights, meta)
    fresh = _model("prob_lstm")
    fresh.restore_checkpoint(*load_checkpoint(path, expected_features=fresh.input_names()))
    assert fresh.inputs == model.inputs and fresh.predict(data, origins).equals(pred)


def test_bar_only_inputs_of_realized_data_are_dropped(btc_daily: pl.DataFrame) -> None:
    no_bars = _without(btc_daily, ["high", "low", "volume"], date(2100, 1, 1))
    model = _model("lstm_point", epochs=1).fit(ModelData(no_bars), TRAIN_END)
    assert model.validation["inputs_dropped"] == ["log_range", "log_volume_ratio"]
    with pytest.raises(DataError, match="none of its inputs"):
        _model("lstm_point", features=["log_range"]).fit(ModelData(no_bars), TRAIN_END)


def test_residual_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="residual must be true or false"):
        get_model("prob_lstm", residual="yes")
    assert get_model("lstm_point").config()["loss"] == "qlike"
    assert get_model("voltransformer").config()["residual"] is True
