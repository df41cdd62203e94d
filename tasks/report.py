"""The evaluation report: ``reports/eval-YYMMDD-<name>.md``, a matching ``.json`` and PNG plots.

The first lines are the headline over every evaluated asset (the best model's median QLIKE ratio to
HAR-RV and the count of assets where it beats HAR-RV with DM p < 0.05) and which assets were used to
choose settings; "Across assets" holds the panel figures behind it (``tasks.panel_evaluation``).
Then: the per-asset verdict (best model vs HAR-RV on QLIKE with the DM p-value; 95%/99% VaR through
Kupiec and Christoffersen), the leaderboard with DM/MCS marks (a model that loses to HAR-RV in red),
the risk backtests, the strategy table, the gates, the stacking decision with SHAP bars, training
histories, and the change against the baseline (the first evaluation that passed every gate).

Every text cell that comes from data is escaped for markdown and defused against spreadsheet
formula injection (a leading ``= + - @`` gets a quote), so a hostile symbol or error message cannot
become a live formula or break the table.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tasks.evaluate import BENCHMARK
from tasks.panel_evaluation import GOAL_MEDIAN_RATIO
from tasks.report_format import md_table, pct_cell, plt_module, safe_cell
from tasks.report_risk import plot_risk_var, risk_lines
from tasks.scorecard import ENSEMBLE, Scorecard

__all__ = ["md_table", "safe_cell", "write_report"]


def report_paths(reports_dir: Path, name: str, when: datetime | None = None) -> tuple[Path, Path, Path]:
    """(markdown, json, plot folder) of an evaluation named ``name``."""
    stamp = (when or datetime.now()).strftime("%y%m%d")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]
    base = reports_dir / f"eval-{stamp}-{safe}"
    return base.with_suffix(".md"), base.with_suffix(".json"), base


# ------------------------------------------------------------------------------------------ plots
def plot_forecasts(card: Scorecard, symbol: str, model: str, path: Path) -> Path:
    """Realized vs forecast RV (best model and HAR-RV), and returns inside the 80%/98% bands."""
    plt = plt_module()
    part = card.scored.filter(pl.col("symbol") == symbol)
    best = part.filter(pl.col("model") == model).sort("target")
    har = part.filter(pl.col("model") == BENCHMARK).sort("target")
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    ax1.scatter(best["target"], best["rv_actual"], s=5, color="0.4", label="realized RV")
    ax1.plot(best["target"], best["rv"], color="tab:blue", lw=1, label=f"{model} forecast")
    if har.height and model != BENCHMARK:
        ax1.plot(har["target"], har["rv"], color="tab:orange", lw=1, alpha=0.8, label="HAR-RV forecast")
    ax1.set_yscale("log")
    ax1.set_ylabel("daily variance")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.set_title(f"{symbol}: forecast vs realized variance")
    ax2.fill_between(best["target"], best["q01"], best["q99"], color="tab:blue", alpha=0.15, label="98% band")
    ax2.fill_between(best["target"], best["q10"], best["q90"], color="tab:blue", alpha=0.35, label="80% band")
    ax2.plot(best["target"], best["ret"], color="black", lw=0.6, label="realized return")
    ax2.set_ylabel("return")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_var(card: Scorecard, symbol: str, model: str, path: Path) -> Path:
    """Returns with the model's 95% and 99% VaR lines; breaches marked."""
    return plot_risk_var(card.scored, symbol, model, path)


def line_styles(models: list[str]) -> dict[str, tuple[Any, str]]:
    """One (colour, line style) per model, none shared: tab10 colours, then the next dash style."""
    plt = plt_module()
    colours = plt.get_cmap("tab10").colors
    dashes = ("-", "--", "-.", ":")
    return {
        m: (colours[i % len(colours)], dashes[(i // len(colours)) % len(dashes)])
        for i, m in enumerate(models)
    }


def plot_equity(card: Scorecard, symbol: str, path: Path) -> Path:
    """Strategy equity curves of every model that took positions, each in its own colour and style."""
    plt = plt_module()
    _, idle = trading_rows(card.strategy)
    part = card.equity.filter((pl.col("symbol") == symbol) & ~pl.col("model").is_in(idle))
    fig, ax = plt.subplots(figsize=(11, 4))
    models = sorted(part["model"].unique().to_list())
    for model, (colour, dash) in line_styles(models).items():
        curve = part.filter(pl.col("model") == model).sort("target")
        lw = 2.0 if model in (ENSEMBLE, "quantile_event", "quantile") else 0.9
        ax.plot(curve["target"], curve["equity"], lw=lw, color=colour, linestyle=dash, label=model)
    ax.axhline(1.0, color="0.5", lw=0.5)
    ax.set_title(f"{symbol}: long/short/flat strategy, equity (after costs)")
    if models:
        ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_leaderboard(card: Scorecard, symbol: str, path: Path) -> Path:
    """QLIKE per model (red: loses to HAR-RV; * outside the 90% MCS)."""
    plt = plt_module()
    board = card.leaderboard.filter(pl.col("symbol") == symbol).sort("qlike", descending=True)
    fig, ax = plt.subplots(figsize=(8, 0.35 * board.height + 1.2))
    colors = [
        "tab:red" if lose else ("tab:green" if m == BENCHMARK else "tab:blue")
        for m, lose in zip(board["model"], board["loses_to_har"], strict=True)
    ]
    ax.barh(board["model"], board["qlike"], color=colors)
    for i, (q, inside) in enumerate(zip(board["qlike"], board["in_mcs"], strict=True)):
        ax.text(q, i, f" {q:.3f}{'' if inside else ' *'}", va="center", fontsize=8)
    ax.set_xlabel("mean QLIKE (lower is better); red = worse than HAR-RV, * = outside the 90% MCS")
    ax.set_title(f"{symbol}: leaderboard")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_panel_ratios(board: pl.DataFrame, path: Path) -> Path:
    """Per model, its QLIKE ratio to HAR-RV on each asset (dots) and the median (bar); a line at 1.0.

    A filled dot is an asset where the model beats HAR-RV significantly (DM p < 0.05, lower QLIKE).
    The model with the lowest median is drawn at the top.
    """
    plt = plt_module()
    part = board.filter((pl.col("model") != BENCHMARK) & pl.col("qlike_ratio").is_finite())
    medians = (
        part.group_by("model")
        .agg(pl.col("qlike_ratio").median())
        .sort("qlike_ratio", "model", descending=[True, False])
    )
    fig, ax = plt.subplots(figsize=(8, 0.45 * medians.height + 1.6))
    labels = {"sig": "asset, DM p < 0.05", "rest": "asset", "median": "median over assets"}
    for i, (model, median) in enumerate(medians.iter_rows()):
        rows = part.filter(pl.col("model") == model)
        sig, rest = rows.filter(pl.col("beats_har")), rows.filter(~pl.col("beats_har"))
        dots = {"s": 24, "zorder": 3}
        ax.scatter(rest["qlike_ratio"], [i] * rest.height, facecolors="none", edgecolors="tab:blue",
                   label=labels.pop("rest", None) if rest.height else None, **dots)  # fmt: skip
        ax.scatter(sig["qlike_ratio"], [i] * sig.height, color="tab:green",
                   label=labels.pop("sig", None) if sig.height else None, **dots)  # fmt: skip
        ax.plot([median, median], [i - 0.3, i + 0.3], color="black", lw=2.2, label=labels.pop("median", None))
    ax.axvline(1.0, color="tab:orange", lw=1, ls="--", label="HAR-RV (1.0)")
    ax.set_yticks(list(range(medians.height)), medians["model"].to_list())
    ax.set_xlabel("mean QLIKE / HAR-RV's mean QLIKE, per asset (below 1: better than HAR-RV)")
    n_assets = part["symbol"].n_unique()
    ax.set_title(f"QLIKE ratio to HAR-RV over {n_assets} asset{'s' if n_assets != 1 else ''}")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_shap(shap: pl.DataFrame, group: str, path: Path) -> Path:
    """Mean |SHAP| of the ensemble's log-RV features for one asset class."""
    plt = plt_module()
    part = shap.filter((pl.col("group") == group) & (pl.col("target") == "log_rv")).sort("mean_abs_shap")
    fig, ax = plt.subplots(figsize=(8, 0.3 * part.height + 1.2))
    colors = ["tab:purple" if f == "corr" else "tab:blue" for f in part["feature"]]
    ax.barh(part["feature"], part["mean_abs_shap"], color=colors)
    ax.set_xlabel("mean |SHAP| on next-session log RV (LightGBM pred_contrib)")
    ax.set_title(f"ensemble attributions: {group}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_histories(histories: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Training and validation loss per epoch of the neural models (their last fold)."""
    usable = {k: h for k, h in histories.items() if h and h.get("train_loss")}
    if not usable:
        return None
    plt = plt_module()
    fig, axes = plt.subplots(1, len(usable), figsize=(4 * len(usable), 3.2), squeeze=False)
    for ax, (key, h) in zip(axes[0], sorted(usable.items()), strict=True):
        ax.plot(h["train_loss"], label="train")
        if h.get("val_loss") and any(v is not None for v in h["val_loss"]):
            ax.plot([np.nan if v is None else v for v in h["val_loss"]], label="validation")
        if h.get("best_epoch") is not None:
            ax.axvline(h["best_epoch"], color="0.5", ls="--", lw=0.8)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ report
def _delta_table(card: Scorecard, baseline: dict[str, Any] | None) -> str:
    if not baseline:
        return "No baseline yet: the first evaluation that passes every gate becomes it."
    rows = baseline.get("leaderboard") or []
    base = {(r["symbol"], r["model"]): r["qlike"] for r in rows}
    out = []
    for r in card.leaderboard.iter_rows(named=True):
        b = base.get((r["symbol"], r["model"]))
        if b is None or b is math.nan:
            continue
        out.append(
            {
                "symbol": r["symbol"],
                "model": r["model"],
                "qlike": r["qlike"],
                "baseline": b,
                "change": r["qlike"] - b,
            }
        )
    if not out:
        return f"Baseline `{safe_cell(baseline.get('name'))}` shares no (symbol, model) with this run."
    return f"Against baseline `{safe_cell(baseline.get('name'))}` (negative change = better):\n\n" + md_table(
        pl.DataFrame(out)
    )


def _short(text: str, limit: int = 140) -> str:
    """Long JSON details are cut in the markdown table (the .json report keeps them whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_ready(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.write_json())


def _finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) as ``None``: strict JSON."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: What each gate's figure measures, so the figure and its threshold read in one unit.
GATE_UNITS: dict[str, str] = {
    "envelope_calibration": "x",
    "directional_accuracy": "%",
    "non_event_mae": "%",
    "non_event_direction": "pts",
    "walk_forward_sharpe": "Sharpe",
    "ensemble_lift": "Sharpe",
}
#: The settings shown first in the experiment table, with their labels.
_SETTING_LABELS = {
    "symbols": "symbols",
    "tuned_on": "assets used to choose settings",
    "models": "models",
    "windows": "test windows (target sessions)",
    "window": "training window",
    "train_size": "training size (sessions)",
    "refit_every": "refit every (sessions)",
    "embargo": "embargo (sessions)",
    "horizon": "horizon (sessions)",
    "folds": "folds per symbol",
    "stack_warmup": "ensemble warm-up (sessions)",
    "cost_bps": "strategy cost (bp of turnover)",
    "targets": "forecast target (decimal daily variance)",
}
UNITS_NOTE = (
    "Units: variance figures (forecast and realized RV, `variance`, MAE) are the daily variance of log "
    "returns as a decimal (1e-4 is a daily volatility of 1%); MSE is in squared daily variance; QLIKE "
    "and R² are unitless. Returns, VaR and ES are daily log returns (-0.02 is about -2%)."
)


def _render_value(value: Any) -> str:
    """A setting as text: mappings as ``key value`` pairs, lists joined, never a raw dict."""
    if isinstance(value, dict):
        return "; ".join(f"{k} {_render_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        parts = [str(v) for v in value]
        return (
            " .. ".join(parts) if len(parts) == 2 and all(len(p) == 10 for p in parts) else ", ".join(parts)
        )
    return "n/a" if value is None else str(value)


def experiment_table(params: dict[str, Any]) -> str:
    """The evaluation's settings as a two-column markdown table (known settings first)."""
    keys = [k for k in _SETTING_LABELS if k in params] + sorted(k for k in params if k not in _SETTING_LABELS)
    rows = [{"setting": _SETTING_LABELS.get(k, k), "value": _render_value(params[k])} for k in keys]
    return md_table(pl.DataFrame(rows, schema={"setting": pl.String, "value": pl.String}))


def gate_figure(test: str, figure: float | None) -> str:
    """A gate's figure in the unit of its threshold (``0.3333`` -> ``33.3%`` beside ``>= 60%``)."""
    if figure is None or (isinstance(figure, float) and math.isnan(figure)):
        return "n/a"
    unit = GATE_UNITS.get(test, "")
    if unit == "%":
        return f"{100 * figure:.1f}%"
    if unit == "x":
        return f"{figure:.2f}x"
    if unit == "pts":
        return f"{figure:.1f} pts"
    return f"{figure:+.3f} {unit}".rstrip()


def gate_threshold(test: str, gate: str) -> str:
    """The threshold with the same unit as :func:`gate_figure`."""
    unit = GATE_UNITS.get(test, "")
    return f"{gate}x" if unit == "x" else (f"{gate} {unit}" if unit == "Sharpe" else gate)


def trading_rows(strategy: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """(rows of models that took positions, names of variance-only models that never did)."""
    if strategy.height == 0:
        return strategy, []
    idle = strategy.group_by("model").agg(
        ((pl.col("n_trades").fill_null(0) == 0) & pl.col("sharpe").is_null()).all().alias("idle")
    )
    names = sorted(idle.filter(pl.col("idle"))["model"].to_list())
    return strategy.filter(~pl.col("model").is_in(names)), names


def strategy_section(strategy: pl.DataFrame) -> list[str]:
    """The strategy table without variance-only models, and one sentence naming them."""
    rows, idle = trading_rows(strategy)
    out: list[str] = []
    if rows.height:
        out.append(
            md_table(
                rows.select(
                    "model",
                    "symbol",
                    "n",
                    pl.col("sharpe").alias("Sharpe"),
                    pl.col("sharpe_se_hac").alias("Sharpe s.e. (HAC)"),
                    pct_cell("ann_return").alias("annual return"),
                    pct_cell("ann_vol").alias("annual vol"),
                    pct_cell("total_return").alias("total return"),
                    pct_cell("max_drawdown").alias("max drawdown"),
                    "turnover",
                    pl.col("hit_rate").alias("hit rate"),
                    pl.col("n_trades").alias("trades"),
                )
            )
        )
    else:
        out.append("No model took a position.")
    if idle:
        out += [
            "",
            f"Left out: {', '.join(f'`{safe_cell(m)}`' for m in idle)}: they forecast variance around a zero "
            "mean, so the rule never takes a side with them (no trades, no Sharpe).",
        ]
    return out


def gates_table(gates: list[dict[str, Any]]) -> str:
    """Each gate with its figure and threshold in one unit."""
    if not gates:
        return "No gate could be computed."
    rows = [
        {
            "test": g["test"],
            "scope": g["scope"],
            "figure": gate_figure(g["test"], g.get("figure")),
            "gate": gate_threshold(g["test"], str(g["gate"])),
            "passed": "n/a" if g.get("passed") is None else ("pass" if g["passed"] else "FAIL"),
            "n": g.get("n"),
            "ship-stop": "yes" if g.get("ship_stop") else "",
            "note": g.get("note") or "",
            "detail": _short(json.dumps(g.get("detail") or {})) if g.get("detail") else "",
        }
        for g in gates
    ]
    return md_table(pl.DataFrame(rows))


def _header_lines(card: Scorecard, headline: dict[str, Any]) -> list[str]:
    pairs = card.scored.select("symbol", "target").unique().height
    # The headline is built from validated symbols and registry model names, so it is written as is.
    return [
        f"# Evaluation `{safe_cell(card.name)}`",
        "",
        f"**{headline['sentence']}**",
        "",
        headline["settings"],
        "",
        f"Written {datetime.now():%Y-%m-%d %H:%M}.",
        "",
        experiment_table(card.params),
        "",
        f"Every model is scored on the same {pairs} (symbol, target) pairs. Left out: "
        + ", ".join(f"{v} {k}" for k, v in card.dropped.items())
        + ". The base models also forecast "
        f"{card.params.get('stack_warmup', 0)} warm-up sessions before each test window (not scored) so "
        "the ensemble has earlier out-of-fold rows to learn from.",
        "",
        UNITS_NOTE,
        "",
    ]


def panel_table(panel: pl.DataFrame) -> str:
    """Per model across assets: median QLIKE ratio, significant wins, panel DM and panel MCS."""
    ratios = [("n/a" if v is None or math.isnan(v) else f"{v:.3f}") for v in panel["median_qlike_ratio"]]
    return md_table(
        panel.select(
            "model",
            pl.col("n_assets").alias("assets"),
            pl.Series("median QLIKE / HAR", ratios, dtype=pl.String),
            pl.col("beats_har_assets").alias("beats HAR (DM p < 0.05)"),
            pl.col("loses_to_har_assets").alias("worse than HAR"),
            pl.col("panel_dm_stat").alias("panel DM stat"),
            pl.col("panel_dm_p").alias("panel DM p (one-sided)"),
            pl.col("panel_mcs_p").alias("panel MCS p"),
            pl.when(pl.col("in_panel_mcs")).then(pl.lit("in")).otherwise(pl.lit("out")).alias("panel MCS"),
        )
    )


_PANEL_NOTE = (
    "Median QLIKE / HAR: the median over assets of the mean QLIKE of each model divided by that of "
    "HAR-RV (below 1 is better). Beats HAR: assets where the per-asset Diebold-Mariano test "
    "(HLN-corrected, two-sided) has p < 0.05 and the QLIKE of the model is lower. Panel DM: a HAC "
    "(Newey-West) t-test on the daily cross-sectional mean of the QLIKE differentials against HAR-RV; "
    "the statistic is negative when the loss is lower, and the p-value is one-sided (H1: lower loss "
    "than HAR-RV across the panel). Panel MCS: the 90% model confidence set (arch) on the "
    "panel-average QLIKE."
)


def _goal_line(headline: dict[str, Any]) -> list[str]:
    oos = headline.get("out_of_sample")
    if not oos or not oos["n_assets"]:
        return []
    verdict = "met" if oos["goal_met"] else "not met"
    return [
        f"Goal on assets not used to choose settings (median <= {GOAL_MEDIAN_RATIO} x HAR, significant on "
        f">= 2/3): **{verdict}** by `{headline['best_model']}` over {oos['n_assets']} asset(s) "
        f"(median {oos['median_qlike_ratio']:.3f} x HAR, significant on {oos['beats_har']}).",
        "",
    ]


def _panel_lines(card: Scorecard, headline: dict[str, Any], plot_dir: Path, plots: list[Path]) -> list[str]:
    if card.panel is None or card.panel.height == 0:
        return []
    path = plot_panel_ratios(card.leaderboard, plot_dir / "panel-qlike-ratio.png")
    plots.append(path)
    return [
        f"## Across assets ({headline['n_assets']})",
        "",
        _PANEL_NOTE,
        "",
        panel_table(card.panel),
        "",
        *_goal_line(headline),
        f"![QLIKE ratio to HAR-RV per asset]({plot_dir.name}/{path.name})",
        "",
    ]


def verdict_table(summary: pl.DataFrame) -> str:
    """The per-asset verdict with readable headers (the JSON keeps the raw columns)."""

    def verdict(col: str) -> pl.Expr:
        return pl.when(pl.col(col)).then(pl.lit("pass")).otherwise(pl.lit("FAIL"))

    return md_table(
        summary.select(
            "symbol",
            pl.col("best_model").alias("best served model"),
            pl.col("best_qlike").alias("QLIKE"),
            pl.col("har_qlike").alias("HAR-RV QLIKE"),
            pl.col("dm_p_vs_har").alias("DM p vs HAR-RV"),
            pl.when(pl.col("beats_har")).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("beats HAR-RV"),
            verdict("var95_pass").alias("VaR 95%"),
            verdict("var99_pass").alias("VaR 99%"),
            pl.col("ensemble_serves").fill_null("no ensemble").alias("ensemble serves"),
            pl.col("risk_model").fill_null("none").alias("risk model"),
            verdict("risk_passes").alias("its risk checks"),
        )
    )


def _verdict_lines(card: Scorecard, summary: pl.DataFrame) -> list[str]:
    lines = [
        "## Verdict per asset",
        "",
        "VaR 95%/99%: the best served model's own quantiles. Risk model: the one the report recommends "
        "(see Risk backtests); its checks are VaR 95% and 99% (Kupiec and CC) and 80% coverage.",
        "",
        verdict_table(summary),
        "",
    ]
    for r in summary.iter_rows(named=True):
        verdict = (
            "beats"
            if r["beats_har"]
            else ("is level with" if r["best_model"] == BENCHMARK else "does not significantly beat")
        )
        line = (
            f"- **{safe_cell(r['symbol'])}**: the best served model on QLIKE is "
            f"`{safe_cell(r['best_model'])}` "
            f"({r['best_qlike']:.4f} vs HAR-RV {r['har_qlike']:.4f}); it {verdict} HAR-RV "
            f"(DM p = {safe_cell(r['dm_p_vs_har'])}). 95% VaR {'passes' if r['var95_pass'] else 'fails'} "
            f"Kupiec/Christoffersen (p = {safe_cell(r['var95_kupiec_p'])} / {safe_cell(r['var95_cc_p'])}); "
            f"99% VaR {'passes' if r['var99_pass'] else 'fails'} (p = {safe_cell(r['var99_kupiec_p'])} / "
            f"{safe_cell(r['var99_cc_p'])})."
        )
        serves = r.get("ensemble_serves")
        if serves and serves != ENSEMBLE:
            line += (
                f" The stacked ensemble fell back for this asset class and serves `{safe_cell(serves)}`, "
                "so its own scores are listed for reference and are not a candidate."
            )
        lines.append(line)
    return lines + [""]


def _board_cells(card: Scorecard, symbol: str) -> pl.DataFrame:
    board = card.leaderboard.filter(pl.col("symbol") == symbol)
    serves = card.ensemble_serves().get(symbol, ENSEMBLE)
    label = f"{ENSEMBLE} (not served: falls back to {serves})"
    return board.with_columns(
        pl.when(pl.col("model") == ENSEMBLE)
        .then(pl.lit(label) if serves != ENSEMBLE else pl.col("model"))
        .otherwise(pl.col("model"))
        .alias("model"),
        pl.when(pl.col("in_mcs")).then(pl.lit("in")).otherwise(pl.lit("out")).alias("mcs"),
    )


_BOARD_COLUMNS = [
    "model", "n", "qlike", "qlike_ratio", "mse", "mae", "rmse_sq_ret", "r2_oos", "mz_a", "mz_b", "mz_p",
    "dm_stat", "dm_p", "mcs_p", "mcs",
]  # fmt: skip


def _leaderboard_lines(
    card: Scorecard, summary: pl.DataFrame, plot_dir: Path, plots: list[Path]
) -> list[str]:
    lines = [
        "## Leaderboard",
        "",
        "DM: Diebold-Mariano on QLIKE against HAR-RV (HLN-corrected). "
        "MCS: 90% model confidence set (arch). Red rows lose to HAR-RV.",
        "",
    ]
    best_of = dict(zip(summary["symbol"], summary["best_model"], strict=True))
    for symbol in sorted(card.leaderboard["symbol"].unique().to_list()):
        board = _board_cells(card, symbol)
        red = {i for i, lose in enumerate(board["loses_to_har"].to_list()) if lose}
        lines += [f"### {safe_cell(symbol)}", "", md_table(board, _BOARD_COLUMNS, red), ""]
        best = best_of[symbol]
        drawn = [
            ("leaderboard", plot_leaderboard(card, symbol, plot_dir / f"leaderboard-{symbol}.png")),
            ("forecast", plot_forecasts(card, symbol, best, plot_dir / f"forecast-{symbol}.png")),
            ("var", plot_var(card, symbol, best, plot_dir / f"var-{symbol}.png")),
            ("equity", plot_equity(card, symbol, plot_dir / f"equity-{symbol}.png")),
        ]
        for tag, path in drawn:
            plots.append(path)
            lines.append(f"![{tag} {safe_cell(symbol)}]({plot_dir.name}/{path.name})")
        lines.append("")
    return lines


def _stacking_lines(card: Scorecard) -> list[str]:
    lines = ["## Stacking", ""]
    if not card.stacking:
        return lines + ["No ensemble in this evaluation."]
    for cls, d in card.stacking.items():
        best = f"`{safe_cell(d['best_single'])}` ({d['best_single_sharpe']:.3f})"
        head = f"- {safe_cell(cls)}: the stack's Sharpe {d['stacked_sharpe']:.3f}"
        if d["mode"] == "stacked":
            lines.append(f"{head} beats the best single model {best} by >= 0.1: the `ensemble` serves it.")
        else:
            lines.append(
                f"{head} does not beat the best single model {best} by 0.1: **fell back**; "
                f"the `ensemble` predictor serves `{safe_cell(d['best_single'])}`."
            )
    return lines + [""]


def _shap_lines(card: Scorecard, plot_dir: Path, plots: list[Path]) -> list[str]:
    if card.shap is None or not card.shap.height:
        return []
    lines = [
        "",
        "Feature attributions (mean |SHAP|, last fold's meta-learner). `corr` is the mean absolute "
        "rolling cross-asset return correlation; `shap_slope` > 0 means higher correlation raises the "
        "forecast (uncertainty).",
        "",
    ]
    for group in sorted(card.shap["group"].unique().to_list()):
        path = plot_shap(card.shap, group, plot_dir / f"shap-{group}.png")
        plots.append(path)
        corr = card.shap.filter((pl.col("group") == group) & (pl.col("feature") == "corr"))
        lines.append(f"![shap {safe_cell(group)}]({plot_dir.name}/{path.name})")
        if corr.height:
            lines += ["", md_table(corr)]
        lines.append("")
    return lines


def _tail_lines(
    card: Scorecard, baseline: dict[str, Any] | None, plot_dir: Path, plots: list[Path]
) -> list[str]:
    lines: list[str] = []
    hist = plot_histories(card.histories, plot_dir / "training-history.png")
    if hist is not None:
        plots.append(hist)
        lines += [
            "## Training history (last fold)",
            "",
            f"![training history]({plot_dir.name}/{hist.name})",
            "",
        ]
    lines += ["## Change against the baseline", "", _delta_table(card, baseline), ""]
    if card.failed:
        keep = ("model", "symbol", "fold", "error")
        failed = pl.DataFrame([{k: str(v) for k, v in f.items() if k in keep} for f in card.failed])
        lines += ["## Failed folds", "", md_table(failed), ""]
    return lines


def write_report(
    card: Scorecard, reports_dir: Path, baseline: dict[str, Any] | None = None
) -> dict[str, str]:
    """Write the markdown, JSON and PNGs of ``card``; returns their paths (``md``, ``json``, ``plots``)."""
    md_path, json_path, plot_dir = report_paths(reports_dir, card.name)
    plot_dir.mkdir(parents=True, exist_ok=True)
    summary = card.summary()
    plots: list[Path] = []
    headline = card.headline()
    lines = _header_lines(card, headline) + _panel_lines(card, headline, plot_dir, plots)
    lines += _verdict_lines(card, summary)
    lines += _leaderboard_lines(card, summary, plot_dir, plots) + risk_lines(card, plot_dir, plots)
    lines += [
        "## Strategy (long/short/flat on the return quantiles)",
        "",
        *strategy_section(card.strategy),
        "",
    ]
    lines += ["## Gates", "", gates_table(card.gates), "", f"All gates passed: **{card.passed_gates}**.", ""]
    lines += (
        _stacking_lines(card)
        + _shap_lines(card, plot_dir, plots)
        + _tail_lines(card, baseline, plot_dir, plots)
    )
    md_path.write_text("\n".join(lines), encoding="utf-8")
    payload = {
        "name": card.name,
        "written": datetime.now().isoformat(timespec="seconds"),
        "headline": _finite_or_none(headline),
        "params": card.params,
        "dropped": card.dropped,
        "panel": _json_ready(card.panel) if card.panel is not None else None,
        "summary": _json_ready(summary),
        "leaderboard": _json_ready(card.leaderboard),
        "risk": _json_ready(card.risk),
        "risk_choice": _finite_or_none(card.risk_choice),
        "risk_stress": _json_ready(card.risk_stress) if card.risk_stress is not None else None,
        "reliability": _json_ready(card.reliability) if card.reliability is not None else None,
        "strategy": _json_ready(card.strategy),
        "gates": card.gates,
        "passed_gates": card.passed_gates,
        "stacking": card.stacking,
        "shap": _json_ready(card.shap) if card.shap is not None else None,
        "failed": card.failed,
        "baseline": baseline.get("name") if baseline else None,
        "plots": [str(p) for p in plots],
    }
    json_path.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    return {"md": str(md_path), "json": str(json_path), "plots": str(plot_dir)}
