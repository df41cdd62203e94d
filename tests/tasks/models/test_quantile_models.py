"""``quantile`` and ``quantile_event`` on real SPY data: monotone quantiles, training, event flags,
determinism, no look-ahead and the coverage of the 80% interval on a held-out chronological window."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.schema import PREDICTION_SCHEMA, QUANTILE_COLUMNS
from tasks.events import read_fomc_dates
from tasks.models.base import ModelData, get_model
from tasks.models.checkpoint import Checkpointable, load_checkpoint, save_checkpoint
from tasks.models.quantile import QuantileEventForecaster, QuantileForecaster, infer_calendar, pinball_loss

TRAIN_END = date(2016, 12, 31)
SMALL = {"epochs": 40, "hidden": 16}
SMALL_WINDOW = 10  # QuantileConfig's default window
FLOATS = [c for c, t in PREDICTION_SCHEMA.items() if t == pl.Float64()]


@pytest.fixture(scope="module")
def spy(spy_daily: pl.DataFrame, fomc_events: pl.DataFrame | None) -> ModelData:
    """SPY daily features from 2005 (enough history, faster fits) with the shipped FOMC dates."""
    assert fomc_events is not None
    return ModelData(spy_daily.filter(pl.col("session_date") >= date(2005, 1, 1)), events=fomc_events)


@pytest.fixture(scope="module")
def fitted(spy: ModelData) -> dict[str, QuantileForecaster]:
    return {
        "quantile": QuantileForecaster(**SMALL).fit(spy, TRAIN_END),
        "quantile_event": QuantileEventForecaster(**SMALL).fit(spy, TRAIN_END),
    }


@pytest.fixture(scope="module")
def held_out(spy: ModelData) -> list[date]:
    """Origins 2016-12-30 .. 2021-03-30: targets 2017-01-03 .. 2021-03-31 (never seen in training)."""
    days = spy.features["session_date"]
    return days.filter((days >= date(2016, 12, 30)) & (days < date(2021, 3, 31))).to_list()


def realized(pred: pl.DataFrame, spy: ModelData) -> pl.DataFrame:
    ret = spy.features.select(pl.col("session_date").alias("target"), "ret_cc")
    return pred.join(ret, on="target", how="inner").drop_nulls("ret_cc")


def test_registry_and_calendar() -> None:
    assert isinstance(get_model("quantile"), QuantileForecaster)
    assert isinstance(get_model("quantile_event", window=5), QuantileEventForecaster)
    with pytest.raises(ConfigError, match="unknown quantile config key"):
        get_model("quantile", windw=5)
    with pytest.raises(ConfigError, match="val_fraction"):
        QuantileForecaster(val_fraction=1.5)
    with pytest.raises(ConfigError, match="window"):
        QuantileForecaster(window=0)
    with pytest.raises(ConfigError, match="calendar"):
        QuantileForecaster(calendar="NOPE")


def test_infer_calendar(spy_daily: pl.DataFrame, btc_daily: pl.DataFrame) -> None:
    assert infer_calendar(spy_daily) == "XNYS"  # includes 13:00 early closes
    assert infer_calendar(btc_daily) == "24x7"
    odd = spy_daily.head(3).with_columns(pl.col("session_end").dt.offset_by("2h"))
    with pytest.raises(ConfigError, match="pass calendar"):
        infer_calendar(odd)


def test_quantiles_monotone_and_schema(
    fitted: dict[str, QuantileForecaster], spy: ModelData, held_out: list[date]
) -> None:
    for name, model in fitted.items():
        pred = model.predict(spy, held_out[:300])
        assert pred.schema == pl.Schema(PREDICTION_SCHEMA)
        assert pred.height == 300 and (pred["model"] == name).all() and (pred["family"] == "quantile").all()
        q = pred.select(QUANTILE_COLUMNS).to_numpy()
        assert np.isfinite(q).all() and (np.diff(q, axis=1) > 0).all()  # strictly increasing, all 9 levels
        assert (pred["variance"] > 0).all() and (pred["rv"] > 0).all()
        assert np.allclose(pred["mean"].to_numpy(), pred["q50"].to_numpy())
        sigma = (pred["q90"] - pred["q10"]).to_numpy() / (2 * 1.2815515655446004)
        assert np.allclose(pred["variance"].to_numpy(), sigma**2)
        assert (pred["target"] > pred["origin"]).all()
        params = json.loads(pred["params"][0])
        assert params["var_method"] == "normal_q10_q90" and len(params["z_quantiles"]) == 9


def test_pinball_loss_decreases_over_training(fitted: dict[str, QuantileForecaster]) -> None:
    hist = fitted["quantile"].history
    assert hist is not None
    best = hist.best_epoch
    print(
        f"\ntrain pinball epoch 0 {hist.train_loss[0]:.4f} -> best epoch {best} {hist.train_loss[best]:.4f}; "
        f"validation {hist.val_loss[0]:.4f} -> {hist.best_loss:.4f}"
    )
    assert best > 0 and hist.best_loss < hist.val_loss[0]
    assert min(hist.train_loss) < hist.train_loss[0]
    ev = fitted["quantile_event"].event_history
    assert ev[-1] < ev[0]  # the event head improves on the base it starts from


def test_event_flags_on_fomc_days(
    fitted: dict[str, QuantileForecaster], spy: ModelData, held_out: list[date]
) -> None:
    pred = fitted["quantile_event"].predict(spy, held_out)
    flags = pred.select(
        "target",
        pl.col("params")
        .map_elements(lambda p: json.loads(p)["events"]["fomc"], return_dtype=pl.Int64)
        .alias("fomc"),
    )
    fomc = read_fomc_dates("data/events/fomc_decision_dates_2015_2026.csv")
    scheduled = set(fomc.filter(pl.col("scheduled"))["date"].to_list())
    flagged = set(flags.filter(pl.col("fomc") == 1)["target"].to_list())
    in_window = {d for d in scheduled if date(2017, 1, 3) <= d <= date(2021, 3, 31)}
    assert flagged == in_window and len(flagged) == 33  # 8+8+8+7 scheduled (2017-2020) + 2 (2021)
    assert date(2020, 3, 3) not in flagged  # the emergency cut was not known in advance
    # the head widens or shifts the envelope on flagged days only (no surprise data in the FOMC file)
    base = fitted["quantile"].predict(spy, held_out)
    same = (pred.select(FLOATS).to_numpy() == base.select(FLOATS).to_numpy()).all(axis=1)
    on_event = flags["fomc"].to_numpy() == 1
    assert same[~on_event].all() and not same[on_event].any()


def test_same_data_config_seed_same_forecasts(spy: ModelData, held_out: list[date]) -> None:
    origins = held_out[:40]
    a = QuantileEventForecaster(epochs=5, hidden=8).fit(spy, TRAIN_END).predict(spy, origins)
    b = QuantileEventForecaster(epochs=5, hidden=8).fit(spy, TRAIN_END).predict(spy, origins)
    c = QuantileEventForecaster(epochs=5, hidden=8, seed=1).fit(spy, TRAIN_END).predict(spy, origins)
    assert a.equals(b)
    assert not a.select(FLOATS).equals(c.select(FLOATS))


def garble(data: ModelData, t: date) -> ModelData:
    """Every feature value after session t, and every event value released after t's end, replaced by
    garbage; unscheduled junk events added after t; scheduled events after the next session moved."""
    rng = np.random.default_rng(11)
    feats = data.features
    after = feats["session_date"] > t
    junk = {
        c: pl.when(after).then(pl.Series(rng.choice([np.nan, -1e9, 1e9], feats.height))).otherwise(pl.col(c))
        for c, dtype in feats.schema.items()
        if dtype == pl.Float64 and c != "session_end"
    }
    feats = feats.with_columns(**junk)
    assert data.events is not None
    cutoff = data.features.filter(pl.col("session_date") <= t)["session_end"].max()
    ev = data.events
    late = pl.col("event_ts") > cutoff
    far = pl.col("event_ts") > pl.lit(cutoff).dt.offset_by("5d")
    ev = ev.with_columns(
        *[
            pl.when(late).then(pl.lit(1e12)).otherwise(pl.col(c)).alias(c)
            for c in ("actual", "forecast", "surprise", "surprise_z")
        ],
        pl.when(far)
        .then(pl.col("event_ts").dt.offset_by("1d"))
        .otherwise(pl.col("event_ts"))
        .alias("event_ts"),
    )
    extra = ev.head(3).with_columns(
        pl.Series("event_ts", [cutoff + (i + 1) * (cutoff - cutoff.replace(hour=0)) for i in range(3)]),
        pl.lit(False).alias("scheduled"),
        pl.lit(9.0).alias("surprise_z"),
    )
    return ModelData(feats, events=pl.concat([ev, extra]))


@pytest.mark.parametrize("name", ["quantile", "quantile_event"])
def test_no_look_ahead(
    name: str, fitted: dict[str, QuantileForecaster], spy: ModelData, held_out: list[date]
) -> None:
    model = fitted[name]
    origins = held_out[290:300]  # around 2018-03
    t = origins[-1]
    clean = model.predict(spy, origins)
    garbled = garble(spy, t)
    assert garbled.features.filter(pl.col("session_date") > t)["rv_d"].is_nan().any()
    assert model.predict(garbled, origins).equals(clean)
    assert model.predict(spy.upto(t), origins).equals(clean)
    # refitting on garbled data (garbage after train_end) gives the same model
    refit = type(model)(**SMALL).fit(garble(spy, TRAIN_END), TRAIN_END)
    assert refit.predict(spy, origins).equals(clean)
    # and the check can fail: garbage AT the origin does move the forecast
    at_t = garble(spy, held_out[298])
    assert not model.predict(at_t, origins[-1:]).equals(clean.tail(1))


def test_interval_coverage_on_held_out_spy(
    fitted: dict[str, QuantileForecaster], spy: ModelData, held_out: list[date]
) -> None:
    for name, model in fitted.items():
        pred = realized(model.predict(spy, held_out), spy)
        y = pred["ret_cc"].to_numpy()
        cov80 = float(np.mean((y >= pred["q10"].to_numpy()) & (y <= pred["q90"].to_numpy())))
        cov90 = float(np.mean((y >= pred["q05"].to_numpy()) & (y <= pred["q95"].to_numpy())))
        loss = pinball_loss(y, pred.select(QUANTILE_COLUMNS).to_numpy())
        print(
            f"\n{name}: SPY {pred['target'].min()}..{pred['target'].max()} n={len(y)} "
            f"cov80={cov80:.3f} cov90={cov90:.3f} pinball={loss:.3e}"
        )
        assert len(y) > 1000
        assert 0.6 <= cov80 <= 0.95 and cov80 < cov90 <= 0.99


def test_errors(spy: ModelData, fitted: dict[str, QuantileForecaster]) -> None:
    with pytest.raises(ConfigError, match="fit"):
        QuantileForecaster().predict(spy, [date(2017, 1, 3)])
    with pytest.raises(ConfigError, match="horizon"):
        fitted["quantile"].predict(spy, [date(2017, 1, 3)], horizon=2)
    with pytest.raises(DataError, match="needs ModelData.events"):
        QuantileEventForecaster(**SMALL).fit(ModelData(spy.features), TRAIN_END)
    with pytest.raises(DataError, match="covers none"):
        QuantileEventForecaster(**SMALL).fit(spy, date(2012, 12, 31))  # FOMC file starts 2015
    with pytest.raises(DataError, match="min_train"):
        QuantileForecaster(**SMALL).fit(spy, date(2005, 3, 1))
    with pytest.raises(DataError, match="ret_cc"):
        QuantileForecaster(**SMALL).fit(ModelData(spy.features.drop("ret_cc")), TRAIN_END)
    assert fitted["quantile"].predict(spy, [date(2017, 1, 1)]).height == 0  # a Sunday: no session


@pytest.mark.parametrize("name", ["quantile", "quantile_event"])
def test_checkpoint_round_trip_predicts_bit_identically(
    name: str, fitted: dict[str, QuantileForecaster], spy: ModelData, held_out: list[date], tmp_path: Path
) -> None:
    model = fitted[name]
    weights, meta = model.checkpoint_state()
    path = save_checkpoint(tmp_path / "model.pt", weights, {**meta, "data_version": "dv1"})
    fresh = get_model(name, **SMALL)
    assert isinstance(fresh, QuantileForecaster) and isinstance(fresh, Checkpointable)
    w, m = load_checkpoint(path, expected_features=fresh.input_names())
    fresh.restore_checkpoint(w, m)
    assert m["config"] == model.config() and m["data_version"] == "dv1"
    assert fresh.train_end == model.train_end and fresh.scaler == model.scaler
    assert fresh.history is not None and model.history is not None
    assert fresh.history.as_dict() == model.history.as_dict()
    assert fresh.event_history == model.event_history
    assert fresh.predict(spy, held_out).equals(model.predict(spy, held_out))


def test_checkpoint_with_other_inputs_is_refused(
    fitted: dict[str, QuantileForecaster], tmp_path: Path
) -> None:
    weights, meta = fitted["quantile"].checkpoint_state()
    path = save_checkpoint(tmp_path / "model.pt", weights, meta)
    assert meta["features"][0] == f"ret_lag{SMALL_WINDOW - 1}" and meta["features"][-1] == "log_scale"
    shorter = QuantileForecaster(**{**SMALL, "window": 5})
    with pytest.raises(ConfigError, match="trained on features .* Retrain"):
        load_checkpoint(path, expected_features=shorter.input_names())
    with pytest.raises(ConfigError, match=r"trained on 23 inputs .* feeds 13: .* Retrain"):
        shorter.restore_checkpoint(*load_checkpoint(path))
    with pytest.raises(ConfigError, match="checkpoint is of model 'quantile', not 'quantile_event'"):
        QuantileEventForecaster(**SMALL).restore_checkpoint(*load_checkpoint(path))
    ev_weights, ev_meta = fitted["quantile_event"].checkpoint_state()
    fewer_events = QuantileEventForecaster(**{**SMALL, "event_types": ["FOMC"]})
    with pytest.raises(ConfigError, match="sched_cpi"):
        fewer_events.restore_checkpoint(ev_weights, ev_meta)
    with pytest.raises(ConfigError, match="not fitted"):
        QuantileForecaster().checkpoint_state()
