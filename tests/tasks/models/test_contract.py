"""The forecaster contract, checked for EVERY registry entry on real BTC daily data.

Each model is fitted through ``TRAIN_END`` and predicts the next session at the first 30 sessions
after it. Its output must be ``PREDICTION_SCHEMA`` exactly, one row per (symbol, origin), with a
target after the origin, positive finite variances and monotone finite quantiles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import polars as pl
from model_helpers import check_params_json, make_model

from core.schema import PREDICTION_SCHEMA, QUANTILE_COLUMNS
from tasks.models.base import Forecaster, model_names

BASELINES = {"naive", "ewma", "har", "har_j", "garch", "gjr_garch"}
FAMILIES = {"gaussian", "student_t", "fhs", "quantile"}


def test_registry_holds_the_baselines() -> None:
    assert BASELINES <= set(model_names())


def test_protocol_and_config(model_name: str) -> None:
    model = make_model(model_name)
    assert isinstance(model, Forecaster)
    assert model.name == model_name
    json.dumps(model.config())  # JSON-able: hashed into cache keys


def test_predictions_conform(
    model_name: str, clean_runs: Callable[[str], tuple[Forecaster, pl.DataFrame]], origins: list[date]
) -> None:
    _, pred = clean_runs(model_name)
    assert pred.schema == pl.Schema(PREDICTION_SCHEMA)
    # one row per (symbol, origin), every requested origin served
    assert pred.height == len(origins)
    assert pred.select(pl.struct("symbol", "origin").is_duplicated().any()).item() is False
    assert sorted(pred["origin"].to_list()) == origins
    assert set(pred["symbol"].to_list()) == {"BTC-USDT"}
    assert (pred["model"] == model_name).all()
    assert (pred["horizon"] == 1).all()
    # the target is the next BTC session (every UTC day)
    assert (pred["target"] > pred["origin"]).all()
    assert (pred["target"] == pred["origin"] + timedelta(days=1)).all()
    # positive, finite variances; finite mean and quantiles
    for col in ("variance", "rv"):
        values = pred[col].to_numpy()
        assert np.isfinite(values).all() and (values > 0).all(), col
    q = pred.select(QUANTILE_COLUMNS).to_numpy()
    assert np.isfinite(q).all() and np.isfinite(pred["mean"].to_numpy()).all()
    assert (np.diff(q, axis=1) >= 0).all(), "quantiles must be non-decreasing across the levels"
    assert (q[:, 0] < q[:, -1]).all(), "the 1% and 99% quantiles must differ"
    assert set(pred["family"].to_list()) <= FAMILIES
    check_params_json(pred)
