"""The synthetic realized panel: its common factor, its HAR truth, its measures and its files."""

from __future__ import annotations

import math
from datetime import date
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from tasks.calendars import sessions_between
from tasks.realized_features import realized_daily_features
from tasks.sources.realized import read_realized_file
from tasks.synthetic_panel import (
    PanelParams,
    PanelSymbol,
    default_symbols,
    har_ar_coefficients,
    oxfordman_csv,
    realized_rows,
    simple_csv,
    simulate_panel,
)

FIRST, LAST = date(2011, 1, 1), date(2021, 12, 31)
NUMERIC = ("rv", "bv", "rq", "rs_pos", "rs_neg", "ret")


def _mean_pairwise_log_rv_corr(panel: pl.DataFrame) -> float:
    """Mean correlation of log RV over every pair of symbols, on the dates both have."""
    wide = panel.select("date", "symbol", pl.col("rv").log()).pivot("symbol", index="date", values="rv")
    names = [c for c in wide.columns if c != "date"]
    corrs = []
    for a, b in combinations(names, 2):
        both = wide.select(a, b).drop_nulls()
        corrs.append(float(np.corrcoef(both[a].to_numpy(), both[b].to_numpy())[0, 1]))
    return float(np.mean(corrs))


def _har_ols(log_rv: np.ndarray) -> np.ndarray:
    """OLS of log RV_t on (1, log RV_{t-1}, its 5- and 22-session means): (const, b_d, b_w, b_m)."""
    x = pl.Series(log_rv)
    lags = pl.DataFrame({
        "d": x.shift(1), "w": x.shift(1).rolling_mean(5), "m": x.shift(1).rolling_mean(22), "y": x,
    }).drop_nulls()  # fmt: skip
    design = np.column_stack([np.ones(lags.height), lags["d"], lags["w"], lags["m"]])
    coef, *_ = np.linalg.lstsq(design, lags["y"].to_numpy(), rcond=None)
    return np.asarray(coef)


def _specs(loading: float) -> list[PanelSymbol]:
    return [
        PanelSymbol(f"S{i}", cal, 0.18, loading) for i, cal in enumerate(("XNYS", "XLON", "XFRA", "24x7"))
    ]


def test_the_common_factor_makes_log_rv_correlate_across_symbols_and_only_with_a_loading() -> None:
    with_factor = _mean_pairwise_log_rv_corr(simulate_panel(_specs(1.0), FIRST, LAST, seed=1))
    without = _mean_pairwise_log_rv_corr(simulate_panel(_specs(0.0), FIRST, LAST, seed=1))
    assert with_factor > 0.4
    assert abs(without) < 0.1


def test_ols_recovers_the_har_coefficients_of_a_symbol_without_the_factor() -> None:
    params = PanelParams(har=(0.40, 0.30, 0.20))
    panel = simulate_panel([PanelSymbol("A", "24x7", loading=0.0)], date(2000, 1, 1), LAST, params, seed=3)
    const, b_d, b_w, b_m = _har_ols(np.log(panel["rv"].to_numpy()))
    assert b_d == pytest.approx(0.40, abs=0.05)
    assert b_w == pytest.approx(0.30, abs=0.08)
    assert b_m == pytest.approx(0.20, abs=0.08)
    assert b_d + b_w + b_m == pytest.approx(0.90, abs=0.02)
    mu = math.log(0.18**2 / 252)
    assert const / (1 - b_d - b_w - b_m) == pytest.approx(mu, abs=0.15)  # the mean log RV is mu


def test_with_the_factor_the_har_persistence_is_still_recovered_roughly() -> None:
    panel = simulate_panel([PanelSymbol("A", "XNYS", loading=1.0)], date(2000, 1, 1), LAST, seed=4)
    _, b_d, b_w, b_m = _har_ols(np.log(panel["rv"].to_numpy()))
    # The omitted AR(1) factor adds persistence the three HAR lags absorb: a small upward bias.
    assert sum(PanelParams().har) <= b_d + b_w + b_m < sum(PanelParams().har) + 0.08


def test_har_ar_coefficients_spread_the_weekly_and_monthly_means_over_their_lags() -> None:
    coef = har_ar_coefficients((0.3, 0.5, 0.22))
    assert coef.shape == (22,)
    assert coef[0] == pytest.approx(0.3 + 0.1 + 0.01)
    assert coef[1:5] == pytest.approx([0.11] * 4)
    assert coef[5:] == pytest.approx([0.01] * 17)
    assert coef.sum() == pytest.approx(1.02)


def test_the_measures_are_drawn_consistently_around_rv() -> None:
    panel = simulate_panel(default_symbols(3), FIRST, LAST, seed=5)
    rv = panel["rv"].to_numpy()
    assert np.allclose(panel["rs_pos"].to_numpy() + panel["rs_neg"].to_numpy(), rv, rtol=1e-12)
    assert (panel["rs_pos"] > 0).all() and (panel["rs_neg"] > 0).all()
    assert 0.8 < (panel["bv"] <= panel["rv"]).mean() < 0.99  # type: ignore[operator]
    kurt = panel["rq"].to_numpy() / rv**2
    # log(rq / rv^2) = rq_log_mean + rq_log_sd * N(0, 1), plus 2 J on jump days (they lift the median)
    assert float(np.median(np.log(kurt))) == pytest.approx(PanelParams().rq_log_mean, abs=0.05)
    assert kurt.min() > np.exp(PanelParams().rq_log_mean - 6 * PanelParams().rq_log_sd)
    assert panel["rv"].mean() / (panel["ret"] ** 2).mean() == pytest.approx(1.0, abs=0.15)  # type: ignore[operator]
    down = panel.filter(pl.col("ret") < 0)
    assert (down["rs_neg"] / down["rv"]).mean() > 0.55  # type: ignore[operator]
    assert panel["close_price"].to_numpy() == pytest.approx(
        panel["open_price"].to_numpy() * np.exp(panel["ret"].to_numpy())
    )


def test_a_leverage_raises_log_rv_after_down_days() -> None:
    panel = simulate_panel([PanelSymbol("A", "24x7", loading=0.0)], date(2000, 1, 1), LAST, seed=6)
    log_rv = np.log(panel["rv"].to_numpy())
    z = panel["ret"].to_numpy() / np.sqrt(panel["rv"].to_numpy())
    change = log_rv[1:] - log_rv[:-1]
    assert change[z[:-1] < -1.5].mean() - change[z[:-1] > 1.5].mean() > 0.1


def test_every_row_is_a_session_of_its_calendar() -> None:
    specs = [*default_symbols(4), PanelSymbol("C", "24x7"), PanelSymbol("F", "fx")]
    panel = simulate_panel(specs, date(2020, 1, 1), date(2020, 12, 31), seed=7)
    for spec in specs:
        rows = panel.filter(pl.col("symbol") == spec.symbol)
        assert rows["date"].to_list() == sessions_between(spec.calendar, date(2020, 1, 1), date(2020, 12, 31))
        realized = rows.select("symbol", "date", "rv", "bv", "ret").with_columns(
            pl.lit("simple").alias("source")
        )
        feats, off = realized_daily_features(realized, spec.calendar)
        assert off == [] and feats.height == rows.height


def test_the_generic_layout_round_trips_through_the_realized_importer(tmp_path: Path) -> None:
    panel = simulate_panel(default_symbols(3), date(2019, 1, 1), date(2020, 12, 31), seed=8)
    path = tmp_path / "panel.csv"
    path.write_text(simple_csv(panel))
    parsed = read_realized_file(path)  # the unit check runs here
    assert parsed.layout == "simple" and parsed.quarantine.height == 0 and parsed.notes == []
    got = parsed.realized.sort("symbol", "date")
    assert got["date"].to_list() == panel["date"].to_list()
    assert got["symbol"].to_list() == panel["symbol"].to_list()
    for col in NUMERIC:
        assert got[col].to_numpy() == pytest.approx(panel[col].to_numpy(), rel=1e-9), col
    direct = realized_rows(panel)  # what tests that skip the file get: the same rows
    assert direct.columns == got.columns and direct.drop(*NUMERIC).equals(got.drop(*NUMERIC))


def test_the_oxfordman_layout_round_trips_with_local_dates(tmp_path: Path) -> None:
    panel = simulate_panel(default_symbols(4), date(2020, 3, 1), date(2020, 11, 30), seed=9)
    text = oxfordman_csv(panel)
    assert text.splitlines()[0].startswith(",Symbol,rv5,")
    tokyo = next(line for line in text.splitlines() if line.startswith("2020-03-02") and "SYN_04" in line)
    assert tokyo.startswith("2020-03-02 00:00:00+09:00,SYN_04,")  # XTKS: the offset of its zone
    path = tmp_path / "panel.csv"
    path.write_text(text)
    parsed = read_realized_file(path)
    assert parsed.layout == "oxfordman" and parsed.quarantine.height == 0
    got = parsed.realized.sort("symbol", "date")
    assert got["date"].to_list() == panel["date"].to_list()
    assert got["rs_pos"].to_numpy() == pytest.approx(panel["rs_pos"].to_numpy(), rel=1e-8)
    assert got["ret_oc"].to_numpy() == pytest.approx(panel["ret"].to_numpy(), rel=1e-9)
    assert got["rq"].is_null().all()  # the Oxford-Man layout has no quarticity


def test_percent_squared_units_of_the_same_panel_are_refused(tmp_path: Path) -> None:
    panel = simulate_panel(default_symbols(1), date(2020, 1, 1), date(2020, 12, 31), seed=10)
    scaled = panel.with_columns([(pl.col(c) * 1e4) for c in ("rv", "bv", "rs_pos", "rs_neg")])
    path = tmp_path / "pct.csv"
    path.write_text(simple_csv(scaled))
    with pytest.raises(DataError, match="percent squared"):
        read_realized_file(path)


def test_the_same_seed_gives_the_same_text_and_symbols_do_not_disturb_each_other() -> None:
    specs = default_symbols(3)
    a = simulate_panel(specs, date(2020, 1, 1), date(2020, 12, 31), seed=11)
    b = simulate_panel(specs, date(2020, 1, 1), date(2020, 12, 31), seed=11)
    assert simple_csv(a) == simple_csv(b) and oxfordman_csv(a) == oxfordman_csv(b)
    other = simulate_panel(specs, date(2020, 1, 1), date(2020, 12, 31), seed=12)
    assert simple_csv(other) != simple_csv(a)
    alone = simulate_panel(specs[:1], date(2020, 1, 1), date(2020, 12, 31), seed=11)
    assert alone.equals(a.filter(pl.col("symbol") == specs[0].symbol))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": PanelParams(har=(0.5, 0.4, 0.2))}, "har"),
        ({"params": PanelParams(t_df=2.0)}, "t_df"),
        ({"symbols": [PanelSymbol("A", "XNYS"), PanelSymbol("A", "XLON")]}, "distinct"),
        ({"symbols": [PanelSymbol("A", "NOPE")]}, "calendar"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"symbols": default_symbols(1), "first": FIRST, "last": LAST, **kwargs}
    with pytest.raises(ConfigError, match=message):
        simulate_panel(**args)  # type: ignore[arg-type]
