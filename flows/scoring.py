"""Score an evaluation's stored predictions, write its report and publish Prefect artifacts.

Shared by ``evaluate_flow`` and ``stack_flow``: it reads the out-of-fold predictions of the model runs
the evaluation produced (never recomputing them), builds the :class:`~tasks.scorecard.Scorecard`,
writes ``reports/eval-YYMMDD-<name>.md`` / ``.json`` / PNGs, publishes a markdown and a table
artifact under stable keys (``eval-<name>-report``, ``eval-<name>-leaderboard``), and records the
evaluation's manifest in the warehouse (the first run that passes every gate becomes the baseline).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, cast

import polars as pl

from tasks.config import get_settings


def _artifact_key(name: str, what: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:40] or "eval"
    return f"eval-{slug}-{what}"


def _publish(card: Any, paths: dict[str, str]) -> None:
    """Markdown and table artifacts with stable keys (a no-op outside a flow run)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    md = Path(paths["md"]).read_text(encoding="utf-8")
    create_markdown_artifact(key=_artifact_key(card.name, "report"), markdown=md, description=paths["md"])
    rows = card.leaderboard.select(
        "symbol", "model", "qlike", "qlike_ratio", "dm_p", "in_mcs", "loses_to_har"
    ).to_dicts()
    create_table_artifact(
        key=_artifact_key(card.name, "leaderboard"), table=rows, description=f"{card.name}: QLIKE leaderboard"
    )


def _histories(con: Any, runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Training history of each neural model's last fold (first symbol)."""
    from warehouse.models import read_model_run

    first_symbol = min(r["symbol"] for r in runs)
    last: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r["symbol"] == first_symbol and (r["model"] not in last or r["fold"] > last[r["model"]]["fold"]):
            last[r["model"]] = r
    out: dict[str, dict[str, Any]] = {}
    for model, r in last.items():
        run = read_model_run(con, r["model_run"])
        hist = ((run or {}).get("metrics") or {}).get("history")
        if hist:
            out[f"{model} ({r['symbol']}, fold {r['fold']})"] = hist
    return out


def _shap(
    predictions: pl.DataFrame,
    features: pl.DataFrame,
    classes: dict[str, str],
    bases: list[str],
    cross: pl.DataFrame | None = None,
) -> pl.DataFrame | None:
    """Attributions of a meta-learner fitted on every out-of-fold row (the one that serves next)."""
    from tasks.models.base import ModelData
    from tasks.models.ensemble import Ensemble

    base = predictions.filter(pl.col("model").is_in(bases))
    if base.height == 0:
        return None
    end = cast(date, features["session_date"].max())
    try:
        ens = Ensemble(base_models=bases, groups=classes).fit(
            ModelData(features, cross, predictions=base), end
        )
    except Exception:  # noqa: BLE001 - attributions are optional; the report says they are missing
        return None
    return ens.attributions()


def _read_inputs(wh: str, params: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' predictions, features, cross-asset rows, training histories and the baseline."""
    from warehouse.evaluations import first_passed_evaluation
    from warehouse.features import read_cross_asset, read_features
    from warehouse.models import read_run_predictions
    from warehouse.resource import Warehouse

    with Warehouse.at(wh).reading() as con:
        preds = read_run_predictions(con, [r["model_run"] for r in runs])
        feats = read_features(con, params["symbols"])
        cross = read_cross_asset(con, params["symbols"], any_partner=True)
        histories = _histories(con, runs)
        baseline = first_passed_evaluation(con)
    return {"preds": preds, "feats": feats, "cross": cross, "histories": histories, "baseline": baseline}


def _in_windows(preds: pl.DataFrame, windows: dict[str, list[str]]) -> pl.DataFrame:
    """Rows whose target lies in their symbol's test window (``params["windows"]``)."""
    bounds = pl.DataFrame(
        [
            {"symbol": s, "_lo": date.fromisoformat(w[0]), "_hi": date.fromisoformat(w[1])}
            for s, w in windows.items()
        ]
    )
    return (
        preds.join(bounds, on="symbol", how="inner")
        .filter(pl.col("target").is_between(pl.col("_lo"), pl.col("_hi")))
        .drop("_lo", "_hi")
    )


def _baseline_payload(baseline: dict[str, Any] | None) -> Any:
    """The JSON report of the baseline evaluation, when it has one on disk."""
    if baseline and baseline.get("report") and Path(str(baseline["report"])).with_suffix(".json").is_file():
        import json

        return json.loads(Path(str(baseline["report"])).with_suffix(".json").read_text())
    return None


def score_and_report(
    wh: str,
    name: str,
    params: dict[str, Any],
    runs: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    classes: dict[str, str],
    calendars: dict[str, str],
    reports_dir: str | None = None,
) -> dict[str, Any]:
    """Score the runs' predictions, write the report, publish artifacts, record the manifest."""
    from tasks.evaluate import realized_frame
    from tasks.events import default_event_calendar
    from tasks.report import write_report
    from tasks.risk_calibrated import calibrated_predictions, calibration_plan
    from tasks.scorecard import ENSEMBLE, build_scorecard
    from warehouse.evaluations import write_evaluation
    from warehouse.resource import Warehouse

    if not runs:
        raise RuntimeError(f"evaluation {name!r}: every fold failed: {failed[:3]}")
    got = _read_inputs(wh, params, runs)
    feats = got["feats"]
    oof = got["preds"].filter(pl.col("symbol").is_in(params["symbols"])).drop("created_at")
    # oof: every out-of-fold row, warm-up included: the meta-learner's training data
    preds = _in_windows(oof, params["windows"])
    models = [m for m in params["models"] if m in set(preds["model"].unique().to_list())]
    plan = calibration_plan(models, params.get("calibration"))
    calibrated = calibrated_predictions(oof.drop("model_run"), realized_frame(feats), plan)
    card = build_scorecard(
        name,
        params,
        preds.drop("model_run"),
        feats,
        classes,
        default_event_calendar(),
        models,
        failed,
        params.get("cost_bps", 5.0),
        calendars=calendars,
        calibrated=calibrated,
    )
    card.histories = got["histories"]
    bases = [m for m in models if m != ENSEMBLE]
    cross = got["cross"]
    card.shap = _shap(oof.drop("model_run"), feats, classes, bases, cross) if ENSEMBLE in models else None
    baseline_payload = _baseline_payload(got["baseline"])
    folder = Path(reports_dir) if reports_dir else get_settings().reports
    paths = write_report(card, folder, baseline_payload)
    _publish(card, paths)
    with Warehouse.at(wh).writing() as con:
        write_evaluation(
            con, name, params, {"runs": runs, "failed": failed}, card.stacking, paths["md"], card.passed_gates
        )
    return {
        "report": paths["md"],
        "json": paths["json"],
        "failed": failed,
        "runs": len(runs),
        "scored": card.scored.select("symbol", "target").unique().height,
        "passed_gates": card.passed_gates,
        "summary": card.summary().to_dicts(),
        "headline": card.headline(),
        "panel": card.panel.to_dicts() if card.panel is not None else [],
        "stacking": card.stacking,
        "risk_model": {k: v for k, v in card.risk_choice.items() if k != "candidates"},
    }
