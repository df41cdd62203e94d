"""Calibrated twins: the per-model plan, their rows (online, on the raw model's variance), the risk frame."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

from core.errors import ConfigError
from core.schema import QUANTILE_COLUMNS, QUANTILES
from tasks.risk import risk_backtest
from tasks.risk_calibrated import (
    DEFAULT_METHOD,
    base_model,
    calibrated_name,
    calibrated_predictions,
    calibration_of,
    calibration_plan,
    check_calibration,
    risk_frame,
)


def _too_narrow(n: int = 1500, seed: int = 0, shrink: float = 0.6) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Gaussian forecasts whose sigma is ``shrink`` x the truth (VaR too mild) and the realized returns."""
    rng = np.random.default_rng(seed)
    days = [date(2015, 1, 1) + timedelta(days=i) for i in range(n)]
    sigma = 0.01 * np.exp(0.3 * np.sin(np.arange(n) / 50))
    ret = sigma * rng.standard_t(5, n) / np.sqrt(5 / 3)
    fc = shrink * sigma
    preds = pl.DataFrame(
        {
            "model": "har",
            "symbol": "AAA",
            "origin": [d - timedelta(days=1) for d in days],
            "target": days,
            "horizon": 1,
            "variance": fc**2,
            "mean": 0.0,
            **{c: fc * norm.ppf(q) for c, q in zip(QUANTILE_COLUMNS, QUANTILES, strict=True)},
            "family": "gaussian",
            "params": json.dumps({}),
        }
    ).with_columns(pl.col("horizon").cast(pl.Int32))
    realized = pl.DataFrame({"symbol": "AAA", "target": days, "ret": ret})
    return preds, realized


def test_names_round_trip() -> None:
    name = calibrated_name("har", "evt+aci")
    assert name == "har+evt+aci"
    assert base_model(name) == "har" and calibration_of(name) == "evt+aci"
    assert base_model("har") == "har" and calibration_of("har") == "raw"


def test_plan_defaults_per_model_overrides_and_off() -> None:
    models = ["har", "garch", "naive"]
    assert calibration_plan(models, None) == {m: {"method": DEFAULT_METHOD} for m in models}
    plan = calibration_plan(
        models, {"har": "evt", "naive": "none", "garch": {"method": "aci", "gamma": 0.01}}
    )
    assert plan == {"har": {"method": "evt"}, "garch": {"method": "aci", "gamma": 0.01}}
    assert calibration_plan(models, {"*": "none", "har": "faci"}) == {"har": {"method": "faci"}}
    assert calibration_plan(models, {"*": "none"}) == {}


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"har": "magic"}, ["'har'", "magic"]),
        ({"har": {"method": "aci", "window": 5}}, ["'har'", "window"]),
        ({"har": {"gamma": 0.1}}, ["'har'", "method"]),
        ({"har": 3}, ["'har'", "method name"]),
    ],
)
def test_bad_config_names_the_model_and_the_problem(config: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        check_calibration(config)
    assert all(w in str(err.value) for w in words)


def test_a_model_that_is_not_evaluated_is_refused_by_the_check_and_ignored_by_the_plan() -> None:
    with pytest.raises(ConfigError, match="'prob_lstm'.*not evaluated"):
        check_calibration({"prob_lstm": "aci"}, ["har"])
    assert calibration_plan(["har"], {"prob_lstm": "aci"}) == {"har": {"method": DEFAULT_METHOD}}


def test_rows_that_cannot_be_calibrated_lose_their_twin_only(caplog: pytest.LogCaptureFixture) -> None:
    preds, realized = _too_narrow(n=400)
    other = preds.with_columns(pl.lit("BBB").alias("symbol"))
    broken = other.with_columns(
        pl.when(pl.col("origin") == pl.col("origin").min())
        .then(None)
        .otherwise(pl.col("variance"))
        .alias("variance")
    )
    both = pl.concat([preds, broken, preds.tail(3)])  # and three duplicated rows of AAA
    returns = pl.concat([realized, realized.with_columns(pl.lit("BBB").alias("symbol"))])
    with caplog.at_level("WARNING"):
        twins = calibrated_predictions(both, returns, calibration_plan(["har"], None))
    assert twins["symbol"].unique().to_list() == ["AAA"] and twins.height == preds.height
    assert "no calibrated twin of har on BBB" in caplog.text


def test_twin_fixes_a_too_mild_var_and_keeps_the_variance() -> None:
    preds, realized = _too_narrow()
    twins = calibrated_predictions(preds, realized, calibration_plan(["har"], None))
    assert twins["model"].unique().to_list() == [f"har+{DEFAULT_METHOD}"]
    assert twins.height == preds.height
    np.testing.assert_array_equal(twins["variance"].to_numpy(), preds["variance"].to_numpy())
    scored = preds.join(realized, on=["symbol", "target"])
    both = risk_backtest(risk_frame(scored, twins), n_sims=100)
    raw = both.filter(pl.col("model") == "har").row(0, named=True)
    cal = both.filter(pl.col("model") != "har").row(0, named=True)
    assert raw["var99_rate"] > 0.04 and not raw["var99_pass"]
    assert abs(cal["var99_rate"] - 0.01) < 0.005 and cal["var99_pass"] and cal["var95_pass"]
    assert abs(cal["cov80"] - 0.80) < 0.03 < abs(raw["cov80"] - 0.80)


def test_twin_rows_use_no_return_after_their_origin() -> None:
    preds, realized = _too_narrow(n=600)
    plan = calibration_plan(["har"], {"har": "fhs+aci"})
    cut = date(2016, 1, 1)
    garbled = realized.with_columns(
        pl.when(pl.col("target") >= cut).then(pl.col("ret") * -50.0).otherwise(pl.col("ret")).alias("ret")
    )
    a = calibrated_predictions(preds, realized, plan).filter(pl.col("origin") < cut)
    b = calibrated_predictions(preds, garbled, plan).filter(pl.col("origin") < cut)
    assert a.height > 300
    assert a.select(QUANTILE_COLUMNS).equals(b.select(QUANTILE_COLUMNS))
    later_a = calibrated_predictions(preds, realized, plan).filter(pl.col("origin") > cut + timedelta(days=5))
    later_b = calibrated_predictions(preds, garbled, plan).filter(pl.col("origin") > cut + timedelta(days=5))
    assert not later_a.select(QUANTILE_COLUMNS).equals(later_b.select(QUANTILE_COLUMNS))  # it does react


def test_risk_frame_keeps_twins_on_the_scored_pairs_only() -> None:
    preds, realized = _too_narrow(n=400)
    twins = calibrated_predictions(preds, realized, calibration_plan(["har"], None))
    scored = preds.join(realized, on=["symbol", "target"]).filter(pl.col("target") >= date(2015, 6, 1))
    frame = risk_frame(scored, twins)
    per_model = frame.group_by("model").len().sort("model")
    assert per_model["len"].to_list() == [scored.height, scored.height]
    twin_rows = frame.filter(pl.col("model") != "har")
    assert twin_rows["target"].min() == scored["target"].min()
    assert risk_frame(scored, None).height == scored.height
