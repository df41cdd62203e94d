"""The foundation adapters (``chronos2``, ``kronos``, ``kronos_event``) on tiny random weights.

The registry-wide contract and no-look-ahead tests already run them (``model_helpers.make_model`` gives
them the tiny weights of ``foundation_helpers``). Here: the schema mapping, the walk-forward through
``cross_validate``, the refusal of wrong checkpoints, the missing-weights and missing-extra messages,
and the event conditioning. Tests that need the packages skip without the ``foundation`` extra.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from foundation_helpers import (
    need_extra,
    save_tiny_chronos2,
    tiny_config,
    tiny_kronos_modules,
    tiny_models_dir,
)
from model_helpers import TRAIN_END, garble_after
from scipy.stats import norm

from core.errors import ConfigError, DataError
from core.schema import QUANTILES
from tasks.models import foundation_weights as fw
from tasks.models.base import ModelData, get_model
from tasks.models.chronos2 import mixture_quantiles, quantile_masses
from tasks.walk_forward import cross_validate, walk_forward_folds

# --- the mapping (no packages needed) ---------------------------------------------------------------


def test_one_atom_mixture_is_the_gaussian() -> None:
    scales = np.array([[0.02], [0.05]])
    q = mixture_quantiles(scales, np.array([1.0]), QUANTILES)
    np.testing.assert_allclose(q, scales * norm.ppf(QUANTILES)[None, :], rtol=1e-9, atol=1e-15)


def test_mixture_has_fatter_tails_than_its_mean_variance_gaussian() -> None:
    w = np.array([0.5, 0.5])
    scales = np.array([[0.01, 0.04]])
    q = mixture_quantiles(scales, w, QUANTILES)[0]
    gauss = np.sqrt(w @ scales[0] ** 2) * norm.ppf(QUANTILES)
    assert q[QUANTILES.index(0.50)] == 0.0 and np.allclose(q, -q[::-1])  # symmetric about zero
    assert abs(q[0]) > abs(gauss[0])  # the 1% tail is wider than the moment-matched Gaussian's
    cdf = w @ norm.cdf(q[-1] / scales[0])  # and it solves F(q99) = 0.99
    assert cdf == pytest.approx(0.99, abs=1e-9)


def test_quantile_masses_are_chronos_trapezoid() -> None:
    m = quantile_masses(np.array([0.1, 0.5, 0.9]))
    np.testing.assert_allclose(m, np.array([0.25, 0.4, 0.25]) / 0.9)  # (u_{k+1} - u_{k-1}) / 2, normalised


# --- where the weights are, and what is said when they are not ---------------------------------------


def test_missing_weights_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLRISK_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(fw, "missing_packages", lambda model: [])
    ok, why = fw.availability("chronos2")
    assert not ok and "\n" not in why
    assert str(tmp_path / "chronos-2") in why and "amazon/chronos-2" in why and "VOLRISK_MODELS_DIR" in why
    ok, why = fw.availability("kronos", {"weights": "/elsewhere/kb"})
    assert not ok and "/elsewhere/kb" in why and "NeoQuasar/Kronos-base" in why
    assert fw.availability("har") == (True, "")


def test_without_the_extra_the_models_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fw, "missing_packages", lambda model: ["chronos"] if model in fw.FOUNDATION else [])
    ok, why = fw.availability("chronos2")
    assert not ok and "pip install -e '.[foundation]'" in why and "chronos" in why
    model = get_model("chronos2")  # constructing and configuring needs no package
    json.dumps(model.config())
    with pytest.raises(ConfigError, match=r"foundation extra .*\.\[foundation\]"):
        model.fit(ModelData(pl.DataFrame({"symbol": ["X"]})), TRAIN_END)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="context"):
        get_model("chronos2", context=1)
    with pytest.raises(ConfigError, match="weights must be a folder path"):
        get_model("chronos2", weights=3)
    with pytest.raises(ConfigError, match="samples"):
        get_model("kronos", samples=1)
    with pytest.raises(ConfigError, match="event_types"):
        get_model("kronos_event", event_types=["EARNINGS"])


# --- load -> forecast -> walk-forward with tiny weights ----------------------------------------------


def test_chronos2_maps_log_rv_quantiles_to_the_schema(btc_data: ModelData, origins: list[date]) -> None:
    need_extra("chronos2")
    model = get_model("chronos2", **tiny_config("chronos2")).fit(btc_data, TRAIN_END)
    pred = model.predict(btc_data, origins)
    c = json.loads(pred["params"][0])["var_scale"]
    np.testing.assert_allclose(pred["variance"].to_numpy(), c * pred["rv"].to_numpy(), rtol=1e-12)
    assert (pred["mean"] == 0).all() and (pred["q50"] == 0).all() and (pred["family"] == "quantile").all()
    np.testing.assert_allclose(pred["q01"].to_numpy(), -pred["q99"].to_numpy())


def test_walk_forward_through_cross_validate(btc_data: ModelData) -> None:
    need_extra("chronos2")
    sessions = btc_data.features["session_date"].to_list()
    folds = walk_forward_folds(sessions, date(2021, 7, 1), date(2021, 7, 20), refit_every=10)
    for name in ("chronos2", "kronos"):
        out = cross_validate(lambda n=name: get_model(n, **tiny_config(n)), btc_data, folds)  # type: ignore[misc]
        assert len(folds) >= 2 and out.height == sum(len(f.origins) for f in folds)
        assert (out["model"] == name).all() and np.isfinite(out["variance"].to_numpy()).all()
        for f in folds:  # each fold forecasts its own origins, all after its training window
            rows = out.filter(pl.col("origin").is_in(list(f.origins)))
            assert rows.height == len(f.origins) and (rows["origin"] > f.train_end).all()


def test_kronos_samples_paths_and_reproduces_them(btc_data: ModelData, origins: list[date]) -> None:
    need_extra("kronos")
    a = get_model("kronos", **tiny_config("kronos")).fit(btc_data, TRAIN_END).predict(btc_data, origins[:5])
    b = get_model("kronos", **tiny_config("kronos")).fit(btc_data, TRAIN_END).predict(btc_data, origins[:5])
    assert a.equals(b)  # seeded per (symbol, origin)
    other = get_model("kronos", **tiny_config("kronos"), seed=1).fit(btc_data, TRAIN_END)
    assert not other.predict(btc_data, origins[:5])["mean"].equals(a["mean"])  # the paths are sampled
    assert (a["family"] == "gaussian").all() and (a["q50"] == a["mean"]).all()


def test_kronos_refuses_data_without_ohlc(btc_data: ModelData, origins: list[date]) -> None:
    need_extra("kronos")
    realized_only = ModelData(btc_data.features.with_columns(pl.lit(None, pl.Float64).alias("close")))
    model = get_model("kronos", **tiny_config("kronos")).fit(realized_only, TRAIN_END)
    with pytest.raises(DataError, match="no daily OHLC"):
        model.predict(realized_only, origins[:2])


def test_kronos_event_moves_only_event_days(btc_data: ModelData) -> None:
    need_extra("kronos")
    assert btc_data.events is not None
    origins = btc_data.features.filter(
        pl.col("session_date").is_between(date(2021, 7, 20), date(2021, 7, 31))
    )["session_date"].to_list()  # the FOMC decision of 2021-07-28 (19:00 UTC) lies in the target 07-28
    base = get_model("kronos", **tiny_config("kronos")).fit(btc_data, TRAIN_END).predict(btc_data, origins)
    event = get_model("kronos_event", **tiny_config("kronos_event")).fit(btc_data, TRAIN_END)
    ev = event.predict(btc_data, origins)
    m = json.loads(ev["params"][0])["event_var"]["FOMC"]
    assert m != 1.0
    ratio = (ev["variance"] / base["variance"]).to_numpy()
    on = (ev["target"] == date(2021, 7, 28)).to_numpy()
    np.testing.assert_allclose(ratio[on], m)
    np.testing.assert_array_equal(ratio[~on], 1.0)
    garbled = garble_after(btc_data, origins[-1])  # and the events after the last origin change nothing
    again = get_model("kronos_event", **tiny_config("kronos_event")).fit(garbled, TRAIN_END)
    assert again.predict(garbled, origins).equals(ev)


def test_a_missing_device_is_refused(btc_data: ModelData) -> None:
    need_extra("chronos2")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    model = get_model("chronos2", **(tiny_config("chronos2") | {"device": "cuda"}))
    with pytest.raises(ConfigError, match="CUDA is not available"):
        model.fit(btc_data, TRAIN_END)


# --- wrong checkpoints are refused ------------------------------------------------------------------


def test_a_kronos_checkpoint_is_not_chronos2(btc_data: ModelData) -> None:
    need_extra("chronos2")
    kronos_dir = tiny_config("kronos")["weights"]
    with pytest.raises(ConfigError, match="is not a Chronos-2 checkpoint"):
        get_model("chronos2", weights=kronos_dir, device="cpu").fit(btc_data, TRAIN_END)


def test_chronos2_weights_of_another_size_are_refused(btc_data: ModelData, tmp_path: Path) -> None:
    need_extra("chronos2")
    folder = save_tiny_chronos2(tmp_path / "c2")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(cfg | {"d_model": 32}))
    with pytest.raises(ConfigError, match="do not match the Chronos-2 architecture of its config.json"):
        get_model("chronos2", weights=str(folder), device="cpu").fit(btc_data, TRAIN_END)


def test_kronos_checkpoints_of_the_wrong_kind_are_refused(btc_data: ModelData, tmp_path: Path) -> None:
    need_extra("kronos")
    root = tiny_models_dir()
    tok_dir = str(root / "Kronos-Tokenizer-base")
    swapped = get_model("kronos", weights=tok_dir, tokenizer=tok_dir, device="cpu")
    with pytest.raises(ConfigError, match="does not describe a Kronos model"):
        swapped.fit(btc_data, TRAIN_END)
    tok, _ = tiny_kronos_modules(bits=8)  # a tokenizer whose codes the model cannot read
    tok.save_pretrained(tmp_path / "tok5")
    mismatched = get_model("kronos", tokenizer=str(tmp_path / "tok5"), weights=str(root / "Kronos-base"))
    with pytest.raises(ConfigError, match="codes 8\\+8 bits but model"):
        mismatched.fit(btc_data, TRAIN_END)
    shutil.copytree(root / "Kronos-base", tmp_path / "kb")
    cfg = json.loads((tmp_path / "kb" / "config.json").read_text())
    (tmp_path / "kb" / "config.json").write_text(json.dumps(cfg | {"d_model": 24}))
    with pytest.raises(ConfigError, match="do not fit a Kronos model"):
        get_model("kronos", weights=str(tmp_path / "kb"), tokenizer=str(root / "Kronos-Tokenizer-base")).fit(
            btc_data, TRAIN_END
        )


def test_every_model_defaults_leave_out_what_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOLRISK_MODELS_DIR", str(tmp_path))  # no weights here
    keep, skipped = fw.runnable(["har", "chronos2", "kronos", "garch"])
    assert keep == ["har", "garch"] and set(skipped) == {"chronos2", "kronos"}
    assert all(why and "\n" not in why for why in skipped.values())


def test_a_run_names_its_weights_and_refuses_others(btc_data: ModelData, tmp_path: Path) -> None:
    need_extra("chronos2")
    a = save_tiny_chronos2(tmp_path / "a", seed=0)
    b = save_tiny_chronos2(tmp_path / "b", seed=1)  # same architecture, other values
    cfg_a = get_model("chronos2", weights=str(a), device="cpu").config()
    cfg_b = get_model("chronos2", weights=str(b), device="cpu").config()
    assert cfg_a["weights_fingerprint"] and cfg_a["weights_fingerprint"] != cfg_b["weights_fingerprint"]
    replay = get_model("chronos2", **cfg_a)  # a stored run's config rebuilds the model
    assert replay.config() == cfg_a
    replay.fit(btc_data, TRAIN_END)  # same weights: fine
    shutil.rmtree(a)
    shutil.copytree(b, a)  # the folder now holds other weights
    with pytest.raises(ConfigError, match="not the .* this configuration was made with"):
        get_model("chronos2", **cfg_a).fit(btc_data, TRAIN_END)


def test_a_checkpoint_restores_the_fitted_mapping(btc_data: ModelData, origins: list[date]) -> None:
    need_extra("kronos")
    from tasks.models.checkpoint import Checkpointable, load_checkpoint, save_checkpoint

    for name in ("chronos2", "kronos_event"):
        fitted = get_model(name, **tiny_config(name)).fit(btc_data, TRAIN_END)
        assert isinstance(fitted, Checkpointable)  # the evaluation runs it under the torch lock
        weights, meta = fitted.checkpoint_state()
        assert weights == {}  # the foundation weights stay in their folder
        path = save_checkpoint(tiny_models_dir() / f"{name}.pt", weights, meta)
        loaded_w, loaded_meta = load_checkpoint(path, expected_features=fitted.input_names())
        fresh = get_model(name, **fitted.config())
        assert isinstance(fresh, Checkpointable)
        restored = fresh.restore_checkpoint(loaded_w, loaded_meta)
        assert restored.predict(btc_data, origins[:3]).equals(fitted.predict(btc_data, origins[:3]))
