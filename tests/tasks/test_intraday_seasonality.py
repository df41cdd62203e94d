"""The time-of-day volatility profile: recovery of a known U shape, train-only fit, gaps, fallbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from tasks.intraday_seasonality import (
    SeasonalitySettings,
    bucket_index,
    deseasonalise,
    fit_profile,
    one_bar_returns,
    reseasonalise,
    seasonal_factor,
)
from tests.tasks.minute_synthetic import SESSION_MINUTES, u_shape, u_shaped_bars

NY = "America/New_York"


def _returns() -> pl.DataFrame:
    bars = u_shaped_bars(days=60)
    return one_bar_returns(bars["ts"], bars["close"].to_numpy()).filter(pl.col("keep"))


def test_fitted_profile_recovers_the_u_shape() -> None:
    rets = _returns()
    prof = fit_profile(rets["ret"].to_numpy(), rets["ts"], NY, SeasonalitySettings(smooth_minutes=5))
    fitted = seasonal_factor(prof, rets["ts"])
    local = rets["ts"].dt.convert_time_zone(NY)
    minute = (local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32) - 570).to_numpy()
    true = u_shape(minute.astype(float))
    true = true / np.sqrt(np.mean(true**2))
    assert np.mean(fitted**2) == pytest.approx(1.0, rel=1e-9)  # normalised on the training returns
    assert np.corrcoef(fitted, true)[0, 1] > 0.97
    mid = (minute > 120) & (minute < 270)
    assert np.median(fitted[minute == 1] / true[minute == 1]) == pytest.approx(1.0, abs=0.3)
    assert np.median(fitted[mid] / true[mid]) == pytest.approx(1.0, abs=0.1)
    z = deseasonalise(rets["ret"].to_numpy(), rets["ts"], prof)
    first, middle = np.std(z[minute < 15]), np.std(z[mid])
    assert first / middle == pytest.approx(1.0, abs=0.25)  # raw ratio is about 4


def test_profile_depends_on_the_training_returns_only() -> None:
    rets = _returns()
    n_train = 15_000
    a = fit_profile(rets["ret"].to_numpy()[:n_train], rets["ts"][:n_train], NY)
    r2 = rets["ret"].to_numpy().copy()
    r2[n_train:] = 1e3 * np.random.default_rng(1).standard_normal(r2.size - n_train)
    b = fit_profile(r2[:n_train], rets["ts"][:n_train], NY)
    np.testing.assert_array_equal(a.factors, b.factors)
    # the pipeline fits it on its training split: garbling the hold-out leaves the stored profile alone
    from tasks.minute_risk import minute_risk_backtest
    from tests.tasks.minute_synthetic import u_shaped_bars
    from tests.tasks.test_minute_risk import _spec

    bars = u_shaped_bars(days=12)
    cut = int(bars.height * 0.8)
    shock = np.exp(np.cumsum(0.01 * np.random.default_rng(2).standard_normal(bars.height)))
    shock[: cut + 1] = 1.0  # every hold-out return becomes wild; no training return changes
    wild = bars.with_columns((pl.col("close") * shock).alias("close"))
    spec = _spec(test_fraction=0.2, compare_raw=False)
    one, two = minute_risk_backtest(bars, spec), minute_risk_backtest(wild, spec)
    assert one.profile.factors.tolist() == two.profile.factors.tolist()


def test_gap_returns_are_flagged_and_dropped() -> None:
    t0 = datetime(2022, 1, 1, tzinfo=UTC)
    ts = pl.Series([t0, t0 + timedelta(minutes=1), t0 + timedelta(minutes=5), t0 + timedelta(minutes=6)])
    out = one_bar_returns(ts.cast(pl.Datetime("us", "UTC")), np.array([1.0, 1.1, 1.2, 1.3]))
    assert out["span_minutes"].to_list() == [1, 4, 1]
    assert out["keep"].to_list() == [True, False, True]
    with pytest.raises(DataError):
        one_bar_returns(ts.cast(pl.Datetime("us", "UTC")), np.array([1.0, -1.0, 1.2, 1.3]))


def test_sparse_buckets_fall_back_to_the_overall_level() -> None:
    t0 = datetime(2022, 1, 3, 12, 0, tzinfo=UTC)
    ts = pl.Series([t0 + timedelta(days=d, minutes=m) for d in range(30) for m in range(60)])
    ts = ts.cast(pl.Datetime("us", "UTC"))
    r = np.random.default_rng(0).standard_normal(ts.len()) * 1e-3
    prof = fit_profile(r, ts, "UTC", SeasonalitySettings(smooth_minutes=0, min_obs=5, floor=0.1))
    day, bucket = bucket_index(ts, "UTC", prof.settings)
    empty = np.setdiff1d(np.arange(prof.n_buckets), bucket)
    assert empty.size > 0
    # every never-seen bucket has one and the same fallback level (the overall mean)
    assert np.ptp(prof.factors[0, empty]) == 0.0
    assert np.all(np.isfinite(prof.factors)) and np.all(prof.factors > 0)


def test_weekday_profile_and_round_trip() -> None:
    rets = _returns()
    prof = fit_profile(rets["ret"].to_numpy(), rets["ts"], NY, SeasonalitySettings(by_weekday=True))
    assert prof.factors.shape == (7, 1440)
    r = rets["ret"].to_numpy()
    z = deseasonalise(r, rets["ts"], prof)
    np.testing.assert_allclose(reseasonalise(z, rets["ts"], prof), r, rtol=1e-12)
    v = reseasonalise(np.ones(r.size), rets["ts"], prof, power=2)
    np.testing.assert_allclose(v, seasonal_factor(prof, rets["ts"]) ** 2)


@pytest.mark.parametrize(
    "kwargs",
    [{"bucket_minutes": 7}, {"statistic": "max"}, {"floor": 0.0}, {"min_obs": -1}, {"by_weekday": 1}],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SeasonalitySettings(**kwargs)  # type: ignore[arg-type]


def test_session_minutes_constant_matches_the_fixture() -> None:
    bars = u_shaped_bars(days=2)
    assert bars.height == 2 * SESSION_MINUTES
