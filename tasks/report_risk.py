"""The risk section of the evaluation report: recommendation, raw vs calibrated, stress, reliability.

Raw models and their calibrated twins (``<model>+<method>``, :mod:`tasks.risk_calibrated`) share every
table. The section opens with the recommended risk model (:mod:`tasks.risk_recommend`) and the
ranking behind it, then a raw-vs-calibrated comparison per model, the reliability plot (observed
minus nominal share below each predicted quantile), the VaR, ES and coverage tables, the stress
windows (:mod:`tasks.risk_stress`) and the recommended model's VaR plot per asset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tasks.report_format import md_table, pct_cell, plt_module, safe_cell
from tasks.risk_calibrated import base_expr, base_model, calibration_expr, calibration_of
from tasks.risk_recommend import CHECKS, COVERAGE_TOLERANCE, risk_checks
from tasks.scorecard import Scorecard


def var_table(risk: pl.DataFrame, level: int) -> str:
    """Breaches and tests of the ``level``% VaR (99%: with the Basel traffic light)."""
    p = f"var{level}"
    frame = risk.select(
        "model",
        "symbol",
        "n",
        pl.col(f"{p}_breaches").alias("breaches"),
        pct_cell(f"{p}_rate").alias("breach rate"),
        pl.lit(f"{100 - level}%").alias("expected"),
        pl.col(f"{p}_kupiec_p").alias("Kupiec p"),
        pl.col(f"{p}_ind_p").alias("independence p"),
        pl.col(f"{p}_cc_p").alias("CC p"),
        pl.when(pl.col(f"{p}_pass")).then(pl.lit("pass")).otherwise(pl.lit("FAIL")).alias("verdict"),
    )
    if level == 99 and "basel_zone" in risk.columns:
        frame = frame.with_columns(
            risk["basel_zone"].alias("Basel zone"),
            (risk["basel_exceptions"].cast(pl.String) + " / " + risk["basel_n"].cast(pl.String)).alias(
                "Basel exceptions"
            ),
        )
    return md_table(frame)


def es_table(risk: pl.DataFrame) -> str:
    """Predicted ES and the Acerbi-Székely Z2 test per level."""
    cols = ["model", "symbol"]
    exprs = []
    for lvl, label in (("es975", "97.5%"), ("es99", "99%")):
        if f"{lvl}_mean" in risk.columns:
            exprs += [
                pl.col(f"{lvl}_mean").alias(f"ES {label} (mean)"),
                pl.col(f"{lvl}_z2").alias(f"Z2 {label}"),
                pl.col(f"{lvl}_p").alias(f"p {label}"),
            ]
    return md_table(risk.select(*cols, *exprs))


def coverage_table(risk: pl.DataFrame) -> str:
    """Observed coverage of the central 80% and 90% intervals against nominal, with pinball loss."""
    return md_table(
        risk.select(
            "model",
            "symbol",
            pct_cell("cov80").alias("80% interval covered"),
            pl.col("pinball80").alias("pinball 80%"),
            pct_cell("cov90").alias("90% interval covered"),
            pl.col("pinball90").alias("pinball 90%"),
        )
    )


# ------------------------------------------------------------------------------------ recommendation
def candidates_table(choice: dict[str, Any], limit: int = 12) -> str:
    """The ranking behind the recommendation (best first, at most ``limit`` rows)."""
    rows = pl.DataFrame(choice.get("candidates") or [])
    if rows.height == 0:
        return "No candidate."
    rows = rows.head(limit)
    return md_table(
        rows.select(
            "model",
            (pl.col("assets_passing").cast(pl.String) + " / " + pl.col("n_assets").cast(pl.String)).alias(
                "assets passing every check"
            ),
            (
                pl.col("checks_passed").cast(pl.String)
                + " / "
                + (pl.col("n_assets") * len(CHECKS)).cast(pl.String)
            ).alias("checks passed"),
            pct_cell("median_var95_rate").alias("median 95% breach rate"),
            pct_cell("median_var99_rate").alias("median 99% breach rate"),
            pct_cell("median_cov80").alias("median 80% coverage"),
            pl.col("qlike_ratio").alias("QLIKE / HAR-RV"),
        )
    )


def calibration_gain(risk: pl.DataFrame) -> pl.DataFrame:
    """Per raw model and its twin(s): assets passing every check and the median rates, side by side."""
    checked = risk_checks(risk).with_columns(
        base_expr().alias("base"),
        calibration_expr().alias("calibration"),
    )
    return (
        checked.group_by("base", "calibration")
        .agg(
            pl.col("passes").sum().alias("passing"),
            pl.len().alias("assets"),
            pl.col("var95_rate").median().alias("r95"),
            pl.col("var99_rate").median().alias("r99"),
            pl.col("cov80").median().alias("c80"),
        )
        .sort("base", pl.col("calibration") != "raw", "calibration")
    )


def gain_table(risk: pl.DataFrame) -> str:
    """:func:`calibration_gain` as markdown."""
    gain = calibration_gain(risk)
    return md_table(
        gain.select(
            pl.col("base").alias("model"),
            "calibration",
            (pl.col("passing").cast(pl.String) + " / " + pl.col("assets").cast(pl.String)).alias(
                "assets passing every check"
            ),
            pct_cell("r95").alias("median 95% breach rate"),
            pct_cell("r99").alias("median 99% breach rate"),
            pct_cell("c80").alias("median 80% coverage"),
        )
    )


# ------------------------------------------------------------------------------------------ plots
def plot_reliability(rel: pl.DataFrame, path: Path, max_models: int = 16) -> Path | None:
    """Per raw model: observed minus nominal share of returns below each predicted quantile.

    Raw (dashed) and calibrated (solid) lines share a panel; the grey band is the 95% binomial range
    of a perfectly calibrated model on the same number of returns.
    """
    if rel.height == 0:
        return None
    plt = plt_module()
    bases = sorted({base_model(m) for m in rel["model"].unique().to_list()})[:max_models]
    ncols = min(4, len(bases))
    nrows = -(-len(bases) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False, sharey=True)
    for ax, base in zip(axes.flat, bases, strict=False):
        _reliability_panel(ax, rel.filter(base_expr() == base))
        ax.set_title(base, fontsize=9)
    for ax in list(axes.flat)[len(bases) :]:
        ax.set_visible(False)
    fig.suptitle("Reliability: observed share below the predicted quantile minus its level (pp)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _reliability_panel(ax: Any, rel: pl.DataFrame) -> None:
    levels = sorted(rel["level"].unique().to_list())
    x = np.arange(len(levels))
    n = max(int(rel["n"].cast(pl.Int64).max() or 1), 1)  # type: ignore[arg-type]
    band = [196 * np.sqrt(lv * (1 - lv) / n) for lv in levels]
    ax.fill_between(x, [-b for b in band], band, color="0.85", label="95% range if calibrated")
    ax.axhline(0.0, color="0.4", lw=0.6)
    for model in sorted(rel["model"].unique().to_list()):
        part = rel.filter(pl.col("model") == model).sort("level")
        gap = (part["observed"].fill_null(np.nan).to_numpy() - part["level"].to_numpy()) * 100
        raw = calibration_of(model) == "raw"
        ax.plot(x, gap, ls="--" if raw else "-", marker="o", ms=3, lw=1, label=calibration_of(model))
    ax.set_xticks(x, [f"{lv:g}" for lv in levels], fontsize=6, rotation=45)
    ax.set_xlabel("quantile level", fontsize=7)
    ax.legend(fontsize=6)


def plot_risk_var(frame: pl.DataFrame, symbol: str, model: str, path: Path) -> Path:
    """Returns with the model's 95% and 99% VaR lines; breaches marked."""
    plt = plt_module()
    part = frame.filter((pl.col("symbol") == symbol) & (pl.col("model") == model)).sort("target")
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


# ------------------------------------------------------------------------------------------ stress
def stress_table(stress: pl.DataFrame, model: str) -> str:
    """Per window and asset: the ``model``'s breaches and tests at 95% and 99%."""
    rows = stress.filter(pl.col("model") == model)
    if rows.height == 0:
        return f"`{safe_cell(model)}` has no rows inside a stress window."
    return md_table(
        rows.sort("window", "symbol").select(
            "window",
            "symbol",
            "n",
            pl.col("var95_breaches").alias("95% breaches"),
            pct_cell("var95_rate").alias("95% rate"),
            pl.col("var95_kupiec_p").alias("95% Kupiec p"),
            pl.col("var95_cc_p").alias("95% CC p"),
            pl.col("var99_breaches").alias("99% breaches"),
            pct_cell("var99_rate").alias("99% rate"),
            pl.col("var99_kupiec_p").alias("99% Kupiec p"),
            pl.col("var99_cc_p").alias("99% CC p"),
            pct_cell("cov80").alias("80% coverage"),
        )  # fmt: skip
    )


def stress_summary(stress: pl.DataFrame) -> str:
    """Per window and model: assets, breaches against the number expected, and assets passing."""
    agg = (
        stress.group_by("window", "model")
        .agg(
            pl.len().alias("assets"),
            pl.col("n").sum().alias("targets"),
            pl.col("var95_breaches").sum().alias("b95"),
            pl.col("var99_breaches").sum().alias("b99"),
            pl.col("var95_pass").sum().alias("p95"),
            pl.col("var99_pass").sum().alias("p99"),
        )
        .sort("window", "model")
    )
    return md_table(
        agg.select(
            "window",
            "model",
            "assets",
            "targets",
            (
                pl.col("b95").cast(pl.String)
                + " ("
                + (pl.col("targets") * 0.05).round(1).cast(pl.String)
                + ")"
            ).alias("95% breaches (expected)"),
            (
                pl.col("b99").cast(pl.String)
                + " ("
                + (pl.col("targets") * 0.01).round(1).cast(pl.String)
                + ")"
            ).alias("99% breaches (expected)"),
            pl.col("p95").alias("assets passing 95%"),
            pl.col("p99").alias("assets passing 99%"),
        )  # fmt: skip
    )


def _stress_lines(card: Scorecard, model: str | None) -> list[str]:
    stress = card.risk_stress
    lines = ["### Stress windows", ""]
    if stress is None or stress.height == 0:
        return lines + ["No scored target falls in a stress window (2008, March 2020).", ""]
    lines += [
        "Backtested on their own: calendar 2008 and March 2020. A few weeks of data have little power "
        "at 99%, so read these as how the models behave when volatility jumps.",
        "",
        stress_summary(stress),
        "",
    ]
    if model:
        lines += [
            f"The recommended model, `{safe_cell(model)}`, per asset:",
            "",
            stress_table(stress, model),
            "",
        ]
    return lines


# ------------------------------------------------------------------------------------------ section
_INTRO = (
    "A breach is a return below the VaR (the predicted 5% or 1% return quantile). Kupiec tests the "
    "breach rate, Christoffersen independence their clustering, CC both; a verdict passes when "
    "Kupiec and CC p > 0.05. `<model>+<method>` is the model's return quantiles calibrated online "
    "(each row uses only returns realized by its origin): `aci` adaptive conformal inference, "
    "`faci` its tuning-free version, `fhs` filtered historical simulation, `evt` GPD tails. Every "
    "test statistic is in the JSON report."
)


def _recommendation_lines(card: Scorecard) -> list[str]:
    choice = card.risk_choice
    lines = ["### Recommended risk model", "", f"**{choice.get('sentence', 'No recommendation.')}**", ""]
    if choice.get("failing_assets"):
        failing = ", ".join(safe_cell(s) for s in choice["failing_assets"])
        lines += [f"It fails at least one check on: {failing}.", ""]
    lines += [
        "Chosen on the number of assets where VaR 95% and 99% pass Kupiec and CC and the 80% interval "
        f"covers within {COVERAGE_TOLERANCE * 100:.0f} pp, then on checks passed, then on QLIKE.",
        "",
        candidates_table(choice),
        "",
    ]
    return lines


def _plot_lines(card: Scorecard, plot_dir: Path, plots: list[Path]) -> list[str]:
    lines: list[str] = []
    if card.reliability is not None:
        path = plot_reliability(card.reliability, plot_dir / "reliability.png")
        if path is not None:
            plots.append(path)
            lines += ["### Reliability", "", f"![reliability]({plot_dir.name}/{path.name})", ""]
    model = card.risk_choice.get("model")
    if model and card.risk_input is not None:
        lines += [f"### `{safe_cell(model)}`: VaR per asset", ""]
        for symbol in sorted(card.risk_input["symbol"].unique().to_list()):
            path = plot_risk_var(card.risk_input, symbol, model, plot_dir / f"risk-var-{symbol}.png")
            plots.append(path)
            lines.append(f"![risk var {safe_cell(symbol)}]({plot_dir.name}/{path.name})")
        lines.append("")
    return lines


def risk_lines(card: Scorecard, plot_dir: Path, plots: list[Path]) -> list[str]:
    """The report's risk section (see the module docstring); PNGs go to ``plot_dir`` and ``plots``."""
    risk = card.risk
    lines = ["## Risk backtests", "", _INTRO, ""]
    lines += _recommendation_lines(card)
    lines += ["### Raw and calibrated", "", gain_table(risk), ""]
    lines += _plot_lines(card, plot_dir, plots)
    lines += ["### VaR 95%", "", var_table(risk, 95), ""]
    lines += [
        "### VaR 99% (with the Basel traffic light over the last 250 sessions)",
        "",
        var_table(risk, 99),
        "",
    ]
    lines += ["### Expected shortfall (Acerbi-Székely Z2; a small p means the ES is too mild)", ""]
    lines += [es_table(risk), "", "### Interval coverage (nominal 80% and 90%)", "", coverage_table(risk), ""]
    return lines + _stress_lines(card, card.risk_choice.get("model"))
