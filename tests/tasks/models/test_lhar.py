"""LHAR (Corsi & Renò 2012): recovers its own DGP in both leverage forms, finds no leverage where there
is none, and a fall in price raises its forecast where a rise of the same size does not."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from test_har_family import START, fit_model, last_session

from core.errors import ConfigError
from tasks.models.base import ModelData
from tasks.models.har_leverage import leverage_terms
from tasks.models.har_linear import rolling_mean
from tasks.train import build_model

#: b0, bd, bw, bm (log HAR) and gd, gw, gm (negative returns, in return units).
TRUE = np.array([-0.9, 0.35, 0.35, 0.2, -3.0, -5.0, -4.0])


def _simulate(n: int, coef: np.ndarray, seed: int, form: str = "aggregate") -> pl.DataFrame:
    """``log RV(t+1) = min(x(t)'coef + e, -5)``, ``e ~ N(0, 0.3^2)``; returns ``sqrt(RV) z``; the
    weekly and monthly leverage terms in ``form``."""
    rng = np.random.default_rng(seed)
    log_rv = np.full(n, np.log(1e-4))
    ret = np.zeros(n)
    for t in range(n - 1):
        ret[t] = np.exp(0.5 * log_rv[t]) * rng.standard_normal()
        lo = max(0, t - 21)
        rv = np.exp(log_rv[lo : t + 1])
        r = ret[lo : t + 1]
        neg = np.minimum(r, 0.0)
        if form == "daily":
            lev = [neg[-1], neg[-5:].mean(), neg.mean()]
        else:
            lev = [neg[-1], min(r[-5:].mean(), 0.0), min(r.mean(), 0.0)]
        x = [1.0, log_rv[t], np.log(rv[-5:].mean()), np.log(rv.mean()), *lev]
        # clipped: a long run of falls feeds on itself, and nothing else bounds it
        log_rv[t + 1] = min(float(np.dot(coef, x)) + 0.3 * rng.standard_normal(), -5.0)
    rv = np.exp(log_rv)
    return pl.DataFrame({
        "symbol": ["SIM"] * n, "session_date": [START + timedelta(days=i) for i in range(n)],
        "ret_cc": ret, "ret_oc": ret, "rv": rv, "rv_d": rv,
        "rv_w": rolling_mean(rv, 5, fill=False), "rv_m": rolling_mean(rv, 22, fill=False),
    })  # fmt: skip


@pytest.mark.parametrize("form", ["aggregate", "daily"])
def test_lhar_recovers_its_coefficients(form: str) -> None:
    fit = fit_model("lhar", _simulate(40_000, TRUE, seed=3, form=form), leverage=form).coefficients("SIM")
    np.testing.assert_allclose(fit.coef[:4], TRUE[:4], atol=0.06)
    assert abs(fit.coef[4] - TRUE[4]) < 0.6  # the daily term is sharply identified
    assert abs(fit.coef[4:].sum() - TRUE[4:].sum()) < 2.5  # the three terms together
    assert abs(fit.sigma2 - 0.09) < 0.005


def test_without_leverage_in_the_data_the_leverage_terms_vanish() -> None:
    no_leverage = TRUE.copy()
    no_leverage[4:] = 0.0
    fit = fit_model("lhar", _simulate(40_000, no_leverage, seed=4)).coefficients("SIM")
    assert abs(fit.coef[4]) < 0.6 and abs(fit.coef[4:].sum()) < 2.5  # against -3 and -12


@pytest.mark.parametrize("form", ["aggregate", "daily"])
def test_a_fall_raises_the_forecast_and_a_rise_of_the_same_size_does_not(form: str) -> None:
    frame = _simulate(6_000, TRUE, seed=5, form=form)
    model = fit_model("lhar", frame, leverage=form)
    last = last_session(frame)

    def forecast_after(move: float) -> float:
        moved = frame.with_columns(
            pl.when(pl.col("session_date") == last).then(move).otherwise(pl.col("ret_cc")).alias("ret_cc")
        )
        return float(model.predict(ModelData(moved), [last])["rv"][0])

    base, fall, rise = forecast_after(0.0), forecast_after(-0.03), forecast_after(0.03)
    assert fall > 1.1 * base  # exp(3 x 0.03 + ...) >= 1.09, plus the weekly and monthly terms
    if form == "daily":
        assert rise == base  # a rising day adds nothing to any negative part
    else:
        assert rise <= base  # it can only lift a falling week or month towards zero


def test_the_leverage_form_is_checked_and_kept_in_the_config() -> None:
    with pytest.raises(ConfigError, match=r"leverage must be one of \['aggregate', 'daily'\]; got 'weekly'"):
        fit_model("lhar", _simulate(500, TRUE, seed=6), leverage="weekly")
    model = fit_model("lhar", _simulate(500, TRUE, seed=6), leverage="daily")
    rebuilt = build_model("lhar", model.config())  # as a stored run is rebuilt
    assert rebuilt.leverage == "daily" and model.config()["leverage"] == "daily"


def test_leverage_terms_are_the_negative_parts_and_their_means() -> None:
    ret = np.array([0.01, -0.02, np.nan, -0.04, 0.03, -0.01])
    train = leverage_terms(ret, fill=False)
    assert np.isnan(train[2, 0]) and train[1, 0] == -0.02 and train[0, 0] == 0.0
    pred = leverage_terms(ret, fill=True)
    np.testing.assert_allclose(pred[:, 0], [0.0, -0.02, 0.0, -0.04, 0.0, -0.01])
    # aggregate (default): the negative part of the week's mean return (the missing day counts as 0)
    np.testing.assert_allclose(pred[4, 1], np.mean([0.01, -0.02, 0.0, -0.04, 0.03]))
    np.testing.assert_allclose(pred[5, 1], np.mean([-0.02, 0.0, -0.04, 0.03, -0.01]))
    daily = leverage_terms(ret, fill=True, form="daily")  # the mean of the days' negative parts
    np.testing.assert_allclose(daily[4, 1], np.mean([0.0, -0.02, 0.0, -0.04, 0.0]))
    assert leverage_terms(np.array([0.02, 0.03, -0.01, 0.02, 0.01]), fill=True)[4, 1] == 0.0
    assert daily[5, 1] < pred[5, 1] < 0.0  # every falling day counts in the daily form
