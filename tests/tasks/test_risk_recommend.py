"""The risk recommendation (passes first, QLIKE second), stress windows and reliability."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from core.schema import QUANTILE_COLUMNS, QUANTILES
from tasks.risk import RISK_COLUMNS
from tasks.risk_recommend import candidate_table, recommend_risk_model, risk_checks
from tasks.risk_stress import STRESS_WINDOWS, reliability, stress_backtests


def _risk_row(model: str, symbol: str, ok: bool = True, cov80: float = 0.80) -> dict:
    row: dict = {c: None for c in RISK_COLUMNS}
    p = 0.5 if ok else 0.001
    row |= {"model": model, "symbol": symbol, "n": 500, "cov80": cov80}
    for v in ("var95", "var99"):
        row |= {
            f"{v}_kupiec_p": p,
            f"{v}_cc_p": p,
            f"{v}_pass": ok,
            f"{v}_rate": 0.05 if v == "var95" else 0.01,
        }
    return row


def _risk(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=RISK_COLUMNS)


def _board(ratios: dict[str, float], symbols: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"model": m, "symbol": s, "qlike_ratio": r} for m, r in ratios.items() for s in symbols]
    )


SYMS = ["A", "B", "C"]


def test_checks_count_each_test_and_the_coverage_band() -> None:
    risk = _risk([_risk_row("m", "A"), _risk_row("m", "B", cov80=0.84), _risk_row("m", "C", ok=False)])
    checked = risk_checks(risk).sort("symbol")
    assert checked["checks_passed"].to_list() == [5, 4, 1]
    assert checked["passes"].to_list() == [True, False, False]


def test_passes_come_before_qlike() -> None:
    rows = [_risk_row("har+aci", s) for s in SYMS]  # passes everywhere, worse QLIKE
    rows += [_risk_row("prob_lstm", s, ok=s != "C") for s in SYMS]  # better QLIKE, fails on C
    choice = recommend_risk_model(_risk(rows), _board({"har": 1.0, "prob_lstm": 0.9}, SYMS))
    assert choice["model"] == "har+aci"
    assert choice["assets_passing"] == 3 and choice["n_assets"] == 3
    assert "Recommended for risk: `har+aci`" in choice["sentence"] and "3 of 3" in choice["sentence"]


def test_equal_passes_are_broken_by_the_raw_models_qlike() -> None:
    rows = [_risk_row(m, s) for m in ("har+aci", "prob_lstm+aci", "garch") for s in SYMS]
    board = _board({"har": 1.0, "prob_lstm": 0.95, "garch": 1.3}, SYMS)
    table = candidate_table(_risk(rows), board)
    assert table["model"].to_list() == ["prob_lstm+aci", "har+aci", "garch"]
    assert table["qlike_ratio"].to_list() == pytest.approx([0.95, 1.0, 1.3])


def test_an_ensemble_that_falls_back_fails_where_it_is_not_served() -> None:
    rows = [_risk_row(m, s) for m in ("ensemble+aci", "har+aci") for s in SYMS]
    board = _board({"ensemble": 0.9, "har": 1.0}, SYMS)
    assert recommend_risk_model(_risk(rows), board)["model"] == "ensemble+aci"
    choice = recommend_risk_model(_risk(rows), board, not_served={"B": "har"})
    assert choice["model"] == "har+aci"
    ens = [c for c in choice["candidates"] if c["model"] == "ensemble+aci"][0]
    assert ens["assets_passing"] == 2


def test_an_asset_without_rows_counts_as_failing() -> None:
    rows = [_risk_row("har+aci", s) for s in ("A", "B")] + [_risk_row("garch", s, ok=False) for s in SYMS]
    choice = recommend_risk_model(_risk(rows), _board({"har": 1.0, "garch": 1.2}, SYMS))
    assert choice["model"] == "har+aci" and choice["assets_passing"] == 2 and choice["n_assets"] == 3
    assert choice["failing_assets"] == ["C"]


def test_nothing_passing_says_so_and_names_the_closest() -> None:
    rows = [_risk_row("har", s, ok=False) for s in SYMS] + [
        _risk_row("garch", s, ok=False, cov80=0.9) for s in SYMS
    ]
    choice = recommend_risk_model(_risk(rows), _board({"har": 1.0, "garch": 1.2}, SYMS))
    assert choice["model"] == "har" and choice["assets_passing"] == 0
    assert choice["sentence"].startswith("No model passes every risk backtest")
    assert choice["failing_assets"] == SYMS


def _scored(first: date, n: int, scale: float = 1.0) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    days = [first + timedelta(days=i) for i in range(n)]
    ret = 0.01 * scale * rng.standard_normal(n)
    q = {
        c: np.full(n, 0.01 * float(np.quantile(rng.standard_normal(20000), lv)))
        for c, lv in zip(QUANTILE_COLUMNS, QUANTILES, strict=True)
    }
    return pl.DataFrame(
        {"model": "har", "symbol": "A", "origin": days, "target": days, "mean": 0.0, "variance": 1e-4, **q,
         "family": "quantile", "params": None, "ret": ret}
    )  # fmt: skip


def test_stress_windows_backtest_only_the_rows_inside_them() -> None:
    frame = pl.concat([_scored(date(2007, 6, 1), 700), _scored(date(2020, 1, 1), 200, scale=3.0)])
    stress = stress_backtests(frame)
    assert sorted(stress["window"].unique().to_list()) == sorted(STRESS_WINDOWS)
    n = dict(zip(stress["window"], stress["n"], strict=True))
    assert n["March 2020"] == 31 and n["2008 crisis"] == 366
    march = stress.filter(pl.col("window") == "March 2020").row(0, named=True)
    assert march["var99_rate"] > 0.05  # triple volatility against a fixed VaR


def test_stress_windows_without_enough_rows_are_left_out() -> None:
    frame = _scored(date(2020, 3, 20), 40)  # 12 days of March 2020
    assert stress_backtests(frame).height == 0
    assert stress_backtests(frame, min_rows=10).height == 1
    assert set(stress_backtests(_scored(date(2015, 1, 1), 50)).columns) == {"window", *RISK_COLUMNS}


def test_reliability_is_the_share_below_each_quantile() -> None:
    frame = _scored(date(2015, 1, 1), 4000)
    rel = reliability(frame)
    assert rel.height == len(QUANTILES)
    assert rel["n"].to_list() == [4000] * len(QUANTILES)
    np.testing.assert_allclose(rel["observed"].to_numpy(), np.asarray(QUANTILES), atol=0.02)
    hand = float((frame["ret"] <= frame["q05"]).mean())
    assert rel.filter(pl.col("level") == 0.05)["observed"][0] == pytest.approx(hand)
