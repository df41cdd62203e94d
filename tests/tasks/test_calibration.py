"""Online calibration of return quantiles (tasks/calibration*.py): ACI, DtACI, FHS, EVT."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from core.errors import ConfigError, DataError
from core.schema import PREDICTION_SCHEMA, QUANTILE_COLUMNS, QUANTILES
from tasks.calibration import calibrate, calibrate_models, calibration_methods, parse_method
from tasks.calibration_conformal import aci_recursion, faci_recursion
from tasks.calibration_grid import LEVEL_FLOOR, grid_cdf, grid_quantile
from tasks.models.families import Gaussian
from tasks.risk import christoffersen_cc, kupiec_pof, risk_backtest, var_es_frame

LEVELS = np.asarray(QUANTILES)
#: Small settings so that every method calibrates most of a 400-row series.
FAST: dict[str, dict[str, object]] = {
    "aci": {},
    "faci": {},
    "fhs": {"window": 80, "min_obs": 40},
    "evt": {"window": 150, "min_obs": 100, "refit": 7},
    "evt+aci": {"window": 150, "min_obs": 100, "refit": 7, "gamma": 0.01},
    "fhs+faci": {"window": 80, "min_obs": 40},
}


def _simulate(n: int, seed: int, shift: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Student-t(3) returns (unit variance) whose sd jumps ``shift``-fold halfway; EWMA variance forecast."""
    rng = np.random.default_rng(seed)
    sd = np.where(np.arange(n) < n // 2, 0.01, 0.01 * shift)
    ret = sd * rng.standard_t(3, size=n) / np.sqrt(3.0)
    var = np.empty(n)
    var[0] = 1e-4
    for t in range(1, n):  # forecast of r[t] from returns up to t - 1 (lambda 0.94)
        var[t] = 0.94 * var[t - 1] + 0.06 * ret[t - 1] ** 2
    return ret, var


def _preds(ret: np.ndarray, var: np.ndarray, horizon: int = 1, symbol: str = "S") -> pl.DataFrame:
    """Gaussian prediction rows: row i forecasts ``ret[i]`` at target day i, origin day i - horizon."""
    n = ret.size
    q = Gaussian().quantiles(0.0, var)
    start = date(2000, 1, 1)
    targets = [start + timedelta(days=i + horizon) for i in range(n)]
    cols: dict[str, object] = {
        "model": ["m"] * n,
        "symbol": [symbol] * n,
        "origin": [start + timedelta(days=i) for i in range(n)],
        "target": targets,
        "horizon": [horizon] * n,
        "variance": var,
        "rv": var,
        "mean": np.zeros(n),
        **{c: q[:, j] for j, c in enumerate(QUANTILE_COLUMNS)},
        "family": ["gaussian"] * n,
        "params": ["{}"] * n,
    }
    return pl.DataFrame(cols, schema=PREDICTION_SCHEMA)


def _realized(preds: pl.DataFrame, ret: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"symbol": preds["symbol"], "target": preds["target"], "ret": ret})


def _q(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(QUANTILE_COLUMNS).to_numpy()


# ----------------------------------------------------------------------------------- the online rule
@pytest.mark.parametrize("method", sorted(FAST))
@pytest.mark.parametrize("horizon", [1, 3])
def test_no_lookahead_garbled_future_returns_change_nothing_before(method: str, horizon: int) -> None:
    ret, var = _simulate(400, seed=1)
    preds = _preds(ret, var, horizon)
    base = calibrate(preds, _realized(preds, ret), method, **FAST[method])
    cut = 300
    t = preds["origin"][cut]
    garbled = ret.copy()
    late = (preds["target"] > t).to_numpy()  # t's own target and every later one
    garbled[late] = np.random.default_rng(9).standard_t(2, size=int(late.sum())) * 0.2
    other = calibrate(preds, _realized(preds, garbled), method, **FAST[method])
    before = (preds["origin"] <= t).to_numpy()
    np.testing.assert_array_equal(_q(base)[before], _q(other)[before])
    assert base["calibrated"][:cut].sum() > 100  # the rows compared are calibrated ones
    assert not np.array_equal(_q(base)[~before], _q(other)[~before])  # and the garbling does reach later rows


# ------------------------------------------------------------------------------------------ ACI / DtACI
def test_aci_recursion_matches_the_paper_on_a_hand_computed_example() -> None:
    # a_{t+1} = a_t + gamma (a - 1{beta_t < a_t}), a = 0.1, gamma = 0.02
    beta = np.array([0.05, 0.5, 0.02, 0.3, 0.9])[:, None]
    expected = [0.1, 0.082, 0.084, 0.066, 0.068, 0.070]
    np.testing.assert_allclose(
        aci_recursion(beta, np.array([0.1]), np.array([0.02]))[:, 0], expected, atol=1e-15
    )
    # the same numbers through calibrate: the q10 issued at each origin is the raw quantile at a_t
    ret = np.r_[grid_quantile(Gaussian().quantiles(0.0, np.ones(5)), beta)[:, 0], 0.0]
    preds = _preds(ret, np.ones(6))
    out = calibrate(preds, _realized(preds, ret), "aci", gamma={0.10: 0.02})
    z = stats.norm.ppf
    w = (np.array(expected) - 0.05) / 0.05  # linear between q05 and q10 (all a_t lie in [0.05, 0.10])
    np.testing.assert_allclose(out["q10"].to_numpy(), z(0.05) + w * (z(0.10) - z(0.05)), rtol=1e-12)
    np.testing.assert_allclose(grid_cdf(_q(preds)[:5], ret[:5]), beta[:, 0], rtol=1e-12)


def test_delayed_feedback_judges_each_miss_at_the_level_issued_then() -> None:
    beta = np.array([[0.0], [0.0], [0.5]])
    no_delay = aci_recursion(beta, np.array([0.1]), np.array([0.05]))[:, 0]
    delayed = aci_recursion(beta, np.array([0.1]), np.array([0.05]), issued_at=np.array([0, 0, 1]))[:, 0]
    np.testing.assert_allclose(no_delay, [0.1, 0.055, 0.01, 0.015])
    np.testing.assert_allclose(delayed, [0.1, 0.055, 0.01, 0.015])  # both misses count either way
    beta2 = np.array([[0.07], [0.07]])  # a miss at level 0.1, a cover at 0.055
    np.testing.assert_allclose(
        aci_recursion(beta2, np.array([0.1]), np.array([0.05]))[:, 0], [0.1, 0.055, 0.06]
    )
    np.testing.assert_allclose(
        aci_recursion(beta2, np.array([0.1]), np.array([0.05]), issued_at=np.array([0, 0]))[:, 0],
        [0.1, 0.055, 0.01],
    )


def _rates(frame: pl.DataFrame, ret: np.ndarray) -> dict[str, float]:
    q = _q(frame)
    return {
        "var99": float(np.mean(ret < q[:, 0])),
        "var95": float(np.mean(ret < q[:, 2])),
        "cov80": float(np.mean((ret >= q[:, 3]) & (ret <= q[:, 5]))),
    }


@pytest.mark.parametrize(("method", "tol99"), [("aci", 0.001), ("faci", 0.002)])
def test_conformal_calibration_repairs_a_misspecified_var(method: str, tol99: float) -> None:
    n = 6000
    ret, var = _simulate(n, seed=3)
    preds = _preds(ret, var)
    raw = _rates(preds, ret)
    out = calibrate(preds, _realized(preds, ret), method)
    cal = _rates(out, ret)
    # Gaussian quantiles on t(3) returns with a variance jump: far too many breaches at 99% (2.5%).
    assert raw["var99"] > 0.02
    hits_raw = (ret < preds["q01"].to_numpy()).astype(int)
    hits_cal = (ret < out["q01"].to_numpy()).astype(int)
    assert kupiec_pof(hits_raw, 0.01).pvalue < 1e-10
    # Tolerance: ACI's identity mean(err) = a - (a_end - a_1) / (gamma T) holds exactly (no binomial
    # noise); with the working level ending within 0.03 of where it started the drift term is at most
    # 0.03 / (0.005 * 6000) = 0.1 pp. DtACI has only a regret guarantee: twice that. At 5% and for the
    # 80% band the same drift bound in units of their larger levels gives 0.5 pp and 1 pp.
    assert abs(cal["var99"] - 0.01) < tol99
    assert abs(cal["var95"] - 0.05) < 0.005
    assert abs(cal["cov80"] - 0.80) < 0.01
    assert kupiec_pof(hits_cal, 0.01).pvalue > 0.05
    assert christoffersen_cc(hits_cal, 0.01).pvalue > 0.05


def test_aci_breach_rate_follows_the_exact_identity() -> None:
    ret, var = _simulate(3000, seed=4)
    preds = _preds(ret, var)
    gamma = 0.005
    out = calibrate(preds, _realized(preds, ret), "aci", gamma=gamma)
    pit = grid_cdf(_q(preds), ret)
    levels = aci_recursion(pit[:, None], np.array([0.01]), np.array([gamma]), floor=LEVEL_FLOOR)[:, 0]
    err = pit < np.clip(levels[:-1], LEVEL_FLOOR, 1)  # the breaches of the level-t quantile, unsorted
    assert err.mean() == pytest.approx(0.01 - (levels[-1] - levels[0]) / (gamma * ret.size), abs=1e-12)
    issued = ret < out["q01"].to_numpy()  # sorting across levels can only lower q01
    assert issued.sum() <= err.sum() and np.mean(issued) == pytest.approx(err.mean(), abs=5e-4)


def test_faci_concentrates_on_good_experts_and_starts_at_the_nominal_level() -> None:
    rng = np.random.default_rng(0)
    beta = rng.random((2000, 1))  # a calibrated forecast: PIT uniform
    out = faci_recursion(beta, np.array([0.05]))
    assert out[0, 0] == 0.05
    assert abs(np.mean(beta[:, 0] < out[:-1, 0]) - 0.05) < 0.01


# ----------------------------------------------------------------------------------- output contract
@pytest.mark.parametrize("method", sorted(FAST))
def test_calibrated_quantiles_never_cross(method: str) -> None:
    ret, var = _simulate(400, seed=5, shift=6.0)
    preds = _preds(ret, var)
    settings = dict(FAST[method])
    if "aci" in method.split("+"):
        settings["gamma"] = 0.2  # violent steps make working levels cross; sorting must undo it
    out = calibrate(preds, _realized(preds, ret), method, **settings)
    assert (np.diff(_q(out), axis=1) >= 0).all()
    assert np.isfinite(_q(out)).all()


@pytest.mark.parametrize("method", ["fhs", "evt"])
def test_warm_up_rows_are_returned_unchanged(method: str) -> None:
    ret, var = _simulate(300, seed=6)
    preds = _preds(ret, var)
    out = calibrate(preds, _realized(preds, ret), method, window=100, min_obs=60)
    head = out.head(60).select(preds.columns)
    assert head.equals(preds.head(60))
    assert not out["calibrated"][:60].any() and out["calibrated"][60:].all()
    assert set(out["family"][60:]) == {"calibrated"}
    meta = json.loads(out["params"][100])
    assert meta == {"method": method, "raw_family": "gaussian", "raw_params": {}}


def test_first_row_of_aci_is_raw_and_none_changes_nothing() -> None:
    ret, var = _simulate(50, seed=7)
    preds = _preds(ret, var)
    out = calibrate(preds, _realized(preds, ret), "aci")
    assert out.head(1).select(preds.columns).equals(preds.head(1))
    assert calibrate(preds, _realized(preds, ret), "none").select(preds.columns).equals(preds)


def test_rows_keep_their_order_and_symbols_are_calibrated_apart() -> None:
    ret_a, var_a = _simulate(200, seed=8)
    ret_b, var_b = _simulate(200, seed=9, shift=1.0)
    a, b = _preds(ret_a, var_a, symbol="A"), _preds(ret_b, var_b, symbol="B")
    both = pl.concat([a, b]).sample(fraction=1.0, shuffle=True, seed=1)
    realized = pl.concat([_realized(a, ret_a), _realized(b, ret_b)])
    out = calibrate(both, realized, "aci")
    assert out.select("symbol", "origin").equals(both.select("symbol", "origin"))
    alone = calibrate(a, _realized(a, ret_a), "aci")
    mixed = out.filter(pl.col("symbol") == "A").sort("origin")
    np.testing.assert_array_equal(_q(mixed), _q(alone))


def test_calibrated_rows_feed_the_risk_backtest() -> None:
    ret, var = _simulate(600, seed=10)
    preds = _preds(ret, var)
    out = calibrate(preds, _realized(preds, ret), "evt+aci", window=300, min_obs=150)
    es = var_es_frame(out.filter(pl.col("calibrated")))
    assert set(es["es_method"]) == {"interpolated"}
    assert (es["es975"] <= es["var95"]).all() and (es["es99"] <= es["var99"]).all()
    table = risk_backtest(out, n_sims=200)
    assert table.height == 1 and table["n"][0] == 600


def test_calibrate_models_picks_a_method_per_model() -> None:
    ret, var = _simulate(300, seed=11)
    one = _preds(ret, var)
    two = one.with_columns(model=pl.lit("other"))
    out = calibrate_models(
        pl.concat([one, two]), _realized(one, ret), {"m": {"method": "fhs", "min_obs": 50}}
    )
    assert out.height == 600
    assert out.filter(pl.col("model") == "other")["calibrated"].sum() == 0
    assert out.filter(pl.col("model") == "m")["calibrated"].sum() == 250


def test_bad_methods_settings_and_inputs_are_refused() -> None:
    assert calibration_methods() == ["aci", "evt", "faci", "fhs", "none"]
    assert [name for name, _ in parse_method("evt+aci", {"tail": 0.05, "gamma": 0.01})] == ["evt", "aci"]
    ret, var = _simulate(50, seed=12)
    preds = _preds(ret, var)
    with pytest.raises(ConfigError, match="method"):
        calibrate(preds, _realized(preds, ret), "conformal")
    with pytest.raises(ConfigError, match="window"):
        calibrate(preds, _realized(preds, ret), "aci", window=10)
    with pytest.raises(ConfigError, match="gamma"):
        calibrate(preds, _realized(preds, ret), "aci", gamma={0.3: 0.01})
    with pytest.raises(ConfigError, match="min_obs"):
        calibrate(preds, _realized(preds, ret), "fhs", window=10, min_obs=20)
    with pytest.raises(DataError, match="realized"):
        calibrate(preds, None, "aci")
    with pytest.raises(DataError, match="one row per"):
        calibrate(pl.concat([preds, preds]), _realized(preds, ret), "aci")
