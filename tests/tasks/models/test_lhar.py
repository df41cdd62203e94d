"""LHAR (Corsi & Renò 2012): recovers its own DGP, finds no leverage where there is none, and a fall
in price raises its forecast where a rise of the same size does not."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
from test_har_family import START, fit_model, last_session

from tasks.models.base import ModelData
from tasks.models.har_leverage import leverage_terms
from tasks.models.har_linear import rolling_mean

#: b0, bd, bw, bm (log HAR) and gd, gw, gm (negative returns, in return units).
TRUE = np.array([-0.9, 0.35, 0.35, 0.2, -3.0, -5.0, -4.0])


def _simulate(n: int, coef: np.ndarray, seed: int) -> pl.DataFrame:
    """``log RV(t+1) = min(x(t)'coef + e, -5)``, ``e ~ N(0, 0.3^2)``; returns ``sqrt(RV) z``."""
    rng = np.random.default_rng(seed)
    log_rv = np.full(n, np.log(1e-4))
    ret = np.zeros(n)
    for t in range(n - 1):
        ret[t] = np.exp(0.5 * log_rv[t]) * rng.standard_normal()
        lo = max(0, t - 21)
        rv = np.exp(log_rv[lo : t + 1])
        neg = np.minimum(ret[lo : t + 1], 0.0)
        x = [1.0, log_rv[t], np.log(rv[-5:].mean()), np.log(rv.mean()), neg[-1], neg[-5:].mean(), neg.mean()]
        # clipped: a long run of falls feeds on itself, and nothing else bounds it
        log_rv[t + 1] = min(float(np.dot(coef, x)) + 0.3 * rng.standard_normal(), -5.0)
    rv = np.exp(log_rv)
    return pl.DataFrame({
        "symbol": ["SIM"] * n, "session_date": [START + timedelta(days=i) for i in range(n)],
        "ret_cc": ret, "ret_oc": ret, "rv": rv, "rv_d": rv,
        "rv_w": rolling_mean(rv, 5, fill=False), "rv_m": rolling_mean(rv, 22, fill=False),
    })  # fmt: skip


def test_lhar_recovers_its_coefficients() -> None:
    fit = fit_model("lhar", _simulate(40_000, TRUE, seed=3)).coefficients("SIM")
    np.testing.assert_allclose(fit.coef[:4], TRUE[:4], atol=0.06)
    assert abs(fit.coef[4] - TRUE[4]) < 0.6  # the daily term is sharply identified
    assert abs(fit.coef[4:].sum() - TRUE[4:].sum()) < 2.5  # the three terms together
    assert abs(fit.sigma2 - 0.09) < 0.005


def test_without_leverage_in_the_data_the_leverage_terms_vanish() -> None:
    no_leverage = TRUE.copy()
    no_leverage[4:] = 0.0
    fit = fit_model("lhar", _simulate(40_000, no_leverage, seed=4)).coefficients("SIM")
    assert abs(fit.coef[4]) < 0.6 and abs(fit.coef[4:].sum()) < 2.5  # against -3 and -12


def test_a_fall_raises_the_forecast_and_a_rise_of_the_same_size_does_not() -> None:
    frame = _simulate(6_000, TRUE, seed=5)
    model = fit_model("lhar", frame)
    last = last_session(frame)
    preds = {}
    for move in (-0.03, 0.03):
        moved = frame.with_columns(
            pl.when(pl.col("session_date") == last).then(move).otherwise(pl.col("ret_cc")).alias("ret_cc")
        )
        preds[move] = model.predict(ModelData(moved), [last])["rv"][0]
    flat = frame.with_columns(
        pl.when(pl.col("session_date") == last).then(0.0).otherwise(pl.col("ret_cc")).alias("ret_cc")
    )
    base = model.predict(ModelData(flat), [last])["rv"][0]
    assert preds[-0.03] > 1.1 * base  # exp(3 x 0.03 + 5 x 0.006 + 4 x 0.0014) = 1.13
    assert preds[0.03] == base


def test_leverage_terms_are_the_negative_parts_and_their_means() -> None:
    ret = np.array([0.01, -0.02, np.nan, -0.04, 0.03, -0.01])
    train = leverage_terms(ret, fill=False)
    assert np.isnan(train[2, 0]) and train[1, 0] == -0.02 and train[0, 0] == 0.0
    pred = leverage_terms(ret, fill=True)
    np.testing.assert_allclose(pred[:, 0], [0.0, -0.02, 0.0, -0.04, 0.0, -0.01])
    np.testing.assert_allclose(pred[4, 1], np.mean([0.0, -0.02, 0.0, -0.04, 0.0]))
