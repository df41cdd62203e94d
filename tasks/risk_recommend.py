"""The model an evaluation recommends for risk: backtest passes first, QLIKE second.

A (model, asset) passes the risk backtests when its 95% and 99% VaR both pass Kupiec and
Christoffersen conditional coverage (p > :data:`PASS_LEVEL`) and its central 80% interval covers
within :data:`COVERAGE_TOLERANCE` of 80%. Raw models and their calibrated twins
(:mod:`tasks.risk_calibrated`) compete alike. Across the evaluated assets, candidates rank by

1. the number of assets where they pass every check,
2. the number of single checks passed (Kupiec and CC at each level, and coverage),
3. the median QLIKE ratio to HAR-RV of the raw model behind them (a twin forecasts the same variance),

and then by name, so the choice is deterministic. A model without rows on an asset, or that is not
served there (a stacked ensemble that fell back), fails every check on that asset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from tasks.risk_calibrated import base_expr

#: The stacked model's registry name (``tasks.scorecard.ENSEMBLE``).
ENSEMBLE = "ensemble"

#: p-value a VaR test must exceed to pass.
PASS_LEVEL = 0.05
#: Largest distance, in probability, of the 80% interval's observed coverage from 0.80.
COVERAGE_TOLERANCE = 0.03
#: The single checks of one (model, asset), each a Boolean column of :func:`risk_checks`.
CHECKS: tuple[str, ...] = ("var95_kupiec", "var95_cc", "var99_kupiec", "var99_cc", "cov80_ok")


def risk_checks(risk: pl.DataFrame) -> pl.DataFrame:
    """``risk`` (:data:`tasks.risk.RISK_COLUMNS`) with one Boolean per check, ``checks_passed`` and
    ``passes`` (every check)."""
    tests = [
        (pl.col(f"{v}_{t}_p").fill_null(0.0) > PASS_LEVEL).alias(f"{v}_{t}")
        for v in ("var95", "var99")
        for t in ("kupiec", "cc")
    ]
    inside = (pl.col("cov80") - 0.80).abs() <= COVERAGE_TOLERANCE + 1e-12  # 0.77 is within 3 pp
    cov = inside.fill_null(False).alias("cov80_ok")
    out = risk.with_columns(*tests, cov)
    return out.with_columns(
        pl.sum_horizontal(*(pl.col(c).cast(pl.Int64) for c in CHECKS)).alias("checks_passed"),
        pl.all_horizontal(*CHECKS).alias("passes"),
    )


def _qlike_ratios(board: pl.DataFrame) -> dict[str, float]:
    """Raw model -> median QLIKE ratio to HAR-RV across assets."""
    if board.height == 0 or "qlike_ratio" not in board.columns:
        return {}
    med = board.group_by("model").agg(pl.col("qlike_ratio").median())
    return {m: (float(r) if r is not None else math.nan) for m, r in med.iter_rows()}


def served_checks(risk: pl.DataFrame, not_served: Mapping[str, str] | None = None) -> pl.DataFrame:
    """:func:`risk_checks` with every check failed where a stacked ensemble (or its twin) is not
    served (``not_served``: symbol -> the model served instead)."""
    checked = risk_checks(risk).with_columns(base_expr().alias("base"))
    blocked = pl.col("symbol").is_in(list(not_served or {})) & (pl.col("base") == ENSEMBLE)
    return checked.with_columns(
        *(pl.when(blocked).then(False).otherwise(pl.col(c)).alias(c) for c in (*CHECKS, "passes")),
        pl.when(blocked).then(0).otherwise(pl.col("checks_passed")).alias("checks_passed"),
    )


def candidate_table(
    risk: pl.DataFrame, board: pl.DataFrame, not_served: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """Per candidate model: assets passing, checks passed and QLIKE ratio, best first.

    Parameters
    ----------
    risk : pl.DataFrame
        Risk backtest rows of raw models and calibrated twins.
    board : pl.DataFrame
        The QLIKE leaderboard (``model``, ``symbol``, ``qlike_ratio``).
    not_served : Mapping[str, str] | None
        Symbol -> model that a stacked ensemble serves instead of itself there; the ensemble and its
        twins then fail every check on that symbol.
    """
    checked = served_checks(risk, not_served)
    n_assets = checked["symbol"].n_unique()
    ratios = _qlike_ratios(board)
    table = checked.group_by("model", "base").agg(
        pl.col("passes").sum().alias("assets_passing"),
        pl.col("checks_passed").sum().alias("checks_passed"),
        pl.col("var95_rate").median().alias("median_var95_rate"),
        pl.col("var99_rate").median().alias("median_var99_rate"),
        pl.col("cov80").median().alias("median_cov80"),
    )
    return (
        table.with_columns(
            pl.lit(n_assets).alias("n_assets"),
            pl.col("base")
            .replace_strict(ratios, default=math.nan, return_dtype=pl.Float64)
            .alias("qlike_ratio"),
        )
        .drop("base")
        .sort(
            ["assets_passing", "checks_passed", "qlike_ratio", "model"],
            descending=[True, True, False, False],
            nulls_last=True,
        )
    )


def _sentence(best: dict[str, Any]) -> str:
    model, k, n = best["model"], best["assets_passing"], best["n_assets"]
    ratio = best["qlike_ratio"]
    qlike = "" if ratio is None or math.isnan(ratio) else f"; QLIKE {ratio:.3f} x HAR-RV"
    if k == 0:
        return (
            f"No model passes every risk backtest on any asset; the closest is `{model}` "
            f"({best['checks_passed']} of {n * len(CHECKS)} checks{qlike})."
        )
    return (
        f"Recommended for risk: `{model}` (VaR 95% and 99% pass Kupiec and Christoffersen CC, and the "
        f"80% interval covers within {COVERAGE_TOLERANCE * 100:.0f} pp, on {k} of {n} assets{qlike})."
    )


def recommend_risk_model(
    risk: pl.DataFrame, board: pl.DataFrame, not_served: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The recommended risk model across assets (see the module docstring).

    Returns
    -------
    dict
        ``model`` (None when nothing was backtested), ``assets_passing``, ``n_assets``,
        ``checks_passed``, ``qlike_ratio``, ``failing_assets`` and ``sentence``; ``candidates``: the
        ranked :func:`candidate_table` as rows.
    """
    if risk.height == 0:
        return {"model": None, "sentence": "No risk backtest: no model has scored returns.", "candidates": []}
    table = candidate_table(risk, board, not_served)
    best = table.row(0, named=True)
    checked = served_checks(risk.filter(pl.col("model") == best["model"]), not_served)
    passing = set(checked.filter(pl.col("passes"))["symbol"].to_list())
    failing = sorted(set(risk["symbol"].to_list()) - passing)
    return {
        "model": best["model"],
        "assets_passing": int(best["assets_passing"]),
        "n_assets": int(best["n_assets"]),
        "checks_passed": int(best["checks_passed"]),
        "qlike_ratio": best["qlike_ratio"],
        "failing_assets": failing,
        "sentence": _sentence(best),
        "candidates": table.to_dicts(),
    }
