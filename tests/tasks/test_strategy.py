"""Strategy backtest: the research rule, timing, costs, Sharpe and its HAC error (tasks/strategy.py)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from tasks.strategy import (
    METRIC_COLUMNS,
    annual_periods,
    compare_strategies,
    max_drawdown,
    positions,
    sharpe_hac,
    strategy_backtest,
)


def _frame(
    q50: np.ndarray,
    band: np.ndarray,
    ret: np.ndarray,
    *,
    model: str = "m",
    symbol: str = "SPY",
    asset_class: str = "equity",
) -> pl.DataFrame:
    n = len(q50)
    origins = [date(2025, 1, 1) + timedelta(days=i) for i in range(n)]
    return pl.DataFrame(
        {
            "model": model,
            "symbol": symbol,
            "origin": origins,
            "target": [d + timedelta(days=1) for d in origins],
            "horizon": 1,
            "q10": np.asarray(q50) - np.asarray(band) / 2,
            "q50": np.asarray(q50, dtype=float),
            "q90": np.asarray(q50) + np.asarray(band) / 2,
            "ret": np.asarray(ret, dtype=float),
            "asset_class": asset_class,
        }
    )


def test_annual_periods() -> None:
    assert annual_periods("crypto") == 365
    assert annual_periods("fx") == annual_periods("equity") == annual_periods("commodity") == 252


def test_rule_with_fixed_threshold() -> None:
    q50 = np.array([0.01, -0.01, 0.01, -0.01, 0.0, 0.01])
    band = np.array([0.02, 0.02, 0.05, 0.05, 0.02, 0.03])
    pos, thr = positions(q50, band, threshold=0.03)
    # long, short, flat (too wide), flat (too wide), flat (q50 == 0), long (band == threshold)
    assert pos.tolist() == [1, -1, 0, 0, 0, 1]
    assert np.all(thr == 0.03)


def test_trailing_threshold_has_no_lookahead() -> None:
    rng = np.random.default_rng(0)
    band = rng.uniform(0.01, 0.02, 100)
    q50 = np.full(100, 0.001)
    pos, thr = positions(q50, band, k=1.5, lookback=63, min_history=20)
    assert np.all(pos[:20] == 0) and np.all(np.isnan(thr[:20]))
    assert thr[70] == pytest.approx(1.5 * np.median(band[7:70]))
    assert thr[20] == pytest.approx(1.5 * np.median(band[:20]))
    # Changing the future does not change the past.
    band2 = band.copy()
    band2[80:] *= 10
    pos2, thr2 = positions(q50, band2, k=1.5, lookback=63, min_history=20)
    assert (
        np.array_equal(pos[:80], pos2[:80])
        and pos2[80] == 0
        and np.allclose(thr[:81], thr2[:81], equal_nan=True)
    )
    # A band wider than k x the trailing median is flat.
    band3 = band.copy()
    band3[50] = 0.05
    pos3, _ = positions(q50, band3)
    assert pos3[50] == 0 and pos3[49] == 1


def test_decide_at_t_trade_t_plus_1() -> None:
    # Returns of the TARGET sessions alternate; q50 of origin t forecasts the sign of ret(t+1) exactly.
    ret = np.tile([0.01, -0.01], 20)
    f = _frame(np.sign(ret) * 0.001, np.full(40, 0.01), ret)
    metrics, curve = strategy_backtest(f, cost_bps=0.0, threshold=1.0)
    assert curve["gross"].to_list() == pytest.approx(np.abs(ret).tolist())
    assert metrics["hit_rate"] == 1.0 and metrics["total_return"] > 0
    # Holding the same positions one session later (trading at t+2) would lose every period.
    late = curve["position"].to_numpy()[:-1] * ret[1:]
    assert np.all(late < 0)
    # And pairing the decision with the ORIGIN's return (look-ahead-free but mis-aligned) changes the answer.
    shifted = f.with_columns(pl.col("ret").shift(1))
    m_shift, _ = strategy_backtest(shifted, cost_bps=0.0, threshold=1.0)
    assert m_shift["total_return"] < 0 < metrics["total_return"]


def test_costs_reduce_returns_by_cost_times_turnover() -> None:
    rng = np.random.default_rng(1)
    n = 200
    f = _frame(rng.normal(0, 0.01, n), rng.uniform(0.01, 0.03, n), rng.normal(0, 0.01, n))
    m0, c0 = strategy_backtest(f, cost_bps=0.0, threshold=0.025)
    m1, c1 = strategy_backtest(f, cost_bps=10.0, threshold=0.025)
    turnover = np.abs(np.diff(np.r_[0.0, c0["position"].to_numpy()]))
    assert np.allclose(c0["net"].to_numpy() - c1["net"].to_numpy(), 10e-4 * turnover, atol=1e-15)
    assert m0["turnover"] == pytest.approx(turnover.mean())
    log_ann = np.log1p([m0["ann_return"], m1["ann_return"]])  # annualised mean log return
    assert log_ann[0] - log_ann[1] == pytest.approx(10e-4 * turnover.mean() * 252)
    assert m1["n_trades"] == int(np.sum(turnover > 0))


def test_annual_return_is_geometric_and_agrees_with_total_return() -> None:
    """A -59% total over 640 sessions annualises to (0.41)^(252/640) - 1 = -29.6%, never below -100%.

    The old arithmetic ``mean(log r) * 252`` gave -1.009 beside a total of -0.59 (issue 14).
    """
    n = 640
    ret = np.full(n, math.log(0.41) / n)  # equity ends at exactly 0.41
    f = _frame(np.full(n, 0.001), np.full(n, 0.01), ret)  # always long, no costs
    m, _ = strategy_backtest(f, cost_bps=0.0, threshold=1.0)
    assert m["exposure"] == 1.0 and m["total_return"] == pytest.approx(-0.59)
    assert m["ann_return"] == pytest.approx(0.41 ** (252 / n) - 1)  # -0.296
    assert -1.0 < m["ann_return"] < 0
    # A crash larger than -100% per year in log terms still annualises above -100%.
    crash = _frame(np.full(50, 0.001), np.full(50, 0.01), np.full(50, -0.05))
    mc, _ = strategy_backtest(crash, cost_bps=0.0, threshold=1.0)
    assert -1.0 < mc["ann_return"] < mc["total_return"] < 0


def test_sharpe_of_known_series() -> None:
    r = np.array([0.01, -0.005, 0.02, 0.0, 0.015])
    mu, sd = 0.008, math.sqrt(np.sum((r - 0.008) ** 2) / 4)  # sd = 0.0097468
    out = sharpe_hac(r, periods=252, nlags=0)
    assert out["sharpe"] == pytest.approx(mu / sd * math.sqrt(252))
    sr_pop = mu / math.sqrt(np.mean((r - mu) ** 2))
    assert out["se_iid"] == pytest.approx(math.sqrt((1 + sr_pop**2 / 2) / 5 * 252))
    flat = sharpe_hac(np.zeros(10))
    assert math.isnan(flat["sharpe"])


def test_hac_se_near_iid_for_iid_normal_and_larger_when_autocorrelated() -> None:
    rng = np.random.default_rng(7)
    iid = rng.normal(0.05, 1.0, 5000)
    out = sharpe_hac(iid, periods=1)
    assert out["se_hac"] == pytest.approx(out["se_iid"], rel=0.15)
    e = rng.normal(0, 1, 5000)
    ar = np.empty(5000)
    ar[0] = e[0]
    for t in range(1, 5000):
        ar[t] = 0.5 * ar[t - 1] + e[t]
    out_ar = sharpe_hac(ar + 0.05, periods=1)
    assert out_ar["se_hac"] > 1.3 * out_ar["se_iid"]


def test_max_drawdown() -> None:
    assert max_drawdown(np.array([1.1, 0.99, 1.2])) == pytest.approx(0.99 / 1.1 - 1)
    assert max_drawdown(np.array([0.9, 1.0])) == pytest.approx(-0.1)
    assert max_drawdown(np.array([1.0, 1.1])) == 0.0


def test_compare_strategies_side_by_side() -> None:
    rng = np.random.default_rng(3)
    n = 150
    ret = rng.normal(0, 0.02, n)
    a = _frame(
        rng.normal(0, 0.01, n), np.full(n, 0.02), ret, model="a", symbol="BTC-USDT", asset_class="crypto"
    )
    b = _frame(
        -rng.normal(0, 0.01, n), np.full(n, 0.02), ret, model="b", symbol="BTC-USDT", asset_class="crypto"
    )
    c = _frame(rng.normal(0, 0.01, n), np.full(n, 0.02), ret, model="a", symbol="SPY")
    metrics, equity = compare_strategies(pl.concat([b, c, a]), cost_bps=2.0)
    assert metrics.columns == list(METRIC_COLUMNS)
    assert metrics.select("model", "symbol").rows() == [("a", "BTC-USDT"), ("a", "SPY"), ("b", "BTC-USDT")]
    assert metrics["periods_per_year"].to_list() == [365, 252, 365]
    assert equity.height == 3 * n
    # Trailing default: flat for the first 20 origins, then constant bands are never "too wide".
    first = equity.filter((pl.col("model") == "a") & (pl.col("symbol") == "SPY"))
    assert first["position"][:20].abs().sum() == 0 and first["position"][20:].abs().min() == 1
    with pytest.raises(Exception, match="horizon"):
        compare_strategies(pl.concat([a, a.with_columns(pl.lit(2).alias("horizon"))]))
