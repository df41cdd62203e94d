"""VaR/ES backtests against textbook values (tasks/risk.py)."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import integrate, stats

from core.schema import QUANTILES, quantile_column
from tasks.risk import (
    MINUTE_FAST_CONFIG,
    RISK_COLUMNS,
    basel_thresholds,
    basel_zone,
    christoffersen_cc,
    christoffersen_independence,
    es_backtest,
    interpolated_es,
    interval_scores,
    kupiec_pof,
    minute_var_backtest,
    normal_es,
    pinball_loss,
    predictive_quantile_fn,
    risk_backtest,
    student_t_es,
    transition_counts,
    var_es_frame,
)


def _hits(n: int, x: int) -> np.ndarray:
    return np.r_[np.ones(x), np.zeros(n - x)].astype(int)


def _accepted(n: int, p: float) -> list[int]:
    return [x for x in range(0, 80) if kupiec_pof(_hits(n, x), p).pvalue >= 0.05]


# ------------------------------------------------------------------------------------------ Kupiec
@pytest.mark.parametrize(
    ("p", "n", "low", "high"),
    [
        # Kupiec (1995) / Jorion, "Value at Risk", non-rejection regions at 95% confidence: low < N < high.
        (0.01, 510, 1, 11),
        (0.01, 1000, 4, 17),
        (0.025, 255, 2, 12),
        (0.025, 510, 6, 21),
        (0.025, 1000, 15, 36),
        (0.05, 255, 6, 21),
        (0.05, 510, 16, 36),
        (0.05, 1000, 37, 65),
    ],
)
def test_kupiec_matches_jorion_table(p: float, n: int, low: int, high: int) -> None:
    acc = _accepted(n, p)
    assert acc == list(range(low + 1, high))


def test_kupiec_jorion_255_days_at_99() -> None:
    # Table: N < 7 accepted. The LR agrees on the upper end (6 accepted, 7 rejected); N = 0 gives
    # LR = -2 * 255 * log(0.99) = 5.13 > 3.84, so the LR test itself rejects 0 (the table's blank lower
    # bound is a known simplification).
    acc = _accepted(255, 0.01)
    assert acc[-1] == 6 and 7 not in acc
    zero = kupiec_pof(np.zeros(255, dtype=int), 0.01)
    assert zero.statistic == pytest.approx(-2 * 255 * math.log(0.99))
    assert zero.pvalue < 0.05


def test_kupiec_hand_computed_lr() -> None:
    # n = 250, x = 5, p = 0.01: LR = -2[245 ln .99 + 5 ln .01 - 245 ln .98 - 5 ln .02] = 1.956810
    res = kupiec_pof(_hits(250, 5), 0.01)
    assert res.statistic == pytest.approx(1.956810, abs=1e-6)
    assert res.pvalue == pytest.approx(stats.chi2.sf(1.956810, 1), abs=1e-6)
    assert res.detail == {"n": 250, "exceptions": 5, "rate": 0.02, "expected": 2.5}


def test_kupiec_edge_cases() -> None:
    all_hits = kupiec_pof(np.ones(10, dtype=int), 0.01)
    assert all_hits.statistic == pytest.approx(-2 * 10 * math.log(0.01))
    empty = kupiec_pof(np.array([], dtype=int), 0.01)
    assert math.isnan(empty.statistic) and math.isnan(empty.pvalue) and not empty.rejects()
    exact = kupiec_pof(_hits(100, 1), 0.01)
    assert exact.statistic == pytest.approx(0.0, abs=1e-12) and exact.pvalue == pytest.approx(1.0)


# -------------------------------------------------------------------------------------- Christoffersen
def test_christoffersen_hand_computed_transitions() -> None:
    hits = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0])
    assert transition_counts(hits) == {"n00": 7, "n01": 2, "n10": 2, "n11": 3}
    # pi01 = 2/9, pi11 = 3/5, pi = 5/14:
    # LR = -2[9 ln(9/14) + 5 ln(5/14) - 7 ln(7/9) - 2 ln(2/9) - 2 ln(2/5) - 3 ln(3/5)] = 1.984355
    res = christoffersen_independence(hits)
    assert res.statistic == pytest.approx(1.984355, abs=1e-6)
    assert res.pvalue == pytest.approx(stats.chi2.sf(1.984355, 1), abs=1e-6)
    assert res.detail["pi01"] == pytest.approx(2 / 9) and res.detail["pi11"] == pytest.approx(3 / 5)
    cc = christoffersen_cc(hits, 0.05)
    pof = kupiec_pof(hits, 0.05)
    assert cc.statistic == pytest.approx(pof.statistic + res.statistic)
    assert cc.pvalue == pytest.approx(stats.chi2.sf(cc.statistic, 2))


def test_christoffersen_zero_counts() -> None:
    none = christoffersen_independence(np.zeros(300, dtype=int))
    assert none.statistic == 0.0 and none.pvalue == 1.0 and math.isnan(none.detail["pi11"])
    # One isolated exception at the end: no transition out of a 1, LR still defined.
    last = christoffersen_independence(np.r_[np.zeros(99), 1].astype(int))
    assert last.statistic == pytest.approx(0.0, abs=1e-12)
    # Equal conditional rates -> LR 0.
    flat = christoffersen_independence(np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0]))
    assert flat.statistic == pytest.approx(0.0, abs=1e-12)
    clustered = christoffersen_independence(np.r_[np.zeros(240), np.ones(10)].astype(int))
    assert clustered.pvalue < 0.01
    assert math.isnan(christoffersen_cc(np.array([1]), 0.01).pvalue)
    cc_none = christoffersen_cc(np.zeros(500, dtype=int), 0.01)
    assert cc_none.statistic == pytest.approx(-2 * 500 * math.log(0.99))


# ------------------------------------------------------------------------------------------- Basel
@pytest.mark.parametrize(
    ("x", "zone"), [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"), (10, "red")]
)
def test_basel_zones(x: int, zone: str) -> None:
    res = basel_zone(_hits(250, x)[::-1])
    assert res.detail["zone"] == zone and res.statistic == x and not res.detail["scaled"]


def test_basel_last_250_and_scaling() -> None:
    assert basel_thresholds(250) == (5, 10)
    old = np.r_[np.ones(20), np.zeros(250)].astype(int)  # exceptions older than the window
    assert basel_zone(old).detail["zone"] == "green"
    short = basel_zone(_hits(100, 3))
    assert short.detail["scaled"] and short.detail["n_window"] == 100
    assert (short.detail["yellow_from"], short.detail["red_from"]) == basel_thresholds(100)
    assert short.detail["zone"] == "yellow"  # 3 of 100 at 1%: P(X <= 3) = 98.2% >= 95%
    assert basel_zone(np.array([], dtype=int)).detail["zone"] == "none"


# ---------------------------------------------------------------------------------------- VaR and ES
def _pred_rows(rows: list[dict[str, object]]) -> pl.DataFrame:
    out = []
    for r in rows:
        mean, var, fam = float(r["mean"]), float(r["variance"]), str(r["family"])  # type: ignore[arg-type]
        df = r.get("df")
        if fam == "gaussian":
            zq = stats.norm.ppf(QUANTILES)
        elif fam == "student_t":
            nu = float(df)  # type: ignore[arg-type]
            zq = stats.t.ppf(QUANTILES, nu) * math.sqrt((nu - 2) / nu)
        else:
            zq = np.asarray(r["zq"])
        q = mean + math.sqrt(var) * np.asarray(zq)
        out.append(
            {
                "mean": mean,
                "variance": var,
                "family": fam,
                "params": json.dumps({"df": df} if df else {}),
                **{quantile_column(lv): float(v) for lv, v in zip(QUANTILES, q, strict=True)},
            }
        )
    return pl.DataFrame(out)


def _scipy_es(dist: stats.rv_continuous, alpha: float, **kw: float) -> float:
    q = dist.ppf(alpha, **kw)
    val, _ = integrate.quad(lambda x: x * dist.pdf(x, **kw), -np.inf, q)
    return float(val / alpha)


def test_exact_es_matches_scipy_integration() -> None:
    for a in (0.01, 0.025):
        assert normal_es(a) == pytest.approx(_scipy_es(stats.norm, a), rel=1e-7)
        for nu in (3.0, 5.0, 30.0):
            s = math.sqrt((nu - 2) / nu)
            assert float(student_t_es(a, nu)) == pytest.approx(
                _scipy_es(stats.t, a, df=nu, scale=s), rel=1e-6
            )
    pred = _pred_rows(
        [
            {"mean": 0.001, "variance": 4e-4, "family": "gaussian"},
            {"mean": -0.002, "variance": 1e-4, "family": "student_t", "df": 4.0},
        ]
    )
    out = var_es_frame(pred)
    assert out["es_method"].to_list() == ["exact", "exact"]
    assert out["var99"].to_list() == pred["q01"].to_list() and out["var95"].to_list() == pred["q05"].to_list()
    g99 = _scipy_es(stats.norm, 0.01, loc=0.001, scale=0.02)
    t975 = _scipy_es(stats.t, 0.025, df=4.0, loc=-0.002, scale=0.01 * math.sqrt(0.5))
    assert out["es99"][0] == pytest.approx(g99, rel=1e-6)
    assert out["es975"][1] == pytest.approx(t975, rel=1e-6)
    assert (out["es99"] < out["var99"]).all() and (out["es975"] < out["q025"]).all()


def test_interpolated_es_close_and_conservative_for_normal() -> None:
    q = stats.norm.ppf(np.asarray(QUANTILES))[None, :]
    for a, tol in ((0.01, 0.03), (0.025, 0.02)):
        es = float(interpolated_es(q, a)[0])
        assert es <= normal_es(a)  # conservative: larger loss
        assert es == pytest.approx(normal_es(a), rel=tol)
    pred = _pred_rows([{"mean": 0.0, "variance": 1.0, "family": "fhs", "zq": stats.norm.ppf(QUANTILES)}])
    out = var_es_frame(pred)
    assert out["es_method"][0] == "interpolated" and out["es99"][0] < out["var99"][0]


def test_quantile_fn_reproduces_predicted_quantiles() -> None:
    pred = _pred_rows(
        [
            {"mean": 0.0, "variance": 1.0, "family": "gaussian"},
            {"mean": 0.0, "variance": 1.0, "family": "quantile", "zq": stats.t.ppf(QUANTILES, 5)},
        ]
    )
    f = predictive_quantile_fn(pred)
    u = np.array(QUANTILES * 2)
    rows = np.repeat([0, 1], len(QUANTILES))
    got = f(u, rows)
    want = pred.select([quantile_column(lv) for lv in QUANTILES]).to_numpy().ravel()
    assert np.allclose(got, want)
    tail = f(np.array([0.001, 0.005]), np.array([1, 1]))
    assert tail[0] < tail[1] < pred["q01"][1]


# ------------------------------------------------------------------------------------------- ES test
def _gauss_inputs(n: int, sd_true: float, seed: int, alpha: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ret = rng.normal(0.0, sd_true, n)
    sd = np.ones(n)
    var = sd * stats.norm.ppf(alpha)
    es = sd * normal_es(alpha)
    return ret, var, es, sd


def _gauss_fn(sd: np.ndarray):  # noqa: ANN202
    return lambda u, rows: sd[rows] * stats.norm.ppf(u)


def test_es_z2_rejects_understated_es() -> None:
    a = 0.025
    for seed in range(5):
        # The truth is 30% wider than the model: its ES (and VaR) understate the tail by 30%.
        ret, var, es, sd = _gauss_inputs(500, 1.3, seed, a)
        res = es_backtest(ret, var, es, a, _gauss_fn(sd), n_sims=500, seed=seed)
        assert res.statistic < 0 and res.pvalue < 0.05, (seed, res)


def test_es_z2_does_not_reject_truth_on_average() -> None:
    a = 0.025
    pvals = []
    for seed in range(20):
        ret, var, es, sd = _gauss_inputs(500, 1.0, 100 + seed, a)
        res = es_backtest(ret, var, es, a, _gauss_fn(sd), n_sims=400, seed=seed)
        assert abs(res.detail["sim_mean"]) < 0.1  # E[Z2] = 0 under the model
        pvals.append(res.pvalue)
    assert 0.3 < float(np.mean(pvals)) < 0.7
    assert np.mean(np.asarray(pvals) < 0.05) <= 0.15


def test_es_z2_without_exceptions_and_empty() -> None:
    ret = np.full(100, 0.5)
    res = es_backtest(ret, np.full(100, -2.0), np.full(100, -2.3), 0.025, _gauss_fn(np.ones(100)), n_sims=200)
    assert res.statistic == pytest.approx(1.0) and res.pvalue > 0.5
    empty = es_backtest(np.array([]), np.array([]), np.array([]), 0.01, _gauss_fn(np.ones(1)))
    assert math.isnan(empty.statistic)


# -------------------------------------------------------------------------------------- intervals
def test_interval_scores_hand_values() -> None:
    ret = np.array([0.0, 2.0, -3.0, 0.5])
    lo, hi = np.full(4, -1.0), np.full(4, 1.0)
    out = interval_scores(
        ret, {0.10: lo, 0.90: hi, 0.05: lo * 2, 0.95: hi * 2}, {"80": (0.10, 0.90), "90": (0.05, 0.95)}
    )
    assert out["cov80"] == 0.5 and out["cov90"] == 0.75  # [-2, 2] holds 0, 2 and 0.5
    # pinball at 0.10 vs -1: d = [1, 3, -2, 1.5] -> [0.1, 0.3, 1.8, 0.15] mean 0.5875
    # pinball at 0.90 vs +1: d = [-1, 1, -4, -0.5] -> [0.1, 0.9, 0.4, 0.05] mean 0.3625
    assert pinball_loss(ret, lo, 0.10) == pytest.approx(0.5875)
    assert out["pinball80"] == pytest.approx(0.5 * (0.5875 + 0.3625))


# ------------------------------------------------------------------------------------ risk_backtest
def _scored(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = date(2024, 1, 1)
    targets = [start + timedelta(days=i + 1) for i in range(n)]
    sd = 0.02 * np.exp(0.3 * np.sin(np.arange(n) / 20))
    ret = rng.normal(0, sd)
    frames = []
    for model, scale in (("truth", 1.0), ("narrow", 0.6)):
        zq = stats.norm.ppf(QUANTILES)
        q = np.outer(sd * scale, zq)
        frames.append(
            pl.DataFrame(
                {
                    "model": model,
                    "symbol": "BTC-USDT",
                    "origin": [t - timedelta(days=1) for t in targets],
                    "target": targets,
                    "horizon": 1,
                    "variance": (sd * scale) ** 2,
                    "rv": (sd * scale) ** 2,
                    "mean": 0.0,
                    **{quantile_column(lv): q[:, j] for j, lv in enumerate(QUANTILES)},
                    "family": "gaussian",
                    "params": "{}",
                    "fold": 0,
                    "asset_class": "crypto",
                    "ret": ret,
                    "rv_actual": ret**2,
                }
            )
        )
    return pl.concat(frames)


def test_risk_backtest_table() -> None:
    out = risk_backtest(_scored(), n_sims=300)
    assert out.columns == list(RISK_COLUMNS) and out.height == 2
    truth = out.filter(pl.col("model") == "truth").row(0, named=True)
    narrow = out.filter(pl.col("model") == "narrow").row(0, named=True)
    assert truth["n"] == 400 and truth["basel_n"] == 250 and not truth["basel_scaled"]
    assert narrow["var99_breaches"] > truth["var99_breaches"]
    assert narrow["var99_kupiec_p"] < 0.05 and narrow["var99_pass"] is False
    assert narrow["basel_zone"] == "red"
    assert narrow["es975_p"] < 0.05 and narrow["es975_z2"] < 0
    assert narrow["cov80"] < truth["cov80"]
    assert 0.7 < truth["cov80"] < 0.9 and 0.85 < truth["cov90"] < 0.95
    assert truth["es99_mean"] == pytest.approx(
        float(np.mean(0.02 * np.exp(0.3 * np.sin(np.arange(400) / 20)))) * normal_es(0.01), rel=1e-9
    )


# -------------------------------------------------------------------------------------- minute mode
def _minute_bars(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    h = np.empty(n)
    r = np.empty(n)
    h[0] = 1e-6
    for i in range(n):
        if i:
            h[i] = 1e-8 + 0.1 * r[i - 1] ** 2 + 0.85 * h[i - 1]
        r[i] = math.sqrt(h[i]) * rng.standard_t(5) * math.sqrt(3 / 5)
    close = 40_000 * np.exp(np.cumsum(np.r_[0.0, r]))
    t0 = datetime(2022, 1, 1, tzinfo=UTC)
    return pl.DataFrame({"ts": [t0 + timedelta(minutes=i) for i in range(n + 1)], "close": close})


def test_minute_var_backtest_chronological_holdout() -> None:
    t = time.perf_counter()
    out = minute_var_backtest(_minute_bars(2500), config=MINUTE_FAST_CONFIG, test_fraction=0.2, n_sims=200)
    elapsed = time.perf_counter() - t
    assert out["split"] == "chronological"
    assert out["n_train"] == 2000 and out["n_test"] == 500
    assert out["test_start"] > out["train_end"]
    assert out["avg_es"] < out["avg_var"] < 0
    for key in ("kupiec_p", "ind_p", "cc_p", "es_p"):
        assert 0.0 <= out[key] <= 1.0
    assert out["breaches"] == round(out["rate"] * out["n_test"])
    assert elapsed < 60.0  # about 4 s on two idle cores; loose bound for shared machines
