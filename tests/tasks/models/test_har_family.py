"""Textbook checks of the better-specified HARs: each recovers its own DGP, and the parts that make it
what it is (WLS weights, HARQ's measurement-error sign, the insanity filter, HAR-CJ's jump test, the
lagged market factor of HExpGl, the estimation window) do what the papers say."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from tasks.models.base import ModelData, get_model
from tasks.models.har import Har, fit_har, har_design
from tasks.models.har_family import JUMP_THETA, continuous_and_jumps, jump_statistic
from tasks.models.har_linear import (
    LevelFit,
    fit_levels,
    insanity_filter,
    rolling_mean,
    solve_linear,
    wls_weights,
)
from tasks.models.hexp import CENTRES
from tasks.models.market_factor import FACTOR, ewma_rv, global_factor

START = date(1950, 1, 1)
HAR_TRUE = np.array([0.05, 0.35, 0.35, 0.2])  # b0, bd, bw, bm: persistence 0.9, mean RV 0.5


def features(rv: np.ndarray, symbol: str = "SIM", seed: int = 0, **extra: np.ndarray) -> pl.DataFrame:
    """A daily features frame (every calendar day a session) around a simulated RV series."""
    ret = np.sqrt(rv) * np.random.default_rng(seed).standard_normal(rv.size)
    cols: dict[str, object] = {
        "symbol": [symbol] * rv.size,
        "session_date": [START + timedelta(days=i) for i in range(rv.size)],
        "ret_cc": ret,
        "ret_oc": ret,
        "rv": rv,
        "rv_d": rv,
        "rv_w": rolling_mean(rv, 5, fill=False),
        "rv_m": rolling_mean(rv, 22, fill=False),
    }
    return pl.DataFrame(cols | extra)


def last_session(frame: pl.DataFrame) -> date:
    last: date = frame["session_date"].max()  # type: ignore[assignment]
    return last


def fit_model(name: str, frame: pl.DataFrame, end: date | None = None, **config: Any) -> Any:
    """``name`` fitted on ``frame`` through ``end`` (default: its last session)."""
    return get_model(name, **config).fit(ModelData(frame), end or last_session(frame))


def with_columns(frame: pl.DataFrame, columns: dict[str, np.ndarray]) -> pl.DataFrame:
    return frame.hstack([pl.Series(name, values) for name, values in columns.items()])


def fitted(name: str, frame: pl.DataFrame, **config: Any) -> LevelFit:
    fit: LevelFit = fit_model(name, frame, **config).coefficients(str(frame["symbol"][0]))
    return fit


def simulate(
    n: int, mean_of: Callable[[np.ndarray, int], float], seed: int, shape: float = 10.0
) -> np.ndarray:
    """``RV(t+1) = mu(t) * eps``, ``eps ~ Gamma(shape, 1/shape)``, ``mu(t) = mean_of(rv, t)``."""
    rng = np.random.default_rng(seed)
    eps = rng.gamma(shape, 1.0 / shape, size=n)
    rv = np.full(n, 0.5)
    for t in range(22, n - 1):
        rv[t + 1] = max(mean_of(rv, t), 1e-4) * eps[t + 1]
    return rv


def har_mean(coef: np.ndarray) -> Callable[[np.ndarray, int], float]:
    def mean(rv: np.ndarray, t: int) -> float:
        return float(coef @ [1.0, rv[t], rv[t - 4 : t + 1].mean(), rv[t - 21 : t + 1].mean()])

    return mean


# --- WLS-HAR ----------------------------------------------------------------------------------------


def test_har_wls_recovers_the_har_coefficients() -> None:
    fit = fitted("har_wls", features(simulate(20_000, har_mean(HAR_TRUE), seed=1)))
    np.testing.assert_allclose(fit.coef, HAR_TRUE, atol=0.03)


def test_wls_is_the_textbook_weighted_estimator_with_weights_one_over_the_ols_fit() -> None:
    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(12), rng.uniform(1, 3, size=(12, 2))])
    y = x @ [0.2, 0.5, 0.3] + rng.normal(0, 0.1, 12)
    ols = np.linalg.solve(x.T @ x, x.T @ y)
    w = np.diag(1.0 / (x @ ols))
    np.testing.assert_allclose(wls_weights(x, y), np.diag(w))
    np.testing.assert_allclose(solve_linear(x, y, np.diag(w)), np.linalg.solve(x.T @ w @ x, x.T @ w @ y))


def test_wls_is_closer_to_the_truth_than_ols_under_heteroskedastic_noise() -> None:
    errors = {"ols": 0.0, "wls": 0.0}
    for seed in range(8):
        frame = features(simulate(3_000, har_mean(HAR_TRUE), seed=10 + seed, shape=2.0))
        for weighting in errors:
            coef = fitted("har_wls", frame, weighting=weighting).coef
            errors[weighting] += float(np.sum((coef[1:] - HAR_TRUE[1:]) ** 2))
    assert errors["wls"] < 0.8 * errors["ols"], errors


# --- HARQ, HARQ-F, insanity filter ------------------------------------------------------------------


def test_harq_recovers_its_coefficients() -> None:
    rng = np.random.default_rng(5)
    noise = rng.uniform(0.5, 2.0, size=20_000)  # RQ = RV^2 * noise
    truth = np.array([0.05, 0.4, -0.04, 0.3, 0.2])  # b0, bd, bq, bw, bm

    def mean(rv: np.ndarray, t: int) -> float:
        root_rq = rv[t] * np.sqrt(noise[t])
        return float(
            truth @ [1.0, rv[t], root_rq * rv[t], rv[t - 4 : t + 1].mean(), rv[t - 21 : t + 1].mean()]
        )

    rv = simulate(20_000, mean, seed=6)
    fit = fitted("harq", features(rv, rq=rv**2 * noise))
    np.testing.assert_allclose(fit.coef, truth, atol=0.03)


def measured(n: int, intraday: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """RV and RQ of ``intraday`` Gaussian returns a day around a persistent log-AR(1) integrated variance."""
    rng = np.random.default_rng(seed)
    log_iv = np.zeros(n)
    for t in range(1, n):
        log_iv[t] = 0.98 * log_iv[t - 1] + 0.2 * rng.standard_normal()
    r = rng.standard_normal((n, intraday)) * np.sqrt(np.exp(log_iv) / intraday)[:, None]
    return (r**2).sum(axis=1), intraday / 3.0 * (r**4).sum(axis=1)


def test_harq_beta_q_is_negative_when_rv_carries_measurement_error() -> None:
    rv, rq = measured(8_000, intraday=12, seed=8)
    assert fitted("harq", features(rv, rq=rq)).coef[2] < 0
    assert (fitted("harq_f", features(rv, rq=rq)).coef[[2, 4, 6]] < 0).sum() >= 2


def test_insanity_filter_replaces_a_forecast_outside_the_in_sample_range() -> None:
    fit = LevelFit(coef=np.zeros(2), low=0.1, high=2.0, mean=0.6, n=100)
    out = insanity_filter(np.array([0.5, 5.0, -1.0, np.nan, 2.0]), fit)
    np.testing.assert_array_equal(out, [0.5, 0.6, 0.6, 0.6, 2.0])
    clipped = insanity_filter(np.array([0.5, 5.0, -1.0, np.nan, 2.0]), fit, "clip")
    np.testing.assert_array_equal(clipped, [0.5, 2.0, 0.6, 0.6, 2.0])


def test_harq_forecast_after_an_exploding_day_is_the_in_sample_mean() -> None:
    rv, rq = measured(3_000, intraday=12, seed=9)
    frame = features(rv, rq=rq)
    end = frame["session_date"][2_000]
    model = fit_model("harq", frame, end)
    fit = model.coefficients("SIM")
    origin = frame["session_date"][2_500]
    wild = frame.with_columns(
        pl.when(pl.col("session_date") == origin).then(pl.col(c) * 1e4).otherwise(pl.col(c)).alias(c)
        for c in ("rv_d", "rq")
    )
    calm = model.predict(ModelData(frame), [origin])["rv"].item()
    assert fit.low <= calm <= fit.high and calm != fit.mean
    assert model.predict(ModelData(wild), [origin])["rv"].item() == fit.mean


def test_harq_without_rq_names_the_symbol_and_the_missing_input() -> None:
    rv = simulate(500, har_mean(HAR_TRUE), seed=2)
    frame = features(rv, symbol="NO-RQ", rq=np.full(rv.size, np.nan)).with_columns(
        pl.col("rq").fill_nan(None)
    )
    with pytest.raises(DataError, match=r"'harq' needs rq for 'NO-RQ'.*quarticity"):
        get_model("harq").fit(ModelData(frame), last_session(frame))


# --- SHAR -------------------------------------------------------------------------------------------


def test_shar_recovers_its_coefficients() -> None:
    share = np.random.default_rng(12).beta(4, 4, size=20_000)  # RS+ / RV
    truth = np.array([0.05, 0.15, 0.55, 0.3, 0.2])  # b0, b+, b-, bw, bm

    def mean(rv: np.ndarray, t: int) -> float:
        pos = share[t] * rv[t]
        return float(truth @ [1.0, pos, rv[t] - pos, rv[t - 4 : t + 1].mean(), rv[t - 21 : t + 1].mean()])

    rv = simulate(20_000, mean, seed=13)
    fit = fitted("shar", features(rv, rs_pos=share * rv, rs_neg=(1 - share) * rv))
    np.testing.assert_allclose(fit.coef, truth, atol=0.03)


# --- HAR-CJ -----------------------------------------------------------------------------------------


def jump_columns(rv: np.ndarray, jumps: np.ndarray, n_returns: int = 78) -> dict[str, np.ndarray]:
    """``bv = rv - jumps``, ``tq = bv^2``, so ``Z = (J/RV) / sqrt(theta/n)``."""
    bv = rv - jumps
    return {"bv": bv, "tq": bv**2, "rq": bv**2, "n_returns": np.full(rv.size, n_returns)}


def test_jump_statistic_is_the_features_bns_z(btc_daily: pl.DataFrame) -> None:
    z = jump_statistic(btc_daily)
    expected = btc_daily["bns_z"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    assert np.isfinite(expected).sum() > 2_000
    np.testing.assert_allclose(z, expected, rtol=1e-9, equal_nan=True)


def test_har_cj_recovers_its_coefficients() -> None:
    rng = np.random.default_rng(20)
    hit, size = rng.random(20_000) < 0.15, rng.uniform(0.3, 0.6, 20_000)  # jump days, J / RV
    hit[:22] = False  # the simulation starts at row 22
    truth = np.array([0.05, 0.3, 0.3, 0.2, 0.1, 0.2, 0.3])  # b0, C d/w/m, J d/w/m
    parts = np.zeros((2, 20_000))

    def mean(rv: np.ndarray, t: int) -> float:
        parts[1, t] = rv[t] * size[t] * hit[t]
        parts[0, t] = rv[t] - parts[1, t]
        lags = [[p[t], p[t - 4 : t + 1].mean(), p[t - 21 : t + 1].mean()] for p in parts]
        return float(truth @ [1.0, *lags[0], *lags[1]])

    rv = simulate(20_000, mean, seed=21)
    jumps = rv * size * hit
    frame = with_columns(features(rv), jump_columns(rv, jumps))
    cont, found = continuous_and_jumps(frame, 0.999)
    np.testing.assert_allclose(found, jumps)  # Z = size / sqrt(theta/78) > 3.1 on every jump day
    assert 0.3 / np.sqrt(JUMP_THETA / 78) > 3.1
    np.testing.assert_allclose(fitted("har_cj", frame).coef, truth, atol=0.05)


def test_har_cj_without_jumps_is_har_c() -> None:
    rv = simulate(3_000, har_mean(HAR_TRUE), seed=22)
    frame = with_columns(features(rv), jump_columns(rv, np.zeros(rv.size)))
    fit = fitted("har_cj", frame)
    x = np.column_stack(
        [np.ones(rv.size), rv, rolling_mean(rv, 5, fill=False), rolling_mean(rv, 22, fill=False)]
    )
    ok = np.isfinite(x[:-1]).all(axis=1)
    har_c, *_ = np.linalg.lstsq(x[:-1][ok], rv[1:][ok], rcond=None)
    np.testing.assert_allclose(fit.coef[:4], har_c, rtol=1e-8)
    np.testing.assert_allclose(fit.coef[4:], 0.0, atol=1e-12)


# --- HExp, HExpGl -----------------------------------------------------------------------------------


def test_ewma_rv_is_the_normalized_exponential_mean() -> None:
    x = np.array([1.0, np.nan, 4.0, 2.0])
    d = 5.0 / 6.0
    expected = (2.0 + d * 4.0 + d**3 * 1.0) / (1.0 + d + d**3)
    assert ewma_rv(x, 5.0)[-1] == pytest.approx(expected, rel=1e-12)
    assert ewma_rv(x, 5.0)[0] == 1.0


def simulate_panel(n: int, coef: np.ndarray, symbols: int, seed: int) -> np.ndarray:
    """``RV_s(t+1) = (b0 + sum_k bk E_k,s(t) [+ bg mean_s E_5,s(t-1)]) * eps``; returns ``(symbols, n)``."""
    rng = np.random.default_rng(seed)
    decay = np.array([c / (1 + c) for c in CENTRES])
    num, den = np.zeros((symbols, len(CENTRES))), np.zeros(len(CENTRES))
    rv = np.full((symbols, n), 0.5)
    previous = None
    for t in range(n - 1):
        num, den = num * decay + rv[:, t : t + 1], den * decay + 1.0
        ewma = num / den
        x = [np.ones(symbols), *ewma.T] + ([np.full(symbols, previous)] if coef.size > 5 else [])
        if coef.size > 5 and previous is None:
            x[-1] = np.full(symbols, np.nan)
        mu = np.nan_to_num(coef @ np.array(x), nan=0.5)
        rv[:, t + 1] = np.maximum(mu, 1e-4) * rng.gamma(20.0, 1 / 20.0, size=symbols)
        previous = float(ewma[:, 1].mean())
    return rv


def test_hexp_recovers_its_coefficients() -> None:
    """The EWMAs are nearly collinear, so one series pins down their sum better than each weight: six
    independent symbols, averaged."""
    truth = np.array([0.05, 0.3, 0.3, 0.2, 0.1])
    rv = simulate_panel(20_000, truth, symbols=6, seed=30)
    model = fit_model("hexp", pl.concat([features(rv[s], symbol=f"S{s}", seed=s) for s in range(6)]))
    coef = np.array([model.coefficients(f"S{s}").coef for s in range(6)])
    np.testing.assert_allclose(coef.mean(axis=0), truth, atol=0.05)
    assert coef[:, 1:].sum(axis=1).mean() == pytest.approx(truth[1:].sum(), abs=0.015)  # persistence


def test_hexp_gl_recovers_its_coefficients_with_the_lagged_market_factor() -> None:
    truth = np.array([0.05, 0.3, 0.2, 0.1, 0.1, 0.2])  # b0, CoM 1/5/25/125, global
    rv = simulate_panel(12_000, truth, symbols=3, seed=31)
    frame = pl.concat([features(rv[s], symbol=f"S{s}", seed=s) for s in range(3)])
    model = fit_model("hexp_gl", frame)
    coef = np.mean([model.coefficients(f"S{s}").coef for s in range(3)], axis=0)
    np.testing.assert_allclose(coef, truth, atol=0.05)


def test_global_factor_at_a_date_uses_no_row_dated_then_or_later() -> None:
    a, b = (
        features(simulate(400, har_mean(HAR_TRUE), seed=40), "A"),
        features(simulate(400, har_mean(HAR_TRUE), seed=41), "B", seed=1),
    )
    d = a["session_date"][300]
    clean = global_factor(pl.concat([a, b]))
    later = pl.col("session_date") >= d
    garbled_b = b.with_columns(
        pl.when(later).then(pl.col("rv_d") * 1e3).otherwise(pl.col("rv_d")).alias("rv_d")
    )
    garbled = global_factor(pl.concat([a, garbled_b]))
    upto = pl.col("session_date") <= d
    assert clean.filter(upto).equals(garbled.filter(upto))
    assert not clean.filter(~upto).equals(garbled.filter(~upto))
    # the factor at d is the mean of both symbols' CoM-5 EWMA of the day before
    before = [ewma_rv(f["rv_d"].to_numpy(), 5.0)[299] for f in (a, b)]
    assert clean.filter(pl.col("session_date") == d)[FACTOR].item() == pytest.approx(
        np.mean(before), rel=1e-12
    )
    # with one symbol it is that symbol's own EWMA of the previous session
    own = global_factor(a).filter(pl.col("session_date") == d)[FACTOR].item()
    assert own == pytest.approx(before[0], rel=1e-12)
    assert global_factor(a.head(0)).height == 0


def test_hexp_gl_forecast_ignores_another_market_from_the_origin_date_on() -> None:
    a = features(simulate(800, har_mean(HAR_TRUE), seed=42), "A")
    b = features(simulate(800, har_mean(HAR_TRUE), seed=43), "B", seed=1)
    end, origin = a["session_date"][500], a["session_date"][600]

    def forecast(b_from: date) -> float:
        changed = pl.col("session_date") >= b_from
        garbled = b.with_columns(
            pl.when(changed).then(pl.col("rv_d") * 1e3).otherwise(pl.col("rv_d")).alias("rv_d")
        )
        data = ModelData(pl.concat([a, garbled]))
        pred = get_model("hexp_gl").fit(data, end).predict(data, [origin])
        return float(pred.filter(pl.col("symbol") == "A")["rv"].item())

    clean = forecast(date(2100, 1, 1))
    assert forecast(origin) == clean
    assert forecast(origin - timedelta(days=1)) != clean  # the day before does enter


def test_hexp_gl_fits_around_a_short_symbol_that_still_feeds_the_factor() -> None:
    """A panel member with too little history gets no regression; the long one is still forecast."""
    a = features(simulate(800, har_mean(HAR_TRUE), seed=42), "A")
    b = features(simulate(800, har_mean(HAR_TRUE), seed=43), "B", seed=1)
    end, origin = a["session_date"][500], a["session_date"][600]
    late = b.filter(pl.col("session_date") > a["session_date"][450])  # 50 sessions by train_end
    model = get_model("hexp_gl")
    pred = model.fit(ModelData(pl.concat([a, late])), end).predict(ModelData(pl.concat([a, late])), [origin])
    assert pred["symbol"].to_list() == ["A"] and model.too_short == {"B": 50}
    alone = get_model("hexp_gl").fit(ModelData(a), end).predict(ModelData(a), [origin])
    assert pred["rv"].item() != alone["rv"].item(), "B's rows still move the market factor"
    with pytest.raises(DataError, match="needs at least"):
        get_model("hexp_gl").fit(ModelData(late), end)


# --- estimation window, configuration ---------------------------------------------------------------


def test_window_uses_only_the_newest_sessions_and_the_default_is_unchanged() -> None:
    frame = features(simulate(2_000, har_mean(HAR_TRUE), seed=50))
    design = har_design(frame, jumps=False, fill=False)
    log_rv = np.log(frame["rv_d"].to_numpy())
    windowed = fit_model("har", frame, window=630).coefficients("SIM")
    np.testing.assert_array_equal(windowed.coef, fit_har(design[-631:], log_rv[-631:], 1).coef)
    assert windowed.n == 630
    full = fit_model("har", frame).coefficients("SIM")
    np.testing.assert_array_equal(full.coef, fit_har(design, log_rv, 1).coef)
    assert "window" not in Har().config()
    levels = np.column_stack([np.ones(2_000), frame.select("rv_d", "rv_w", "rv_m").to_numpy()])
    tail = fit_levels(levels[-1001:], frame["rv_d"].to_numpy()[-1001:], 1, None, "wls")
    assert fitted("har_wls", frame, window=1000).coef.tolist() == tail.coef.tolist()


@pytest.mark.parametrize("name", ["har", "har_wls", "harq", "harq_f", "shar", "har_cj", "hexp", "hexp_gl"])
def test_window_must_be_none_or_a_real_window(name: str) -> None:
    assert get_model(name, window=630).config()["window"] == 630
    for bad in (10, 0, True, 630.0, "630"):
        with pytest.raises(ConfigError, match="window"):
            get_model(name, window=bad)
