"""A realized-measure user's path: Oxford-Man-layout file -> ingest -> features -> evaluation -> report.

The panel (tests/data/realized/panel_oxfordman.csv.gz, built by make_panel.py from the bundled bars)
holds SPY_RV, EURUSD_RV and BTC_RV; these symbols have no bars, so their features and forecast
targets come from the imported measures.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from repo_paths import TESTS

from core.errors import ConfigError
from warehouse.catalog import Instrument, upsert_instrument
from warehouse.db import session, writer
from warehouse.features import read_features

PANEL = TESTS / "data" / "realized" / "panel_oxfordman.csv.gz"
CALENDARS = {"SPY_RV": ("equity_index", "XNYS"), "EURUSD_RV": ("fx", "fx"), "BTC_RV": ("crypto", "24x7")}


def _ingest(wh: Path) -> None:
    from flows.ingest_flow import ingest_flow

    with writer(wh) as con:  # what `volrisk instruments set` does: these symbols are not known codes
        for s in CALENDARS:
            upsert_instrument(con, Instrument(s, *CALENDARS[s]))
    out = ingest_flow(symbols=[], source="realized", paths=[str(PANEL)], warehouse=str(wh))
    assert out and all(r["status"] == "success" for r in out), out


@pytest.fixture(scope="module")
def realized_wh(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    from flows.features_flow import features_flow

    wh = tmp_path_factory.mktemp("realized") / "wh.duckdb"
    _ingest(wh)
    out = features_flow(symbols=["SPY_RV", "EURUSD_RV"], start=date(2010, 1, 1), warehouse=str(wh))
    assert out["failed"] == [], out["failed"]
    assert all(c["passed"] for c in out["feature_checks"]), out["feature_checks"]
    return wh


def test_features_of_realized_only_symbols_come_from_the_imported_measures(realized_wh: Path) -> None:
    with session(realized_wh, read_only=True) as con:
        feats = read_features(con, ["SPY_RV"])
    raw = pl.read_csv(PANEL).filter(pl.col("Symbol") == "SPY_RV")
    assert (feats["interval"] == "realized").all()
    assert (feats["sampling_interval"] == "realized:oxfordman").all()
    assert feats["session_date"].min() == date(2010, 1, 4)
    day = feats.filter(pl.col("session_date") == date(2015, 6, 1)).row(0, named=True)
    src = raw.filter(pl.col("").str.starts_with("2015-06-01")).row(0, named=True)
    assert day["rv"] == pytest.approx(src["rv5"]) and day["bv"] == pytest.approx(src["bv"])
    assert day["rs_neg"] == pytest.approx(src["rsv"])
    assert day["ret_oc"] == pytest.approx(src["open_to_close"])
    prev = raw.filter(pl.col("").str.starts_with("2015-05-29")).row(0, named=True)
    assert day["ret_cc"] == pytest.approx(math.log(src["close_price"] / prev["close_price"]))
    assert day["n_bars"] is None and day["coverage"] is None and not day["low_coverage"]  # not faked
    assert feats["rv_m"].drop_nulls().len() > 0.95 * feats.height


def test_a_realized_symbol_evaluates_to_a_report_with_its_target_source(
    realized_wh: Path, tmp_path: Path
) -> None:
    from flows.evaluate_flow import evaluate_flow
    from tasks.experiment import ExperimentSpec

    spec = ExperimentSpec(
        symbols=["SPY_RV", "EURUSD_RV"],
        models=["har", "ewma", "garch"],
        test_start="2017-01-01",
        test_end="2017-06-30",
        window="rolling",
        train_size=1000,
        refit_every=22,
        embargo=1,
        stack=False,
        name="realized",
    )
    out = evaluate_flow(spec, warehouse=str(realized_wh), reports_dir=str(tmp_path))
    assert out["failed"] == []
    report = json.loads(Path(out["json"]).read_text())
    assert report["params"]["targets"] == {
        "EURUSD_RV": "imported realized measures (oxfordman)",
        "SPY_RV": "imported realized measures (oxfordman)",
    }
    assert report["params"]["embargo"] == 1
    assert report["dropped"]["target not realized yet"] == 0
    board = pl.DataFrame(report["leaderboard"])
    assert set(board["model"]) >= {"har", "ewma", "garch", "naive"}
    assert {r["symbol"] for r in report["risk"]} == {"SPY_RV", "EURUSD_RV"}
    assert "imported realized measures (oxfordman)" in Path(out["report"]).read_text()


def test_target_source_is_chosen_and_refused_clearly(realized_wh: Path) -> None:
    from flows.features_flow import features_flow

    with pytest.raises(ConfigError, match=r"SPY_RV has no bars in the warehouse \(it has realized\)"):
        features_flow(symbols=["SPY_RV"], warehouse=str(realized_wh), target_source="bars")
    with pytest.raises(ConfigError, match=r"NOPE has neither bars nor realized measures"):
        features_flow(symbols=["NOPE"], warehouse=str(realized_wh))


def test_pipeline_flow_runs_a_realized_only_symbol(
    realized_wh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pipeline_flow import run_pipeline
    from tasks.config import get_settings

    monkeypatch.setenv("VOLRISK_REPORTS_DIR", str(tmp_path))
    get_settings.cache_clear()

    out = run_pipeline(
        symbols=["SPY_RV"],
        source="warehouse",
        models=["har"],
        evaluation={"test_start": date(2016, 1, 1), "test_end": date(2016, 3, 31), "refit_every": 22},
        name="realized-pipe",
        warehouse=str(realized_wh),
    )
    assert out["failed"] == [] and out["skipped"] == {}, out
    assert Path(str(out["report"])).parent == tmp_path and Path(str(out["report"])).is_file()
    get_settings.cache_clear()
