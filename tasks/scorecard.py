"""Everything an evaluation measures, computed from its stored out-of-fold predictions.

:func:`build_scorecard` is pure: predictions, features and events in, a :class:`Scorecard` out. It
restricts every model to the same scoring set (``tasks.evaluate.common_scoring_set``), then runs the
forecast tests (``tasks.evaluate.leaderboard``) per asset and across the panel of assets
(``tasks.panel_evaluation``), the VaR/ES backtests (``tasks.risk``), the strategy
backtest (``tasks.strategy``) and the event gates (``tasks.event_gates``), and decides whether the
stacked ensemble earned its keep or falls back to the best single model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from tasks.evaluate import BENCHMARK, common_scoring_set, leaderboard
from tasks.panel_evaluation import panel_headline, panel_summary
from tasks.risk_recommend import recommend_risk_model, served_checks

#: Stacked model name (the ``ensemble`` registry entry of ``tasks.models.ensemble``).
ENSEMBLE = "ensemble"
#: Stacked Sharpe must beat the best single model by this much (the research plan's gate).
LIFT = 0.1


@dataclass
class Scorecard:
    """The results of one evaluation (see the module docstring)."""

    name: str
    params: dict[str, Any]
    scored: pl.DataFrame
    dropped: dict[str, int]
    leaderboard: pl.DataFrame
    risk: pl.DataFrame
    strategy: pl.DataFrame
    equity: pl.DataFrame
    gates: list[dict[str, Any]]
    stacking: dict[str, dict[str, Any]]
    failed: list[dict[str, Any]] = field(default_factory=list)
    shap: pl.DataFrame | None = None
    histories: dict[str, dict[str, Any]] = field(default_factory=dict)
    panel: pl.DataFrame | None = None
    risk_input: pl.DataFrame | None = None
    risk_stress: pl.DataFrame | None = None
    reliability: pl.DataFrame | None = None
    risk_choice: dict[str, Any] = field(default_factory=dict)

    @property
    def passed_gates(self) -> bool:
        """Every gate passed (a gate that could not be computed does not pass)."""
        return bool(self.gates) and all(bool(g.get("passed")) for g in self.gates)

    def ensemble_serves(self) -> dict[str, str]:
        """Symbol -> what the ``ensemble`` predictor serves: itself, or its asset class's fallback.

        Empty when the evaluation has no ensemble. This is the one serving decision the report,
        the verdict and the command line all state (see :func:`stacking_decision`).
        """
        if not self.stacking or "asset_class" not in self.scored.columns:
            return {}
        pairs = self.scored.select("symbol", "asset_class").unique().iter_rows()
        return {sym: self.stacking[cls]["serves"] for sym, cls in pairs if cls in self.stacking}

    def headline(self) -> dict[str, Any]:
        """The evaluation's headline over its assets (:func:`tasks.panel_evaluation.panel_headline`).

        ``params["tuned_on"]`` names the assets used to choose settings. When the best model is the
        stacked ensemble and it falls back on some assets, the sentence says so.
        """
        panel = self.panel if self.panel is not None else panel_summary(self.scored, self.leaderboard)
        out = panel_headline(panel, self.leaderboard, self.params.get("tuned_on"))
        fallback = {s: m for s, m in self.ensemble_serves().items() if m != ENSEMBLE}
        if out.get("best_model") == ENSEMBLE and fallback:
            out["ensemble_falls_back_on"] = dict(sorted(fallback.items()))
            listed = ", ".join(f"{s} (serves {m})" for s, m in sorted(fallback.items()))
            out["sentence"] += f" Where its asset class fell back, the stack is not served: {listed}."
        if self.risk_choice:
            out["risk_model"] = {k: v for k, v in self.risk_choice.items() if k != "candidates"}
            out["sentence"] += " " + self.risk_choice["sentence"]
        return out

    def candidates(self, symbol: str) -> pl.DataFrame:
        """The symbol's leaderboard rows of models that are really served, best QLIKE first.

        A stacked ensemble that fell back serves another model, which has its own row, so its own
        scores are not a candidate for "best".
        """
        board = self.leaderboard.filter(pl.col("symbol") == symbol).sort("qlike")
        if self.ensemble_serves().get(symbol, ENSEMBLE) != ENSEMBLE:
            board = board.filter(pl.col("model") != ENSEMBLE)
        return board

    def summary(self) -> pl.DataFrame:
        """Per symbol: the best served model on QLIKE, whether it beats HAR-RV (DM p), VaR verdicts."""
        rows: list[dict[str, Any]] = []
        serves = self.ensemble_serves()
        for symbol in sorted(self.leaderboard["symbol"].unique().to_list()):
            board = self.candidates(symbol)
            best = board.row(0, named=True)
            har = board.filter(pl.col("model") == BENCHMARK)
            risk = self.risk.filter((pl.col("symbol") == symbol) & (pl.col("model") == best["model"]))
            r = risk.row(0, named=True) if risk.height else {}
            chosen = self.risk_choice.get("model")
            mine = self.risk.filter((pl.col("symbol") == symbol) & (pl.col("model") == chosen))
            fallback = {s: m for s, m in serves.items() if m != ENSEMBLE}
            rc = served_checks(mine, fallback).row(0, named=True) if mine.height else {}
            rows.append(
                {
                    "symbol": symbol,
                    "best_model": best["model"],
                    "best_qlike": best["qlike"],
                    "har_qlike": har["qlike"][0] if har.height else math.nan,
                    "dm_p_vs_har": best["dm_p"],
                    "beats_har": bool(best["beats_har"]),
                    "ensemble_serves": serves.get(symbol),
                    **{k: r.get(k, math.nan) for k in _VERDICT_RISK},
                    "risk_model": chosen,
                    "risk_var95_pass": rc.get("var95_pass"),
                    "risk_var99_pass": rc.get("var99_pass"),
                    "risk_cov80": rc.get("cov80"),
                    "risk_passes": rc.get("passes"),
                }
            )
        return pl.DataFrame(rows)


#: Risk columns of the per-asset verdict.
_VERDICT_RISK = ("var95_kupiec_p", "var95_cc_p", "var95_pass", "var99_kupiec_p", "var99_cc_p", "var99_pass")


def _with_classes(frame: pl.DataFrame, classes: Mapping[str, str]) -> pl.DataFrame:
    mapping = pl.DataFrame({"symbol": list(classes), "asset_class": list(classes.values())})
    return frame.join(mapping, on="symbol", how="left").with_columns(
        pl.col("asset_class").fill_null("unknown")
    )


def stacking_decision(strategy: pl.DataFrame, classes: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per asset class: serve the stack, or fall back to the best single model (lift < 0.1 Sharpe)."""
    out: dict[str, dict[str, Any]] = {}
    if ENSEMBLE not in strategy["model"].unique().to_list():
        return out
    with_class = _with_classes(strategy, classes)
    for cls in sorted(set(classes.values())):
        part = with_class.filter(pl.col("asset_class") == cls)
        mean = part.group_by("model").agg(pl.col("sharpe").mean()).filter(pl.col("sharpe").is_not_nan())
        ens = mean.filter(pl.col("model") == ENSEMBLE)["sharpe"]
        singles = mean.filter(pl.col("model") != ENSEMBLE).sort("sharpe", descending=True)
        if ens.len() == 0 or singles.height == 0:
            continue
        best, best_sharpe = singles.row(0)
        stacked = float(ens[0])
        lifted = stacked >= float(best_sharpe) + LIFT
        out[cls] = {
            "mode": "stacked" if lifted else "fallback",
            "serves": ENSEMBLE if lifted else best,
            "stacked_sharpe": stacked,
            "best_single": best,
            "best_single_sharpe": float(best_sharpe),
            "lift": stacked - float(best_sharpe),
        }
    return out


def build_scorecard(
    name: str,
    params: dict[str, Any],
    predictions: pl.DataFrame,
    features: pl.DataFrame,
    classes: Mapping[str, str],
    events: pl.DataFrame | None,
    models: Sequence[str],
    failed: list[dict[str, Any]] | None = None,
    cost_bps: float = 5.0,
    mcs_reps: int = 1000,
    calendars: Mapping[str, str] | None = None,
    calibrated: pl.DataFrame | None = None,
) -> Scorecard:
    """Score ``models`` on their common out-of-sample dates (see the module docstring).

    ``calibrated``: the calibrated twins' rows (:func:`tasks.risk_calibrated.calibrated_predictions`);
    they are backtested with the raw models on the same pairs, and compete for the risk recommendation.
    """
    from tasks.event_gates import event_gates
    from tasks.events import empty_events
    from tasks.risk import risk_backtest
    from tasks.risk_calibrated import risk_frame
    from tasks.risk_stress import reliability, stress_backtests
    from tasks.strategy import compare_strategies

    ok_models = [m for m in models if m in set(predictions["model"].unique().to_list())]
    sset = common_scoring_set(predictions, features, ok_models)
    scored = _with_classes(sset.scored, classes)
    board = leaderboard(scored, mcs_reps=mcs_reps)
    panel = panel_summary(scored, board, mcs_reps=mcs_reps)
    risk_rows = risk_frame(scored, calibrated)
    risk = risk_backtest(risk_rows)
    strategy, equity = compare_strategies(scored, cost_bps=cost_bps)
    stacking = stacking_decision(strategy, classes)
    gates = event_gates(
        scored, events if events is not None else empty_events(), strategy, calendars=calendars
    )
    card = Scorecard(
        name=name,
        params=params,
        scored=scored,
        dropped=sset.dropped,
        leaderboard=board,
        risk=risk,
        strategy=strategy,
        equity=equity,
        gates=[asdict(g) for g in gates],
        stacking=stacking,
        failed=list(failed or []),
        panel=panel,
        risk_input=risk_rows,
        risk_stress=stress_backtests(risk_rows),
        reliability=reliability(risk_rows),
    )
    fallback = {s: m for s, m in card.ensemble_serves().items() if m != ENSEMBLE}
    card.risk_choice = recommend_risk_model(risk, board, fallback)
    return card
