"""Realized series built from the shipped bar files through the project's own features code."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from repo_paths import SAMPLES, TESTS

from tasks.calendars import sessions_between
from tasks.shipped_realized import (
    SHIPPED_SERIES,
    daily_to_realized,
    panel_csv,
    shipped_realized_panel,
)
from tasks.sources.realized import read_realized_file

BUNDLED = {"SPY_RV", "EURUSD_RV", "BTC_RV", "SPY_RV5M"}
SHARED_ONLY = {"EURUSD_RV5M", "BTCPERP_RV5M"}
SHARED_DAILY = {"GSPC_GK", "IXIC_GK", "BTC_GK"}


@pytest.fixture(scope="module")
def bundled_panel() -> tuple[pl.DataFrame, list[str]]:
    panel, built, notes = shipped_realized_panel({"samples": SAMPLES, "shared": None})
    assert {s.symbol for s in built} == BUNDLED
    return panel, notes


def test_the_bundled_bars_give_the_expected_symbols_and_spans(
    bundled_panel: tuple[pl.DataFrame, list[str]],
) -> None:
    panel, notes = bundled_panel
    spans = {r[0]: (r[1], r[2], r[3]) for r in panel.group_by("symbol").agg(
        pl.col("date").min(), pl.col("date").max().alias("last"), pl.len()).iter_rows()}  # fmt: skip
    assert set(spans) == BUNDLED
    assert spans["SPY_RV"][0] == date(1998, 1, 2) and spans["SPY_RV"][2] > 5500
    assert spans["EURUSD_RV"][0].year == 2007 and spans["EURUSD_RV"][1].year == 2018
    assert spans["BTC_RV"][0].year == 2017 and spans["BTC_RV"][1] <= date(2024, 4, 21)
    assert spans["SPY_RV5M"][0] == date(2011, 1, 3) and spans["SPY_RV5M"][1] == date(2011, 3, 31)
    jan_mar = sessions_between("XNYS", date(2011, 1, 1), date(2011, 1, 31)) + sessions_between(
        "XNYS", date(2011, 3, 1), date(2011, 3, 31)
    )
    assert spans["SPY_RV5M"][2] == len(jan_mar) == 43  # every session of January and March 2011
    assert sorted(n.split(":")[0] for n in notes) == sorted(SHARED_ONLY | SHARED_DAILY)  # said, not dropped


def test_the_measures_hold_their_identities(bundled_panel: tuple[pl.DataFrame, list[str]]) -> None:
    panel, _ = bundled_panel
    assert (panel["rv"] > 0).all()
    gap = (panel["rs_pos"] + panel["rs_neg"] - panel["rv"]).abs() / panel["rv"]
    assert gap.max() < 1e-9  # type: ignore[operator]
    five_min = panel.filter(pl.col("symbol") == "SPY_RV5M")
    assert five_min["nobs"].median() == 78  # 6.5 hours of 5-minute returns


def test_the_hourly_spy_series_matches_the_bundled_oxfordman_fixture(
    bundled_panel: tuple[pl.DataFrame, list[str]],
) -> None:
    """tests/data/realized/panel_oxfordman.csv.gz was built from the same bars by the same code."""
    panel, _ = bundled_panel
    fixture = read_realized_file(TESTS / "data" / "realized" / "panel_oxfordman.csv.gz").realized
    ours = panel.filter(pl.col("symbol") == "SPY_RV").select("date", "rv", "rs_neg")
    theirs = fixture.filter(pl.col("symbol") == "SPY_RV").select("date", pl.col("rv").alias("rv_f"), "bv")
    both = ours.join(theirs, on="date")
    assert both.height == ours.height == theirs.height
    assert (both["rv"] / both["rv_f"] - 1).abs().max() < 1e-8  # type: ignore[operator]


def test_the_panel_file_round_trips_through_the_realized_importer(
    bundled_panel: tuple[pl.DataFrame, list[str]], tmp_path: Path
) -> None:
    panel, _ = bundled_panel
    path = tmp_path / "shipped.csv"
    path.write_text(panel_csv(panel))
    parsed = read_realized_file(path)  # units: decimal variances and log returns, or a DataError
    assert parsed.layout == "simple" and parsed.quarantine.height == 0
    assert parsed.symbols == sorted(BUNDLED)
    got = parsed.realized.sort("symbol", "date")
    assert got["rq"].to_numpy() == pytest.approx(panel["rq"].to_numpy(), rel=1e-8)
    assert got["nobs"].to_list() == panel["nobs"].to_list()


def test_low_coverage_and_zero_rv_sessions_are_left_out() -> None:
    daily = pl.DataFrame({
        "session_date": [date(2020, 1, 2), date(2020, 1, 3), date(2020, 1, 6)],
        "low_coverage": [False, True, False], "rv": [1e-4, 2e-4, 0.0], "bv": [1e-4] * 3, "rq": [1e-8] * 3,
        "rs_pos": [5e-5] * 3, "rs_neg": [5e-5] * 3, "ret_cc": [0.01, None, 0.0], "ret_oc": [0.01] * 3,
        "close": [100.0] * 3, "n_returns": [78] * 3,
    })  # fmt: skip
    rows = daily_to_realized(daily, "X_RV")
    assert rows["date"].to_list() == [date(2020, 1, 2)]
    assert rows.columns[:8] == ["date", "symbol", "rv", "bv", "rq", "rs_pos", "rs_neg", "ret"]


def test_the_shared_data_adds_the_one_minute_series(shared_data: Path) -> None:
    wanted = [s for s in SHIPPED_SERIES if s.symbol in SHARED_ONLY]
    panel, built, notes = shipped_realized_panel({"samples": SAMPLES, "shared": shared_data}, wanted)
    assert {s.symbol for s in built} == SHARED_ONLY and notes == []
    eur = panel.filter(pl.col("symbol") == "EURUSD_RV5M")
    # 2017-01-02 is left out: the file starts 2017-01-02 02:00, late in that FX session (low coverage).
    assert eur["date"].to_list() == sessions_between("fx", date(2017, 1, 3), date(2017, 6, 30))
    assert eur["nobs"].median() == 288  # 24 hours of 5-minute returns
    btc = panel.filter(pl.col("symbol") == "BTCPERP_RV5M")
    assert btc["date"].min() == date(2022, 1, 1) and btc["date"].max() == date(2022, 1, 31)
