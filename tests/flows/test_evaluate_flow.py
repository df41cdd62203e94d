"""The evaluation flow end to end on real BTC/USDT daily features, in a real DuckDB warehouse.

Base models run fold by fold, the ensemble stacks them on earlier folds, everything is scored on the
same dates and reported; a rerun is all cache hits, and changing one day recomputes only the folds
whose data contain it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from repo_paths import REPO

from tasks.experiment import ExperimentSpec
from tasks.features import build_daily_features
from tasks.sources.files import read_bars_file
from warehouse.catalog import Instrument, upsert_instrument
from warehouse.db import session, writer
from warehouse.features import read_features, write_features

SAMPLE = REPO / "data" / "samples" / "BTC_USDT-1h_binance_2017_2024.csv"
MODELS = ["naive", "har", "ewma", "quantile"]
CONFIG = {"quantile": {"epochs": 2}, "ensemble": {"min_rows": 100}}


@pytest.fixture(scope="module")
def btc_features() -> pl.DataFrame:
    bars = read_bars_file(SAMPLE, symbol="BTC-USDT").bars
    return build_daily_features(bars, "24x7", "1h").filter(pl.col("session_date") <= date(2023, 6, 30))


def _seed(path: Path, feats: pl.DataFrame) -> None:
    with writer(path) as con:
        upsert_instrument(con, Instrument("BTC-USDT", "crypto", "24x7", "USDT", "binance"))
        write_features(con, feats, "BTC-USDT", feats["session_date"].min(), feats["session_date"].max())


def _run(path: Path, reports: Path, folds_per_task: int = 2) -> dict:
    from flows.evaluate_flow import evaluate_flow

    spec = ExperimentSpec(
        symbols=["BTC-USDT"],
        models=MODELS,
        test_start="2023-01-01",
        test_end="2023-06-30",
        refit_every=60,
        name="itest",
        config=CONFIG,
        stack_warmup=120,
        folds_per_task=folds_per_task,
    )
    return evaluate_flow(spec, warehouse=str(path), reports_dir=str(reports))


def test_evaluate_flow_scores_every_model_on_the_same_dates_and_caches(
    prefect_harness: None, warehouse_path: Path, tmp_path: Path, btc_features: pl.DataFrame
) -> None:
    _seed(warehouse_path, btc_features)
    reports = tmp_path / "reports"
    out = _run(warehouse_path, reports)
    assert out["failed"] == [] and out["statuses"]["success"] == out["runs"]
    # 120 warm-up + 181 test sessions in folds of 60: 6 folds per model. The ensemble needs 100
    # earlier rows known by a fold's train_end: folds 0-1 are warm-up only, it stacks folds 2..5, and
    # fold 2 starts exactly at the first test session, so every test session is scored.
    assert out["runs"] == len(MODELS) * 6 + 4

    md = Path(out["report"]).read_text()
    payload = json.loads(Path(out["json"]).read_text())
    assert "## Verdict per asset" in md and "BTC-USDT" in md and "HAR-RV" in md
    board = pl.DataFrame(payload["leaderboard"])
    assert set(board["model"]) == {*MODELS, "ensemble"}
    assert board["n"].n_unique() == 1, "every model is scored on exactly the same dates"
    assert board["n"][0] == 181 - payload["dropped"]["low-coverage target session"]
    assert {g["test"] for g in payload["gates"]} >= {"envelope_calibration", "ensemble_lift"}
    assert Path(payload["plots"][0]).is_file()
    # every model is backtested raw and with its calibrated twin, on the same scored targets
    risk = pl.DataFrame(payload["risk"])
    assert set(risk["model"]) == {*MODELS, "ensemble"} | {f"{m}+fhs+aci" for m in [*MODELS, "ensemble"]}
    assert risk["n"].n_unique() == 1
    assert payload["headline"]["risk_model"]["model"] in set(risk["model"])
    sentence, rec = out["headline"]["sentence"], payload["headline"]["risk_model"]
    named = (
        f"Recommended for risk: `{rec['model']}`"
        if rec["assets_passing"]
        else f"the closest is `{rec['model']}`"
    )
    assert named in sentence  # the headline names the model the risk ranking put first

    with session(warehouse_path, read_only=True) as con:
        leaks = con.sql(
            "SELECT count(*) FROM predictions p JOIN model_runs r USING (model_run) "
            "WHERE r.train_end >= p.origin OR p.fold IS NULL"
        ).fetchall()[0][0]
        assert leaks == 0, "a fold's model was trained on data at or after its forecast origin"

    again = _run(warehouse_path, reports)
    assert again["statuses"] == {"success": 0, "cached": out["runs"], "failed": 0}

    _restack_with_other_calibrations(warehouse_path, reports)

    # change the one origin of the last fold (301 targets in folds of 60: fold 5 is 2023-06-30 alone,
    # its origin 2023-06-29 is after fold 4's last origin): only the last block of each model (folds
    # 4-5, two folds per task) and the ensemble's last block (its folds 4-5) recompute
    with session(warehouse_path, read_only=True) as con:
        feats = read_features(con, ["BTC-USDT"])
    day = date(2023, 6, 29)
    changed = feats.with_columns(
        pl.when(pl.col("session_date") == day).then(pl.col("rv") * 2).otherwise(pl.col("rv")).alias("rv")
    ).filter(pl.col("session_date") == day)
    with writer(warehouse_path) as con:
        write_features(con, changed, "BTC-USDT", day, day)
    third = _run(warehouse_path, reports)
    assert third["statuses"]["success"] == 2 * (len(MODELS) + 1)
    assert third["statuses"]["cached"] == out["runs"] - 2 * (len(MODELS) + 1)


def test_process_runner_and_fold_blocks_give_the_thread_runners_forecasts(
    prefect_harness: None, tmp_path: Path, btc_features: pl.DataFrame
) -> None:
    """Worker processes and blocks of folds change where fits run, never what they forecast."""
    from flows.evaluate_flow import evaluate_flow

    stored = []
    for k, (runner, per_task) in enumerate((("thread", 1), ("process", 3))):
        wh = tmp_path / f"wh{k}.duckdb"
        _seed(wh, btc_features)
        spec = ExperimentSpec(
            symbols=["BTC-USDT"], models=["har", "quantile"], test_start="2023-04-01",
            test_end="2023-06-30", refit_every=20, name=f"runner{k}", stack=False,
            config={"quantile": {"epochs": 2}}, runner=runner, folds_per_task=per_task,
        )  # fmt: skip
        out = evaluate_flow(spec, warehouse=str(wh), reports_dir=str(tmp_path / "reports"))
        assert out["failed"] == [] and out["statuses"]["success"] == out["runs"]
        with session(wh, read_only=True) as con:
            stored.append(
                con.sql("SELECT model, fold, origin, rv, q01, q99 FROM predictions ORDER BY 1, 3").pl()
            )
    assert stored[0]["fold"].n_unique() >= 4, "several folds, so blocks of 3 differ from blocks of 1"
    assert stored[0].equals(stored[1])


@pytest.mark.slow
def test_parallel_torch_folds_are_reproducible(
    prefect_harness: None, tmp_path: Path, btc_features: pl.DataFrame
) -> None:
    """Two evaluations of the torch models, folds running in parallel threads, give identical forecasts.

    torch's generator is process-wide; before torch fits took turns, two cold runs of the same
    evaluation gave voltransformer QLIKE 0.5177 and 0.5081 on BTC.
    """
    from flows.evaluate_flow import evaluate_flow

    tiny = {"epochs": 3}
    stored = []
    for k in range(2):
        wh = tmp_path / f"wh{k}.duckdb"  # another warehouse: no cache hit from the first run
        _seed(wh, btc_features)
        spec = ExperimentSpec(
            symbols=["BTC-USDT"],
            models=["voltransformer", "prob_lstm", "quantile"],
            test_start="2023-05-01",
            test_end="2023-06-30",
            refit_every=20,
            name=f"det{k}",
            stack=False,
            config={m: tiny for m in ("voltransformer", "prob_lstm", "quantile")},
        )
        evaluate_flow(spec, warehouse=str(wh), reports_dir=str(tmp_path / "reports"))
        with session(wh, read_only=True) as con:
            stored.append(con.sql("SELECT model, origin, rv, q10, q90 FROM predictions ORDER BY 1, 2").pl())
    assert stored[0].height > 100
    assert stored[0].equals(stored[1])


def test_default_models_leave_out_event_models_whose_first_fold_predates_the_calendar() -> None:
    """quantile_event cannot train before the first event: "every model" leaves it out, saying why."""
    from flows.evaluate_flow import default_models, models_with_events
    from tasks.walk_forward import Fold

    def fold(end: date) -> Fold:
        return Fold(0, date(2000, 1, 3), end, (end,), (end,))

    names = default_models()
    early = {"SPY_RV": [fold(date(2007, 12, 27))], "BTC_RV": [fold(date(2019, 1, 2))]}
    keep, skipped = models_with_events(names, early, date(2015, 1, 28))
    assert "quantile_event" in skipped and "quantile_event" not in keep
    why = skipped["quantile_event"]
    assert "SPY_RV (ends 2007-12-27)" in why and "BTC_RV" not in why
    assert {"har", "quantile", "prob_lstm"} <= set(keep)
    assert models_with_events(names, {"BTC_RV": [fold(date(2019, 1, 2))]}, date(2015, 1, 28)) == (names, {})
    assert "quantile_event" in models_with_events(names, early, None)[1]  # no calendar at all


def test_default_models_leave_out_those_whose_inputs_the_data_lacks(btc_features: pl.DataFrame) -> None:
    """Imported realized files may lack rq or semivariances: "every model" skips what cannot run."""
    from flows.evaluate_flow import default_models, models_with_inputs

    other = btc_features.with_columns(pl.lit("OTHER").alias("symbol"), pl.lit(None, pl.Float64).alias("rq"))
    keep, skipped = models_with_inputs(default_models(), pl.concat([btc_features, other]))
    assert {"harq", "harq_f"} <= set(skipped) and skipped["harq"] == "needs rq, which OTHER lack"
    assert "BTC-USDT" not in skipped["harq"]
    assert {"har", "shar", "har_cj"} <= set(keep) and not set(keep) & set(skipped)
    everything, none = models_with_inputs(default_models(), btc_features)
    assert everything == default_models() and none == {}
    ranges = btc_features.with_columns(  # a daily range series: no bipower variation, so no jumps
        pl.lit("RANGE").alias("symbol"), *(pl.lit(None, pl.Float64).alias(c) for c in ("bv", "jv", "rq"))
    )
    keep, skipped = models_with_inputs(default_models(), pl.concat([btc_features, ranges]))
    assert skipped["har_j"] == "needs jv, which RANGE lack" and {"har", "lhar"} <= set(keep)


def test_models_without_weights_are_left_out_of_every_model_and_refused_by_name(
    btc_features: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty weights folder: chronos2/kronos are skipped from the default list with where to put the
    weights, and naming one fails before any fold runs."""
    from core.errors import ConfigError
    from flows.evaluate_flow import _check_models, runnable_defaults

    monkeypatch.setenv("VOLRISK_MODELS_DIR", str(tmp_path / "weights"))
    keep, skipped = runnable_defaults(btc_features)
    assert {"chronos2", "kronos", "kronos_event"} <= set(skipped)
    assert str(tmp_path / "weights") in skipped["chronos2"]
    assert {"har", "prob_lstm"} <= set(keep) and not set(keep) & set(skipped)
    with pytest.raises(ConfigError, match="model 'chronos2' cannot run here: .*weights"):
        _check_models(["har", "chronos2"])
    _check_models(["har", "prob_lstm"])


def test_foundation_models_are_scored_like_every_model_and_new_weights_mean_new_forecasts(
    prefect_harness: None, warehouse_path: Path, tmp_path: Path, btc_features: pl.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Tiny chronos2 and kronos weights in $VOLRISK_MODELS_DIR: the evaluation scores them beside HAR;
    replacing the chronos2 weights recomputes its folds (the weights' hash is in the cache key) while
    HAR's and kronos's stay cache hits."""
    from foundation_helpers import need_extra, save_tiny_chronos2, save_tiny_kronos

    from flows.evaluate_flow import evaluate_flow
    from tasks.models.foundation_weights import FOUNDATION

    need_extra("chronos2")
    need_extra("kronos")
    root = tmp_path / "weights"
    save_tiny_chronos2(root / FOUNDATION["chronos2"].folders["weights"], seed=0)
    save_tiny_kronos(root)
    monkeypatch.setenv("VOLRISK_MODELS_DIR", str(root))
    _seed(warehouse_path, btc_features)
    small = {"context": 32, "threads": 1}
    spec = ExperimentSpec(
        symbols=["BTC-USDT"], models=["chronos2", "kronos", "har"], test_start="2023-06-01",
        test_end="2023-06-30", refit_every=15, name="fdn", stack=False, runner="thread",
        config={"chronos2": small, "kronos": {**small, "samples": 4}},
    )  # fmt: skip
    first = evaluate_flow(spec, warehouse=str(warehouse_path), reports_dir=str(tmp_path / "reports"))
    assert first["failed"] == []
    board = pl.DataFrame(json.loads(Path(first["json"]).read_text())["leaderboard"])
    assert set(board["model"]) == {"chronos2", "kronos", "har", "naive"} and board["n"].n_unique() == 1
    save_tiny_chronos2(root / FOUNDATION["chronos2"].folders["weights"], seed=1)
    again = evaluate_flow(spec, warehouse=str(warehouse_path), reports_dir=str(tmp_path / "reports"))
    by_status = {s: again["statuses"][s] for s in ("success", "cached")}
    assert by_status["success"] == 2, "the two chronos2 folds are recomputed on the new weights"
    assert by_status["cached"] == again["runs"] - 2


def _risk_models(out: dict) -> set[str]:
    return set(pl.DataFrame(json.loads(Path(out["json"]).read_text())["risk"])["model"])


def _restack_with_other_calibrations(wh: Path, reports: Path) -> None:
    """``volrisk report --calibrate``'s path: re-score the stored evaluation with another calibration,
    then with a manifest stored before calibrations were recorded (it gets the default)."""
    from flows.evaluate_flow import stack_flow

    every = {*MODELS, "ensemble"}
    out = stack_flow(name="itest", warehouse=str(wh), reports_dir=str(reports),
                     calibration={"*": "none", "har": "aci"})  # fmt: skip
    assert _risk_models(out) == every | {"har+aci"}
    with session(wh, read_only=True) as con:
        row = con.sql("SELECT params::VARCHAR FROM evaluations WHERE name = 'itest'").fetchall()
    stored = json.loads(row[0][0])
    assert stored["calibration"] == {"*": "none", "har": "aci"}  # the re-score is recorded
    old = {k: v for k, v in stored.items() if k != "calibration"}
    with writer(wh) as con:
        con.execute("UPDATE evaluations SET params = ? WHERE name = 'itest'", [json.dumps(old)])
    out = stack_flow(name="itest", warehouse=str(wh), reports_dir=str(reports))
    assert _risk_models(out) == every | {f"{m}+fhs+aci" for m in every}


def test_development_panel_assets_are_reported_as_in_sample(warehouse_path: Path) -> None:
    import logging

    from flows.dev_panel import DEV_PANEL_SOURCE
    from flows.evaluate_flow import _with_development_assets

    with session(warehouse_path) as con:
        upsert_instrument(con, Instrument("SPY_RV", "equity_index", "XNYS", default_source=DEV_PANEL_SOURCE))
        upsert_instrument(con, Instrument("ACME", "equity_index", "XNYS", default_source="file"))
    log = logging.getLogger("test")
    spec = ExperimentSpec(symbols=["ACME", "SPY_RV"], tuned_on=["ACME"])
    assert _with_development_assets(str(warehouse_path), spec, log).tuned_on == ["ACME", "SPY_RV"]
    only_outside = ExperimentSpec(symbols=["ACME"])
    assert _with_development_assets(str(warehouse_path), only_outside, log).tuned_on is None
