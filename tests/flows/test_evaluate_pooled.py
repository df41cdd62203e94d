"""A pooled model in the evaluation flow: one fit per panel fold serves every member, in a real warehouse.

Three synthetic equity indices on three exchange calendars (tasks.synthetic_panel) share a volatility
factor. ``prob_lstm`` with ``pool="class"`` and the lagged ``mkt_rv`` input is fitted once per fold on
all three; each member's forecasts are stored as runs of their own and scored with the other models.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tasks.experiment import ExperimentSpec
from tasks.models.base import ModelData
from tasks.models.prob_lstm import ProbLSTM
from tasks.realized_features import realized_daily_features
from tasks.synthetic_panel import default_symbols, realized_rows, simulate_panel
from tasks.walk_forward import Fold, fit_predict
from warehouse.catalog import Instrument, upsert_instrument
from warehouse.db import session, writer
from warehouse.features import write_features

SYMBOLS = default_symbols(3)
POOLED = {"pool": "class", "features": ["log_rv", "log_rv_w", "ret", "mkt_rv"], "epochs": 2, "hidden": 8}


@pytest.fixture(scope="module")
def panel_features() -> pl.DataFrame:
    panel = simulate_panel(SYMBOLS, date(2015, 1, 1), date(2018, 6, 30), seed=9)
    parts = []
    for spec in SYMBOLS:
        feats, _ = realized_daily_features(
            realized_rows(panel.filter(pl.col("symbol") == spec.symbol)), spec.calendar
        )
        parts.append(feats)
    return pl.concat(parts, how="vertical_relaxed")


def _seed(path: Path, feats: pl.DataFrame) -> None:
    with writer(path) as con:
        for spec in SYMBOLS:
            upsert_instrument(con, Instrument(spec.symbol, "equity_index", spec.calendar, "USD", "synthetic"))
            own = feats.filter(pl.col("symbol") == spec.symbol)
            write_features(con, own, spec.symbol, own["session_date"].min(), own["session_date"].max())


def test_a_pooled_model_is_fitted_once_per_panel_fold_and_scored_per_member(
    prefect_harness: None, warehouse_path: Path, tmp_path: Path, panel_features: pl.DataFrame
) -> None:
    from flows.evaluate_flow import evaluate_flow

    _seed(warehouse_path, panel_features)
    spec = ExperimentSpec(
        symbols=[s.symbol for s in SYMBOLS], models=["har", "prob_lstm"], test_start="2018-03-01",
        test_end="2018-06-30", refit_every=30, window="rolling", train_size=600, name="pooled",
        stack=False, config={"prob_lstm": POOLED}, folds_per_task=2, runner="thread",
    )  # fmt: skip
    out = evaluate_flow(spec, warehouse=str(warehouse_path), reports_dir=str(tmp_path / "reports"))
    assert out["failed"] == []
    with session(warehouse_path, read_only=True) as con:
        runs = con.sql(
            "SELECT model_run, train_start, train_end, metrics FROM model_runs WHERE model = 'prob_lstm'"
        ).pl()
        preds = con.sql("SELECT model, symbol, origin, model_run, rv FROM predictions").pl()
    # one run per member and panel fold; the members of a fold share its training window
    per_fold = runs.group_by("train_end").len()
    assert (per_fold["len"] == 3).all() and per_fold.height >= 3
    assert runs["metrics"].str.contains('"pooled": \\["SYN_01", "SYN_02", "SYN_03"\\]').all()
    # every model forecasts the same (symbol, origin) pairs: the pooled folds cover each member's own
    har = preds.filter(pl.col("model") == "har").select("symbol", "origin").sort("symbol", "origin")
    lstm = preds.filter(pl.col("model") == "prob_lstm").select("symbol", "origin").sort("symbol", "origin")
    assert har.equals(lstm) and har.height > 200

    # the stored forecasts are one in-memory fit of the panel on that fold's window
    first = runs.sort("train_end").row(0, named=True)
    fold_preds = preds.join(
        runs.filter(pl.col("train_end") == first["train_end"]).select("model_run"), on="model_run"
    )
    origins = tuple(sorted(set(fold_preds["origin"])))
    fold = Fold(0, first["train_start"], first["train_end"], origins, ())
    again = fit_predict(ProbLSTM(**POOLED), ModelData(features=panel_features), fold)
    mine = fold_preds.select("symbol", "origin", "rv").sort("symbol", "origin")
    theirs = again.join(mine.select("symbol", "origin"), on=["symbol", "origin"]).select(
        "symbol", "origin", "rv"
    )
    assert mine.height == theirs.height
    assert mine["rv"].to_list() == pytest.approx(theirs.sort("symbol", "origin")["rv"].to_list(), rel=1e-6)


def test_a_member_the_pooled_fit_leaves_out_as_too_short_is_skipped_not_failed(
    panel_features: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A series that starts late has all its rows in the panel's validation tail at first: the model
    leaves it out of the fit, and the fold is not a failure (BTC_RV beside BTC_GK failed 7 folds)."""
    import flows.steps.evaluate_panel as evaluate_panel
    from tasks.walk_forward import PanelFold

    warned: list[str] = []
    monkeypatch.setattr(evaluate_panel._log, "warning", lambda msg, *a: warned.append(msg % a))
    young = SYMBOLS[2].symbol
    feats = panel_features.filter((pl.col("symbol") != young) | (pl.col("session_date") >= date(2018, 1, 2)))
    train_end = date(2018, 3, 29)
    later = feats.filter(pl.col("session_date") > train_end)
    origins = {
        s.symbol: tuple(later.filter(pl.col("symbol") == s.symbol)["session_date"].head(5).to_list())
        for s in SYMBOLS
    }
    fold = PanelFold(0, date(2015, 1, 1), train_end, origins)
    done, failed = evaluate_panel._fit_panel_fold("prob_lstm", POOLED, ModelData(feats), fold, "v1")
    assert failed == []
    assert sorted(f.item["symbol"] for f in done) == sorted(s.symbol for s in SYMBOLS if s.symbol != young)
    assert len(warned) == 1 and warned[0].startswith(f"pooled prob_lstm left {young} out of fold 0")
