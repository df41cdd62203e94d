"""The evaluation report: ``reports/eval-YYMMDD-<name>.md``, a matching ``.json`` and PNG plots.

Sections: the per-asset verdict (best model vs HAR-RV on QLIKE with the DM p-value; 95%/99% VaR through
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
from tasks.scorecard import Scorecard

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """Markdown-safe, formula-safe text of one table cell."""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    text = str(value).replace("\n", " ").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    if text.startswith(_FORMULA_START) and not _is_number(text):
        text = "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def md_table(frame: pl.DataFrame, columns: list[str] | None = None, red_rows: set[int] | None = None) -> str:
    """A markdown table; rows in ``red_rows`` are wrapped in a red span (GitHub shows bold instead)."""
    cols = columns or frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for i, row in enumerate(frame.select(cols).iter_rows()):
        cells = [safe_cell(v) for v in row]
        if red_rows and i in red_rows:
            cells[0] = f'<span style="color:red">**{cells[0]}** (loses to HAR-RV)</span>'
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_paths(reports_dir: Path, name: str, when: datetime | None = None) -> tuple[Path, Path, Path]:
    """(markdown, json, plot folder) of an evaluation named ``name``."""
    stamp = (when or datetime.now()).strftime("%y%m%d")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]
    base = reports_dir / f"eval-{stamp}-{safe}"
    return base.with_suffix(".md"), base.with_suffix(".json"), base


# ------------------------------------------------------------------------------------------ plots
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_forecasts(card: Scorecard, symbol: str, model: str, path: Path) -> Path:
    """Realized vs forecast RV (best model and HAR-RV), and returns inside the 80%/98% bands."""
    plt = _plt()
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
    """Returns with the 95% and 99% VaR lines; breaches marked."""
    plt = _plt()
    part = card.scored.filter((pl.col("symbol") == symbol) & (pl.col("model") == model)).sort("target")
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(part["target"], part["ret"], color="black", lw=0.6, label="return")
    for col, color, label in (("q05", "tab:orange", "VaR 95%"), ("q01", "tab:red", "VaR 99%")):
        ax.plot(part["target"], part[col], color=color, lw=1, label=label)
        hit = part.filter(pl.col("ret") < pl.col(col))
        ax.scatter(
            hit["target"], hit["ret"], color=color, s=18, zorder=3, label=f"{label} breaches ({hit.height})"
        )
    ax.set_title(f"{symbol}: {model} VaR backtest")
    ax.legend(loc="lower left", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_equity(card: Scorecard, symbol: str, path: Path) -> Path:
    """Strategy equity curves of every model for one symbol."""
    plt = _plt()
    part = card.equity.filter(pl.col("symbol") == symbol)
    fig, ax = plt.subplots(figsize=(11, 4))
    for model in sorted(part["model"].unique().to_list()):
        curve = part.filter(pl.col("model") == model).sort("target")
        lw = 2.0 if model in ("ensemble", "quantile_event", "quantile") else 0.9
        ax.plot(curve["target"], curve["equity"], lw=lw, label=model)
    ax.axhline(1.0, color="0.5", lw=0.5)
    ax.set_title(f"{symbol}: long/short/flat strategy, equity (after costs)")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_leaderboard(card: Scorecard, symbol: str, path: Path) -> Path:
    """QLIKE per model (red: loses to HAR-RV; * outside the 90% MCS)."""
    plt = _plt()
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


def plot_shap(shap: pl.DataFrame, group: str, path: Path) -> Path:
    """Mean |SHAP| of the ensemble's log-RV features for one asset class."""
    plt = _plt()
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
    plt = _plt()
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


def write_report(
    card: Scorecard, reports_dir: Path, baseline: dict[str, Any] | None = None
) -> dict[str, str]:
    """Write the markdown, JSON and PNGs of ``card``; returns their paths (``md``, ``json``, ``plots``)."""
    md_path, json_path, plot_dir = report_paths(reports_dir, card.name)
    plot_dir.mkdir(parents=True, exist_ok=True)
    summary = card.summary()
    plots: list[Path] = []
    lines = [
        f"# Evaluation `{safe_cell(card.name)}`",
        "",
        f"Written {datetime.now():%Y-%m-%d %H:%M}. Test windows (target sessions): "
        + "; ".join(f"{safe_cell(s)} {w[0]} .. {w[1]}" for s, w in (card.params.get("windows") or {}).items())
        + f". Refit every {card.params.get('refit_every')} sessions "
        f"({card.params.get('window')} window), folds per symbol {card.params.get('folds')}.",
        "",
        f"Every model is scored on the same {card.scored.select('symbol', 'target').unique().height} "
        "(symbol, target) pairs. Left out: "
        + ", ".join(f"{v} {k}" for k, v in card.dropped.items())
        + ". The base models also forecast "
        f"{card.params.get('stack_warmup', 0)} warm-up sessions before each test window (not scored) so "
        "the ensemble has earlier out-of-fold rows to learn from.",
        "",
        "## Verdict per asset",
        "",
        md_table(summary),
        "",
    ]
    for r in summary.iter_rows(named=True):
        verdict = (
            "beats"
            if r["beats_har"]
            else ("is level with" if r["best_model"] == BENCHMARK else "does not significantly beat")
        )
        lines.append(
            f"- **{safe_cell(r['symbol'])}**: the best model on QLIKE is `{safe_cell(r['best_model'])}` "
            f"({r['best_qlike']:.4f} vs HAR-RV {r['har_qlike']:.4f}); it {verdict} HAR-RV "
            f"(DM p = {safe_cell(r['dm_p_vs_har'])}). 95% VaR {'passes' if r['var95_pass'] else 'fails'} "
            f"Kupiec/Christoffersen (p = {safe_cell(r['var95_kupiec_p'])} / {safe_cell(r['var95_cc_p'])}); "
            f"99% VaR {'passes' if r['var99_pass'] else 'fails'} (p = {safe_cell(r['var99_kupiec_p'])} / "
            f"{safe_cell(r['var99_cc_p'])})."
        )
    lines += [
        "",
        "## Leaderboard",
        "",
        "DM: Diebold-Mariano on QLIKE against HAR-RV (HLN-corrected). "
        "MCS: 90% model confidence set (arch). Red rows lose to HAR-RV.",
        "",
    ]
    for symbol in sorted(card.leaderboard["symbol"].unique().to_list()):
        board = card.leaderboard.filter(pl.col("symbol") == symbol)
        red = {i for i, lose in enumerate(board["loses_to_har"].to_list()) if lose}
        lines += [
            f"### {safe_cell(symbol)}",
            "",
            md_table(
                board.with_columns(
                    pl.when(pl.col("in_mcs")).then(pl.lit("in")).otherwise(pl.lit("out")).alias("mcs")
                ),
                [
                    "model",
                    "n",
                    "qlike",
                    "mse",
                    "mae",
                    "rmse_sq_ret",
                    "r2_oos",
                    "mz_a",
                    "mz_b",
                    "mz_p",
                    "dm_stat",
                    "dm_p",
                    "mcs_p",
                    "mcs",
                ],
                red,
            ),
            "",
        ]
        best = board.row(0, named=True)["model"]
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
    lines += [
        "## Risk backtests",
        "",
        md_table(card.risk),
        "",
        "## Strategy (long/short/flat on the return quantiles)",
        "",
        md_table(card.strategy),
        "",
        "## Gates",
        "",
    ]
    gate_rows = (
        pl.DataFrame(
            [
                {k: (_short(json.dumps(v)) if isinstance(v, dict | list) else v) for k, v in g.items()}
                for g in card.gates
            ]
        )
        if card.gates
        else None
    )
    lines += [
        md_table(gate_rows) if gate_rows is not None else "No gate could be computed.",
        "",
        f"All gates passed: **{card.passed_gates}**.",
        "",
        "## Stacking",
        "",
    ]
    if card.stacking:
        for cls, d in card.stacking.items():
            best = f"`{safe_cell(d['best_single'])}` ({d['best_single_sharpe']:.3f})"
            head = f"- {safe_cell(cls)}: the stack's Sharpe {d['stacked_sharpe']:.3f}"
            if d["mode"] == "stacked":
                lines.append(
                    f"{head} beats the best single model {best} by >= 0.1: the `ensemble` serves it."
                )
            else:
                lines.append(
                    f"{head} does not beat the best single model {best} by 0.1: **fell back**; "
                    f"the `ensemble` predictor serves `{safe_cell(d['best_single'])}`."
                )
    else:
        lines.append("No ensemble in this evaluation.")
    if card.shap is not None and card.shap.height:
        lines += [
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
                lines.append("")
                lines.append(md_table(corr))
            lines.append("")
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
        lines += [
            "## Failed folds",
            "",
            md_table(
                pl.DataFrame(
                    [
                        {k: str(v) for k, v in f.items() if k in ("model", "symbol", "fold", "error")}
                        for f in card.failed
                    ]
                )
            ),
            "",
        ]
    md_path.write_text("\n".join(lines), encoding="utf-8")
    payload = {
        "name": card.name,
        "written": datetime.now().isoformat(timespec="seconds"),
        "params": card.params,
        "dropped": card.dropped,
        "summary": _json_ready(summary),
        "leaderboard": _json_ready(card.leaderboard),
        "risk": _json_ready(card.risk),
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
