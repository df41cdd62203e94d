"""Minute range HAR: Parkinson's textbook scale, no look-ahead, QLIKE gain over EWMA, clear errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from tasks.minute_risk import bar_log_range
from tasks.models.minute_baselines import MinuteEwma
from tasks.models.minute_range_har import MinuteRangeHar, parkinson_variance, window_means


def _bars(sigmas: np.ndarray, steps: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-minute returns and log high-low ranges of Brownian paths seen at ``steps`` ticks a minute."""
    rng = np.random.default_rng(seed)
    incr = rng.standard_normal((sigmas.size, steps)) * (sigmas[:, None] / np.sqrt(steps))
    path = np.concatenate([np.zeros((sigmas.size, 1)), np.cumsum(incr, axis=1)], axis=1)
    return path[:, -1], path.max(axis=1) - path.min(axis=1)


def _regimes(n: int, seed: int = 1) -> np.ndarray:
    """Minute volatility of a persistent log-AR(1) regime (half-life about 70 minutes)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for p in range(1, n):
        x[p] = 0.99 * x[p - 1] + 0.14 * rng.standard_normal()
    return 1e-3 * np.exp(x)


def test_parkinson_variance_is_unbiased_for_a_brownian_bar() -> None:
    _, hl = _bars(np.full(40_000, 2e-3), steps=400)
    ratio = parkinson_variance(hl).mean() / 2e-3**2
    assert 0.93 < ratio < 1.02  # E[(ln H/L)^2] = 4 ln 2 sigma^2, a little less when sampled discretely


def test_window_means_use_only_earlier_bars() -> None:
    v = np.arange(1.0, 11.0)
    m = window_means(v, (1, 3))
    assert m.shape == (11, 2)
    assert m[0].tolist() == [0.0, 0.0]
    assert m[4].tolist() == [4.0, 3.0]  # mean of v[3] and of v[1..3]


def test_on_constant_volatility_forecasts_sit_at_the_true_variance() -> None:
    r, hl = _bars(np.full(6000, 1e-3))
    model = MinuteRangeHar().fit(r, hl)
    var = model.forecast(r, hl)
    assert var.size == r.size + 1
    assert abs(np.median(var[300:]) / 1e-6 - 1.0) < 0.1


def test_garbling_later_bars_leaves_earlier_forecasts_unchanged() -> None:
    r, hl = _bars(_regimes(5000))
    model = MinuteRangeHar().fit(r[:4000], hl[:4000])
    base = model.forecast(r, hl)
    r2, hl2 = r.copy(), hl.copy()
    r2[4500:], hl2[4500:] = 0.5, 0.5
    moved = model.forecast(r2, hl2)
    np.testing.assert_array_equal(base[:4501], moved[:4501])  # row 4500 is issued before bar 4500
    assert moved[4501] > 100 * base[4501]


def test_beats_ewma_by_qlike_out_of_sample_when_volatility_moves() -> None:
    r, hl = _bars(_regimes(20_000))
    rh = MinuteRangeHar().fit(r[:15_000], hl[:15_000]).forecast(r, hl)[15_000:20_000]
    ew = MinuteEwma().fit(r[:15_000]).forecast(r)[15_000:20_000]
    test = r[15_000:] ** 2

    def qlike(v: np.ndarray) -> float:
        return float(np.mean(test / v - np.log(test / v) - 1.0))

    assert qlike(rh) < 0.9 * qlike(ew)


def test_bad_settings_and_inputs_say_what_was_expected() -> None:
    with pytest.raises(ConfigError, match="positive whole minutes"):
        MinuteRangeHar(windows=[0, 5])
    with pytest.raises(ConfigError, match="distinct"):
        MinuteRangeHar(windows=[5, 5])
    with pytest.raises(ConfigError, match="family must be one of"):
        MinuteRangeHar(family="cauchy")
    r, hl = _bars(np.full(1000, 1e-3))
    with pytest.raises(DataError, match="needs each bar's high and low"):
        MinuteRangeHar().fit(r)
    bad = hl.copy()
    bad[17] = -0.1
    with pytest.raises(DataError, match="first at position 17"):
        MinuteRangeHar().fit(r, bad)
    with pytest.raises(ConfigError, match="not fitted"):
        MinuteRangeHar().forecast(r, hl)


def test_bar_log_range_names_the_first_inverted_bar() -> None:
    ts = pl.datetime_range(
        pl.datetime(2022, 1, 3, time_zone="UTC"), pl.datetime(2022, 1, 3, 0, 4, time_zone="UTC"),
        "1m", eager=True,
    )  # fmt: skip
    bars = pl.DataFrame({"ts": ts, "close": [1.0] * 5, "high": [1.1, 1.1, 1.0, 0.9, 1.1],
                         "low": [0.9, 0.9, 0.95, 1.0, 0.9]})  # fmt: skip
    with pytest.raises(DataError, match=r"first at 2022-01-03 00:03:00.*high 0.9, low 1.0"):
        bar_log_range(bars, "SYN")
    assert bar_log_range(bars.drop("high"), "SYN") is None
    ok = bar_log_range(bars.with_columns(high=pl.lit(1.1), low=pl.lit(0.9)), "SYN")
    assert ok is not None and ok.size == 4 and np.allclose(ok, np.log(1.1 / 0.9))
