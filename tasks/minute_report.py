"""The minute-mode report: markdown, JSON and three PNGs of a :class:`tasks.minute_risk.MinuteRiskResult`.

``reports/minute-<symbol>-<run_id>.md`` / ``.json`` and a folder of plots:

- ``var_band.png``: hold-out returns with the recommended path's VaR 99 / VaR 95 and the 80% band;
- ``profile.png``: the time-of-day volatility profile fitted on the training window;
- ``reliability.png``: per quantile level, the observed share of returns below the quantile, for every
  (model, variant), against the diagonal.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.schema import QUANTILE_COLUMNS, QUANTILES
from tasks.minute_risk import MinuteRiskResult
from tasks.report_format import plt_module
from tasks.risk_recommend import CHECKS

_PLOT_POINTS = 20_000  # the VaR plot shows at most this many minutes (the last ones)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def plot_var_band(result: MinuteRiskResult, model: str, variant: str, path: Path) -> Path:
    """Hold-out returns with VaR 99, VaR 95 and the 80% band of one (model, variant); breaches marked."""
    plt = plt_module()
    rows = result.predictions.filter((pl.col("model") == model) & (pl.col("variant") == variant)).sort("ts")
    rows = rows.tail(_PLOT_POINTS)
    x = np.arange(rows.height)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.fill_between(x, rows["q10"], rows["q90"], color="tab:blue", alpha=0.25, lw=0, label="80% band")
    ax.plot(x, rows["ret"], color="black", lw=0.4, label="1-min return")
    ax.plot(x, rows["var95"], color="tab:orange", lw=0.6, label="VaR 95")
    ax.plot(x, rows["var99"], color="tab:red", lw=0.6, label="VaR 99")
    hit = (rows["ret"] < rows["var99"]).to_numpy()
    ax.scatter(x[hit], rows["ret"].to_numpy()[hit], s=8, color="tab:red", zorder=3, label="99% breach")
    ax.set_xlabel(f"hold-out minute (last {rows.height:,}; {rows['ts'][0]} .. {rows['ts'][-1]})")
    ax.set_ylabel("log return")
    ax.set_title(f"{result.spec.symbol}: {model} ({variant})")
    ax.legend(loc="lower left", fontsize=8, ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_profile(result: MinuteRiskResult, path: Path) -> Path:
    """The fitted time-of-day factor(s) over the day, in the profile's time zone."""
    plt = plt_module()
    prof = result.profile
    hours = np.arange(prof.n_buckets) * prof.settings.bucket_minutes / 60.0
    fig, ax = plt.subplots(figsize=(10, 3.8))
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    for d in range(prof.factors.shape[0]):
        label = days[d] if prof.factors.shape[0] > 1 else "all days"
        ax.plot(hours, prof.factors[d], lw=1, label=label)
    ax.set_xlabel(f"time of day ({prof.timezone})")
    ax.set_ylabel("volatility factor s(b)")
    ax.set_xlim(0, 24)
    ax.set_title(
        f"{result.spec.symbol}: intraday volatility profile (training window, {prof.n_train:,} returns)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_reliability(result: MinuteRiskResult, path: Path) -> Path:
    """Observed share below each predicted quantile against its level, per (model, variant)."""
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    for row in result.summary:
        obs = [row["reliability"][f"{lvl:g}"] for lvl in QUANTILES]
        ax.plot(QUANTILES, obs, marker="o", ms=3, lw=1, label=f"{row['model']} {row['variant']}")
    ax.set_xlabel("quantile level")
    ax.set_ylabel("observed share of returns below")
    ax.set_title(f"{result.spec.symbol}: reliability")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


_TABLE = (
    ("model", "model"), ("variant", "variant"), ("n", "n"),
    ("var99_rate", "VaR99 rate"), ("var99_kupiec_p", "Kupiec p"), ("var99_ind_p", "ind p"),
    ("var99_cc_p", "CC p"), ("var99_pass", "99%"),
    ("var95_rate", "VaR95 rate"), ("var95_kupiec_p", "Kupiec p"), ("var95_cc_p", "CC p"),
    ("var95_pass", "95%"),
    ("es975_z2", "ES97.5 Z2"), ("es975_p", "Z2 p"), ("cov80", "cov80"), ("cov90", "cov90"),
    ("qlike", "QLIKE"),
)  # fmt: skip


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """The markdown table of every (model, variant)."""
    lines = ["| " + " | ".join(h for _, h in _TABLE) + " |", "|" + "---|" * len(_TABLE)]
    for row in rows:
        lines.append(
            "| " + " | ".join(_fmt(row.get(k), 4 if k.endswith("_rate") else 3) for k, _ in _TABLE) + " |"
        )
    return lines


def _headline(result: MinuteRiskResult) -> str:
    rec = result.recommended
    if rec is None:
        return "No model was scored."
    verdict = "passes" if rec["var99_pass"] else "does NOT pass"
    return (
        f"Recommended: **{rec['model']} ({rec['variant']})**, {rec.get('checks_passed', '?')} of "
        f"{len(CHECKS)} checks passed (Kupiec and Christoffersen CC at 95% and 99%, p > 0.05; 80% coverage "
        f"within 3 pp; most checks first, then lowest QLIKE): 99% VaR {verdict} with a breach rate of "
        f"{_fmt(rec['var99_rate'], 4)}; 95% {'passes' if rec['var95_pass'] else 'fails'} "
        f"({_fmt(rec['var95_rate'], 4)}); 80% coverage {_fmt(rec['cov80'])}. Chosen on this hold-out from "
        f"{rec.get('candidates', '?')} (model, variant) rows, {rec.get('candidates_passing', '?')} of which "
        "pass every check."
    )


def _markdown(result: MinuteRiskResult, run_id: str, plots: dict[str, str]) -> str:
    m, spec = result.meta, result.spec
    lines = [
        f"# Minute-mode risk backtest: {spec.symbol}",
        "",
        _headline(result),
        "",
        f"Run `{run_id}`; {m['n_returns']:,} one-minute returns ({m['dropped_gap_returns']:,} across gaps "
        f"dropped); CHRONOLOGICAL split: train {m['train_start']} .. {m['train_end']} ({m['n_train']:,}), "
        f"hold-out {m['test_start']} .. {m['test_end']} ({m['n_test']:,}). Seasonality profile fitted on the "
        f"training window only ({spec.timezone} clock); online calibration `{spec.calibration}` uses "
        f"breaches before each minute only. Wall time {m['wall_s']:.1f} s.",
        "",
        "## VaR, ES and interval backtests (hold-out)",
        "",
        *summary_table(result.summary),
        "",
        "`raw`: the model on raw returns; `deseasonalised`: time-of-day profile removed before fitting and "
        "put back on the forecast; `calibrated`: deseasonalised plus online calibration. A level passes when "
        "Kupiec and Christoffersen CC p-values are both above 0.05.",
        "",
        "## Plots",
        "",
        *(f"![{name}]({p})" for name, p in plots.items()),
        "",
    ]
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_minute_report(result: MinuteRiskResult, reports_dir: Path, run_id: str) -> dict[str, str]:
    """Write the markdown, JSON and PNGs of ``result``; returns their paths (``md``, ``json``, ``plots``)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in result.spec.symbol)
    base = Path(reports_dir) / f"minute-{safe}-{run_id}"
    base.mkdir(parents=True, exist_ok=True)
    rec = result.recommended or {"model": result.spec.models[0], "variant": "calibrated"}
    plots = {
        "VaR band": plot_var_band(result, rec["model"], rec["variant"], base / "var_band.png"),
        "seasonality profile": plot_profile(result, base / "profile.png"),
        "reliability": plot_reliability(result, base / "reliability.png"),
    }
    rel = {k: f"{base.name}/{p.name}" for k, p in plots.items()}
    md, js = base.with_suffix(".md"), base.with_suffix(".json")
    md.write_text(_markdown(result, run_id, rel), encoding="utf-8")
    payload = {
        "run_id": run_id,
        "written": datetime.now().isoformat(timespec="seconds"),
        "spec": result.spec.as_dict(),
        "meta": result.meta,
        "recommended": result.recommended,
        "summary": result.summary,
        "profile": result.profile.as_dict(),
        "quantile_columns": list(QUANTILE_COLUMNS),
    }
    js.write_text(json.dumps(_finite(payload), indent=1, default=str), encoding="utf-8")
    return {"md": str(md), "json": str(js), "plots": str(base)}
