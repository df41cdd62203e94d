"""The standardized Jones-Faddy skew-t family (tasks/models/families.py: ``skew_t``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate, stats

from core.errors import ConfigError, DataError
from core.schema import QUANTILES
from tasks.models.families import SkewT, StudentT, family_names, get_family


def _density(fam: SkewT) -> Callable[[float], float]:
    a, b = fam.a, fam.b
    assert a is not None and b is not None
    mu, sd = SkewT.moments(a, b)
    return lambda z: float(sd * stats.jf_skew_t.pdf(mu + sd * z, a, b))


@pytest.mark.parametrize(("a", "b"), [(2.0, 5.0), (6.0, 2.5), (3.0, 3.0)])
def test_standardized_skew_t_has_mean_zero_and_unit_variance(a: float, b: float) -> None:
    f = _density(SkewT(a=a, b=b))
    mass = integrate.quad(f, -np.inf, np.inf)[0]
    mean = integrate.quad(lambda z: z * f(z), -np.inf, np.inf)[0]
    var = integrate.quad(lambda z: z * z * f(z), -np.inf, np.inf, limit=200)[0]
    assert mass == pytest.approx(1.0, abs=1e-7)
    assert mean == pytest.approx(0.0, abs=1e-7)
    assert var == pytest.approx(1.0, abs=1e-6)


def test_quantiles_are_monotone_and_skewed_the_right_way() -> None:
    left = SkewT(a=2.0, b=6.0)
    q = left.standard_quantiles()
    assert np.all(np.diff(q) > 0)
    assert -q[0] > q[-1]  # a < b: the lower tail is the heavier one
    u = np.linspace(1e-4, 1 - 1e-4, 2001)
    assert np.all(np.diff(left.standard_ppf(u)) > 0)
    np.testing.assert_allclose(left.standard_cdf(left.standard_ppf(u)), u, rtol=1e-9, atol=1e-12)
    r = left.quantiles(np.array([0.0, 0.01]), np.array([1e-4, 4e-4]))
    assert r.shape == (2, len(QUANTILES)) and np.all(np.diff(r, axis=1) > 0)


def test_equal_shapes_are_the_standardized_student_t() -> None:
    nu = 7.0
    np.testing.assert_allclose(
        SkewT(a=nu / 2, b=nu / 2).standard_quantiles(),
        StudentT(df=nu).standard_quantiles(),
        rtol=1e-9,
        atol=1e-12,
    )


def test_maximum_likelihood_recovers_a_known_skew() -> None:
    true = SkewT(a=2.5, b=6.0)
    z = true.standard_ppf(np.random.default_rng(0).random(8000))
    fit = SkewT().fit(z)
    assert fit.a is not None and fit.b is not None
    assert fit.a < fit.b  # the skew's sign
    assert fit.a == pytest.approx(2.5, rel=0.25) and fit.b == pytest.approx(6.0, rel=0.35)
    tq, fq = true.standard_quantiles(), fit.standard_quantiles()
    np.testing.assert_allclose(fq, tq, atol=0.08)
    sym = SkewT().fit(np.random.default_rng(1).standard_t(5, size=8000) / math.sqrt(5 / 3))
    assert sym.a == pytest.approx(sym.b, rel=0.2)  # no skew in, none out


def test_expected_shortfall_matches_the_quantile_integral_and_student_t() -> None:
    fam = SkewT(a=2.0, b=5.0)
    for alpha in (0.01, 0.025):
        by_ppf = integrate.quad(lambda u: float(fam.standard_ppf(u)), 0.0, alpha, limit=200)[0] / alpha
        assert fam.standard_es(alpha) == pytest.approx(by_ppf, rel=1e-5)
    nu = 6.0
    t_es = float(
        stats.t.expect(lambda x: x, args=(nu,), ub=stats.t.ppf(0.025, nu), conditional=True)
    ) * math.sqrt((nu - 2) / nu)
    assert SkewT(a=3.0, b=3.0).standard_es(0.025) == pytest.approx(t_es, rel=1e-6)


def test_registry_and_bad_arguments() -> None:
    assert "skew_t" in family_names()
    fam = get_family("skew_t", a=3.0, b=4.0)
    assert isinstance(fam, SkewT) and fam.params() == {"a": 3.0, "b": 4.0}
    with pytest.raises(ConfigError, match="both"):
        SkewT(a=3.0)
    with pytest.raises(ConfigError, match="> 1"):
        SkewT(a=0.9, b=3.0)
    with pytest.raises(ConfigError, match="shapes"):
        SkewT().standard_quantiles()
    with pytest.raises(DataError, match="at least"):
        SkewT().fit(np.zeros(5))


def test_the_risk_module_reads_the_skew_t_tail() -> None:
    """tasks.risk's family ES and quantile function give skew_t's own (left tail of a left-skewed t is
    heavier than its mirror image's)."""
    from tasks.risk import _family_ppf, family_standard_es

    left, right = SkewT(a=2.0, b=6.0), SkewT(a=6.0, b=2.0)
    u = np.array([0.01, 0.05, 0.5])
    assert _family_ppf(left, u) == pytest.approx(left.standard_ppf(u), rel=1e-12)
    es = family_standard_es(left, 0.025)
    assert es == pytest.approx(left.standard_es(0.025), rel=1e-12)
    assert es < float(left.standard_ppf(np.array([0.025]))[0]) < 0
    assert es < family_standard_es(right, 0.025)
