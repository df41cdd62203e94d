"""FHS and EVT tails of standardized residuals (tasks/calibration_tails.py) and the grid quantile function."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from core.errors import ConfigError
from core.schema import QUANTILES
from tasks.calibration_grid import LEVEL_FLOOR, grid_cdf, grid_quantile
from tasks.calibration_tails import (
    evt_standard_quantiles,
    fhs_standard_quantiles,
    fit_gpd_tail,
    rolling_standard_quantiles,
)

NU = 4.0
SCALE = math.sqrt((NU - 2) / NU)  # unit-variance Student-t


def _z(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_t(NU, size=n) * SCALE


def test_gpd_shape_of_student_t_residuals_is_near_one_over_nu() -> None:
    z = _z(np.random.default_rng(0), 100_000)
    shapes = []
    for side in ("lower", "upper"):
        fit = fit_gpd_tail(z, 0.01, side)
        assert fit is not None and fit.n_exceed == 1000
        shapes.append(fit.shape)
    # The MLE's standard error is about (1 + xi) / sqrt(1000) = 0.04 per tail; at a 1% threshold the
    # t's second-order bias is a few hundredths (at 5% it is -0.05 or so), so 0.1 per tail, 0.06 for
    # the mean of both.
    assert all(abs(x - 1 / NU) < 0.1 for x in shapes)
    assert abs(np.mean(shapes) - 1 / NU) < 0.06


def test_evt_beats_the_empirical_quantile_on_small_windows() -> None:
    rng = np.random.default_rng(1)
    levels = np.array([0.005, 0.01, 0.99, 0.995])
    truth = stats.t.ppf(levels, NU) * SCALE
    err_evt, err_emp = [], []
    for _ in range(200):  # 500 residuals, 50 exceedances per tail at the 10% thresholds
        z = _z(rng, 500)
        err_evt.append(evt_standard_quantiles(z, levels, tail=0.10) - truth)
        err_emp.append(fhs_standard_quantiles(z, levels) - truth)
    rmse_evt = np.sqrt(np.mean(np.square(err_evt), axis=0))
    rmse_emp = np.sqrt(np.mean(np.square(err_emp), axis=0))
    assert np.all(rmse_evt < rmse_emp)  # at 0.5%, 1%, 99% and 99.5% (about 5-15% smaller)


def test_evt_is_continuous_at_the_threshold_and_keeps_the_body() -> None:
    z = _z(np.random.default_rng(2), 500)
    levels = np.asarray(QUANTILES)
    evt = evt_standard_quantiles(z, levels, tail=0.10)
    fhs = fhs_standard_quantiles(z, levels)
    body = (levels >= 0.10) & (levels <= 0.90)
    np.testing.assert_allclose(evt[body], fhs[body])
    near = evt_standard_quantiles(z, np.array([0.0999999, 0.1]), tail=0.10)
    assert near[1] - near[0] < 1e-4
    assert np.all(np.diff(evt) >= 0)


def test_unusable_tails_fall_back_to_the_empirical_quantiles() -> None:
    z = _z(np.random.default_rng(3), 60)  # 6 exceedances at a 10% threshold
    assert fit_gpd_tail(z, 0.10, "lower") is None
    np.testing.assert_allclose(
        evt_standard_quantiles(z, np.array([0.01, 0.99])), fhs_standard_quantiles(z, np.array([0.01, 0.99]))
    )
    with pytest.raises(ConfigError, match="tail"):
        fit_gpd_tail(z, 0.7, "lower")


def test_rolling_windows_use_only_known_residuals() -> None:
    z = _z(np.random.default_rng(4), 300)
    known = np.array([10, 50, 50, 120, 300])
    levels = np.array([0.05, 0.5])
    out = rolling_standard_quantiles(z, known, levels, method="fhs", window=100, min_obs=50)
    assert np.isnan(out[0]).all()
    np.testing.assert_allclose(out[1], np.quantile(z[:50], levels))
    np.testing.assert_allclose(out[3], np.quantile(z[20:120], levels))
    np.testing.assert_allclose(out[4], np.quantile(z[200:300], levels))


def test_grid_quantile_and_cdf_invert_each_other() -> None:
    rng = np.random.default_rng(5)
    q = np.sort(rng.normal(size=(50, len(QUANTILES))), axis=1) * rng.uniform(0.5, 2, size=(50, 1))
    np.testing.assert_allclose(grid_quantile(q, np.tile(QUANTILES, (50, 1))), q, rtol=0, atol=1e-14)
    u = rng.uniform(1e-4, 1 - 1e-4, size=(50, 1))
    np.testing.assert_allclose(grid_cdf(q, grid_quantile(q, u)[:, 0]), u[:, 0], rtol=1e-9)
    extreme = grid_quantile(q, np.array([[-0.5, 1.5]] * 50))  # levels are clipped, never infinite
    np.testing.assert_allclose(extreme, grid_quantile(q, np.array([[LEVEL_FLOOR, 1 - LEVEL_FLOOR]] * 50)))
    assert np.isfinite(extreme).all()
