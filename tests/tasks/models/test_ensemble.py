"""The LightGBM ensemble: purged training rows, monotone quantiles, the fallback, attributions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from core.errors import DataError
from core.schema import PREDICTION_SCHEMA, QUANTILE_COLUMNS, QUANTILES
from tasks.models.base import ModelData
from tasks.models.ensemble import Ensemble

DAYS = [date(2021, 1, 1) + timedelta(days=i) for i in range(400)]


def _features() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rv = np.exp(rng.normal(-8, 0.6, len(DAYS)))
    ret = rng.normal(0, 1, len(DAYS)) * np.sqrt(rv)
    return pl.DataFrame(
        {
            "symbol": "X",
            "session_date": DAYS,
            "rv": rv,
            "rv_w": rv,
            "rv_m": rv,
            "ret_cc": ret,
            "ret_oc": ret,
        }
    )


def _base(model: str, feats: pl.DataFrame, scale: float) -> pl.DataFrame:
    from scipy.stats import norm

    rv = feats["rv"].to_numpy()[:-1] * scale  # forecast at origin t of session t+1: the origin's RV
    z = norm.ppf(QUANTILES)
    q = np.sqrt(rv)[:, None] * z[None, :]
    return pl.DataFrame(
        {
            "model": model,
            "symbol": "X",
            "origin": DAYS[:-1],
            "target": DAYS[1:],
            "horizon": 1,
            "variance": rv,
            "rv": rv,
            "mean": 0.0,
            **{c: q[:, i] for i, c in enumerate(QUANTILE_COLUMNS)},
            "family": "gaussian",
            "params": "{}",
        },
        schema=PREDICTION_SCHEMA,
    )


@pytest.fixture(scope="module")
def data() -> ModelData:
    feats = _features()
    preds = pl.concat([_base("har", feats, 1.0), _base("ewma", feats, 1.3)])
    return ModelData(feats, predictions=preds)


def test_training_rows_after_train_end_are_never_used(data: ModelData) -> None:
    end = DAYS[300]
    origins = DAYS[301:320]
    clean = Ensemble(min_rows=100, n_estimators=20).fit(data, end).predict(data, origins)
    assert preds_garbled_after(data, end, origins).equals(clean)
    q = clean.select(QUANTILE_COLUMNS).to_numpy()
    assert (np.diff(q, axis=1) >= 0).all() and (clean["rv"] > 0).all()


def preds_garbled_after(data: ModelData, end: date, origins: list[date], **config: Any) -> pl.DataFrame:
    """Same ensemble, but every base row whose TARGET is after train_end is garbage for training."""
    assert data.predictions is not None
    garbage = data.predictions.with_columns(
        pl.when(pl.col("target") > end).then(pl.lit(1e3)).otherwise(pl.col("rv")).alias("rv")
    )
    # the forecast rows themselves (origins after end) must be the real ones to compare like with like
    real_at_origins = data.predictions.filter(pl.col("origin").is_in(origins))
    train_part = garbage.filter(~pl.col("origin").is_in(origins))
    mixed = ModelData(data.features, predictions=pl.concat([train_part, real_at_origins]))
    return Ensemble(min_rows=100, n_estimators=20, **config).fit(mixed, end).predict(mixed, origins)


def test_too_few_rows_is_a_clear_error(data: ModelData) -> None:
    with pytest.raises(DataError, match="min_rows=200"):
        Ensemble().fit(data, DAYS[100])


def test_fallback_serves_the_best_single_model_unchanged(data: ModelData) -> None:
    origins = DAYS[350:360]
    out = Ensemble(fallback="ewma").fit(data, DAYS[340]).predict(data, origins)
    assert data.predictions is not None
    ewma = data.predictions.filter((pl.col("model") == "ewma") & pl.col("origin").is_in(origins)).sort(
        "origin"
    )
    assert (out["model"] == "ensemble").all() and '"fallback": "ewma"' in out["params"][0]
    assert np.array_equal(out["rv"].to_numpy(), ewma["rv"].to_numpy())


def test_attributions_name_every_feature(data: ModelData) -> None:
    ens = Ensemble(min_rows=100, n_estimators=20).fit(data, DAYS[300])
    shap = ens.attributions()
    feats = set(shap.filter(pl.col("target") == "log_rv")["feature"])
    assert {"har__logrv_dev", "ewma__logrv_dev", "corr", "reg_log_rv_d"} <= feats
    top = shap.filter(pl.col("target") == "log_rv").sort("mean_abs_shap", descending=True)["feature"][0]
    assert top in {"har__logrv_dev", "ewma__logrv_dev", "reg_log_rv_d", "reg_log_rv_w", "reg_log_rv_m"}


def _two_symbols(data: ModelData) -> ModelData:
    """``data`` for symbols X and Y (Y: X's rows at 1.5x the variance), each with rv_d."""
    assert data.predictions is not None
    feats = data.features.with_columns(pl.col("rv").alias("rv_d"))
    y = feats.with_columns(pl.lit("Y").alias("symbol"), pl.col("rv") * 1.5, pl.col("rv_d") * 1.5)
    preds = data.predictions
    y_preds = preds.with_columns(pl.lit("Y").alias("symbol"), pl.col("rv") * 1.5)
    return ModelData(pl.concat([feats, y]), predictions=pl.concat([preds, y_preds]))


@pytest.mark.parametrize(("pool", "groups"), [("all", ["all"]), ("none", ["X", "Y"]), ("class", ["a", "b"])])
def test_pool_decides_which_symbols_share_a_meta_learner(
    data: ModelData, pool: str, groups: list[str]
) -> None:
    both = _two_symbols(data)
    model = Ensemble(min_rows=100, pool=pool, groups={"X": "a", "Y": "b"}).fit(both, DAYS[300])
    assert sorted(model.fits) == groups
    with pytest.raises(Exception, match="pool must be"):
        Ensemble(pool="asset")


def test_the_market_feature_reads_no_other_symbols_row_on_or_after_the_origin(data: ModelData) -> None:
    both = _two_symbols(data)
    end, origins = DAYS[300], DAYS[301:320]
    model = Ensemble(min_rows=100, pool="all").fit(both, end)
    clean = model.predict(both, origins).filter(pl.col("symbol") == "X")
    cut = origins[5]
    garbled = both.features.with_columns(
        pl.when((pl.col("symbol") == "Y") & (pl.col("session_date") >= cut))
        .then(pl.col("rv_d") * 40)
        .otherwise(pl.col("rv_d"))
        .alias("rv_d")
    )
    dirty = model.predict(ModelData(garbled, predictions=both.predictions), origins).filter(
        pl.col("symbol") == "X"
    )
    upto = pl.col("origin") <= cut
    assert clean.filter(upto)["rv"].to_list() == dirty.filter(upto)["rv"].to_list()
    assert "mkt" in model.fits["all"].columns["logrv"]


def test_anchor_top_anchors_on_the_bases_of_lowest_training_qlike(data: ModelData) -> None:
    """``oracle`` forecasts the target's own RV (QLIKE 0), har and ewma the origin's: the top-1 anchor
    is the oracle, None every base; garbling rows after train_end changes neither."""
    assert data.predictions is not None
    har = data.predictions.filter(pl.col("model") == "har")
    future = data.features["rv"].to_numpy()[1:]
    oracle = har.with_columns(pl.lit("oracle").alias("model"), pl.Series("rv", future))
    three = ModelData(data.features, predictions=pl.concat([data.predictions, oracle]))
    end, origins = DAYS[300], DAYS[301:320]
    every = Ensemble(min_rows=100, anchor_top=None).fit(three, end).fits["X"].anchor_models
    assert sorted(every) == ["ewma", "har", "oracle"]
    top = Ensemble(min_rows=100, anchor_top=1).fit(three, end)
    assert top.fits["X"].anchor_models == ["oracle"]
    assert preds_garbled_after(three, end, origins, anchor_top=1).equals(top.predict(three, origins))
    with pytest.raises(Exception, match="anchor_top"):
        Ensemble(anchor_top=0)
