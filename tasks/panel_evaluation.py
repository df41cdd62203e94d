"""Evaluation across a panel of assets: one verdict from many per-asset comparisons with HAR-RV.

Pure functions over the common scoring set (``tasks.evaluate.common_scoring_set``) and the per-asset
leaderboard (``tasks.evaluate.leaderboard``):

- :func:`pooled_differentials` and :func:`panel_diebold_mariano`: the panel DM test on the
  cross-sectional mean loss differential against HAR-RV.
- :func:`panel_loss_table` and :func:`panel_mcs`: the Model Confidence Set on the panel-average loss.
- :func:`panel_summary`: per model, the median QLIKE ratio to HAR-RV across assets, how many assets it
  beats significantly, the panel DM and the panel MCS.
- :func:`panel_headline`: the evaluation's one-sentence headline, with the assets used to choose
  settings (``tuned_on``) counted apart from the out-of-sample ones.

QLIKE depends on the forecast only through ``actual / forecast``, so it is free of each asset's
variance level: a cross-sectional mean of QLIKE losses weighs every asset alike, whereas an MSE mean
would be the most volatile asset's MSE. The panel figures therefore use QLIKE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from core.errors import ConfigError
from tasks.evaluate import BENCHMARK, TestStat, loss_series, model_confidence_set, newey_west_variance

#: The loss every panel figure is computed on (scale-free across assets; see the module docstring).
PANEL_LOSS = "qlike"
#: Significance level of "beats HAR-RV" (per-asset DM, HLN-corrected).
SIGNIFICANCE = 0.05
#: The issue's goal on never-seen assets: median QLIKE ratio at most this ...
GOAL_MEDIAN_RATIO = 0.93
#: ... and significant on at least this share of them.
GOAL_SHARE_SIGNIFICANT = 2 / 3


def newey_west_lags(n: int) -> int:
    """Newey-West (1994) rule-of-thumb bandwidth ``floor(4 (n / 100) ** (2/9))`` (5 for 500 dates)."""
    return int(math.floor(4.0 * (max(n, 1) / 100.0) ** (2.0 / 9.0)))


def _losses(scored: pl.DataFrame, loss: str) -> pl.DataFrame:
    """(symbol, target, model, loss) of every scored row."""
    return scored.select("symbol", "target", "model").with_columns(
        pl.Series("loss", loss_series(scored, loss), dtype=pl.Float64)
    )


def pooled_differentials(
    scored: pl.DataFrame, model: str, bench: str = BENCHMARK, loss: str = PANEL_LOSS
) -> pl.DataFrame:
    """Per target date, the mean over assets of ``d_it = L(model)_it - L(bench)_it``.

    Only (symbol, target) pairs that both models forecast enter; on the common scoring set that is
    every scored pair. Columns: ``target``, ``d`` (the cross-sectional mean), ``n_assets``.
    """
    losses = _losses(scored, loss)
    mine = losses.filter(pl.col("model") == model).select("symbol", "target", pl.col("loss").alias("_m"))
    ref = losses.filter(pl.col("model") == bench).select("symbol", "target", pl.col("loss").alias("_b"))
    paired = mine.join(ref, on=["symbol", "target"], how="inner")
    return (
        paired.with_columns((pl.col("_m") - pl.col("_b")).alias("d"))
        .filter(pl.col("d").is_finite())
        .group_by("target")
        .agg(pl.col("d").mean(), pl.len().alias("n_assets"))
        .sort("target")
    )


def panel_diebold_mariano(
    differentials: np.ndarray, lags: int | None = None, alternative: str = "two-sided"
) -> TestStat:
    """HAC t-test that the pooled loss differential has mean zero (a panel Diebold-Mariano test).

    ``differentials`` is :func:`pooled_differentials`'s ``d``: one cross-sectional mean per date.
    The statistic is ``mean(d) / sqrt(LRV / T)`` with a Newey-West (Bartlett) long-run variance over
    ``lags`` lags (default :func:`newey_west_lags`), compared with Student's t on ``T - 1`` degrees of
    freedom. Negative: the model's loss is smaller than the benchmark's. ``alternative`` is
    ``"two-sided"`` or ``"less"`` (H1: the model's mean loss is lower; a model that is worse gets a p
    near 1).

    Assumes the series of cross-sectional means is covariance-stationary with weak serial dependence
    (volatility clustering makes it autocorrelated, hence HAC rather than the per-asset ``h - 1``
    lags). Averaging over assets first makes any contemporaneous correlation across assets harmless:
    the test never treats the assets as independent, so its power rises with the number of assets only
    as far as their losses really diversify. It tests the panel-average differential, not each asset:
    a model may win on the average and lose on some assets. With an unbalanced panel (calendars that
    differ) each date weighs alike whatever its number of assets.
    """
    if alternative not in ("two-sided", "less"):
        raise ConfigError(f"alternative {alternative!r}: use 'two-sided' or 'less'")
    d = np.asarray(differentials, float)
    d = d[np.isfinite(d)]
    n = d.size
    if n < 10:
        return TestStat(math.nan, math.nan, f"only {n} dates")
    lrv = newey_west_variance(d, newey_west_lags(n) if lags is None else lags)
    mean_d = float(np.mean(d))
    if lrv <= 1e-300:
        if mean_d == 0:
            return TestStat(math.nan, math.nan, "identical losses")
        one_sided = 0.0 if mean_d < 0 else 1.0
        p = one_sided if alternative == "less" else 0.0
        return TestStat(math.copysign(math.inf, mean_d), p, "constant loss differential")
    stat = mean_d / math.sqrt(lrv / n)
    if alternative == "less":
        return TestStat(stat, float(stats.t.cdf(stat, df=n - 1)))
    return TestStat(stat, 2.0 * float(stats.t.sf(abs(stat), df=n - 1)))


def panel_loss_table(scored: pl.DataFrame, loss: str = PANEL_LOSS) -> pl.DataFrame:
    """Per target date, each model's mean loss over the assets scored that date (one column a model).

    Dates where a model has no loss are dropped, so every column covers the same dates.
    """
    mean = _losses(scored, loss).group_by("target", "model").agg(pl.col("loss").mean())
    wide = mean.pivot(on="model", index="target", values="loss").sort("target")
    models = sorted(c for c in wide.columns if c != "target")
    return wide.select("target", *models).drop_nulls().filter(pl.all_horizontal(pl.col(models).is_finite()))


def panel_mcs(table: pl.DataFrame, size: float = 0.10, reps: int = 1000) -> dict[str, float]:
    """MCS p-value of every model on the panel-average loss (``arch.bootstrap.MCS``, as per asset)."""
    losses = table.drop("target")
    if losses.height < 10:
        return {m: math.nan for m in losses.columns}
    return model_confidence_set(losses, size=size, reps=reps)


def ratio_summary(board: pl.DataFrame) -> pl.DataFrame:
    """Per model from the per-asset leaderboard: assets, median QLIKE ratio, significant wins, losses."""
    return board.group_by("model").agg(
        pl.col("symbol").n_unique().alias("n_assets"),
        pl.col("qlike_ratio").filter(pl.col("qlike_ratio").is_finite()).median().alias("median_qlike_ratio"),
        pl.col("beats_har").sum().cast(pl.Int64).alias("beats_har_assets"),
        (pl.col("qlike_ratio") > 1.0).sum().cast(pl.Int64).alias("loses_to_har_assets"),
    )


def panel_summary(
    scored: pl.DataFrame, board: pl.DataFrame, mcs_size: float = 0.10, mcs_reps: int = 1000
) -> pl.DataFrame:
    """Per model, across the panel of assets.

    Columns: ``model``, ``n_assets``, ``median_qlike_ratio`` (median over assets of the model's mean
    QLIKE over HAR-RV's), ``beats_har_assets`` (per-asset DM p < 0.05 and lower QLIKE),
    ``loses_to_har_assets`` (ratio > 1), ``panel_qlike`` (mean of the panel-average QLIKE),
    ``panel_dm_stat``, ``panel_dm_p`` (:func:`panel_diebold_mariano` against HAR-RV, one-sided: H1 the
    model's loss is lower), ``n_dates``,
    ``panel_mcs_p`` and ``in_panel_mcs`` (:func:`panel_mcs`). Sorted by median ratio.
    """
    table = panel_loss_table(scored)
    mcs = panel_mcs(table, size=mcs_size, reps=mcs_reps)
    has_bench = BENCHMARK in table.columns
    rows: list[dict[str, Any]] = []
    for model in [c for c in table.columns if c != "target"]:
        pooled = pooled_differentials(scored, model) if has_bench and model != BENCHMARK else None
        dm = (
            panel_diebold_mariano(pooled["d"].to_numpy(), alternative="less")
            if pooled is not None
            else TestStat(math.nan, math.nan)
        )
        rows.append(
            {
                "model": model,
                "panel_qlike": float(table[model].mean()) if table.height else math.nan,  # type: ignore[arg-type]
                "panel_dm_stat": dm.statistic,
                "panel_dm_p": dm.pvalue,
                "n_dates": pooled.height if pooled is not None else table.height,
                "panel_mcs_p": mcs.get(model, math.nan),
                "in_panel_mcs": bool(mcs.get(model, 0.0) >= mcs_size),
            }
        )
    tests = pl.DataFrame(rows, schema_overrides={"n_dates": pl.Int64})
    return (
        ratio_summary(board)
        .join(tests, on="model", how="left")
        .with_columns(pl.col("in_panel_mcs").fill_null(False))
        .sort("median_qlike_ratio", "model", nulls_last=True)
    )


# ------------------------------------------------------------------------------------------ headline
def settings_line(assets: Sequence[str], tuned_on: Sequence[str] | None) -> str:
    """Which assets were used to choose settings, and which are out-of-sample, in one sentence."""
    if not tuned_on:
        return "No asset of this evaluation was used to choose settings."
    tuned = sorted(dict.fromkeys(tuned_on))
    others = [a for a in sorted(assets) if a not in set(tuned)]
    outside = "none" if not others else f"the others ({', '.join(others)})"
    return f"Settings were chosen on: {', '.join(tuned)} (in-sample for these); out-of-sample: {outside}."


def _best_row(panel: pl.DataFrame) -> dict[str, Any] | None:
    """The challenger (not HAR-RV) with the lowest median ratio; more significant wins break ties."""
    rivals = panel.filter((pl.col("model") != BENCHMARK) & pl.col("median_qlike_ratio").is_finite())
    if rivals.height == 0:
        return None
    ranked = rivals.sort(["median_qlike_ratio", "beats_har_assets"], descending=[False, True])
    return ranked.row(0, named=True)


def _subset_figures(board: pl.DataFrame, model: str, assets: Sequence[str]) -> dict[str, Any]:
    """The median ratio and significant wins of ``model`` over ``assets``."""
    rows = board.filter((pl.col("model") == model) & pl.col("symbol").is_in(list(assets)))
    ratios = rows["qlike_ratio"].filter(rows["qlike_ratio"].is_finite())
    median = float(ratios.median()) if ratios.len() else math.nan  # type: ignore[arg-type]
    wins = int(rows["beats_har"].sum())
    n = len(assets)
    met = bool(n) and median <= GOAL_MEDIAN_RATIO and wins >= GOAL_SHARE_SIGNIFICANT * n - 1e-9
    return {
        "n_assets": n,
        "assets": list(assets),
        "median_qlike_ratio": median,
        "beats_har": wins,
        "goal_met": met,
    }


def _sentence(best: str, median: float, wins: int, n: int) -> str:
    plural = "asset" if n == 1 else "assets"
    text = (
        f"Best: {best}, median QLIKE {median:.3f} x HAR over {n} {plural}; "
        f"beats HAR significantly (DM p < 0.05) on {wins} of {n}."
    )
    return text + (" No model has a median QLIKE below that of HAR-RV." if median >= 1.0 else "")


def _tuning_sentence(in_sample: list[str], oos: dict[str, Any], best: str) -> str:
    if not in_sample:
        return ""
    head = (
        f" Caution: {len(in_sample)} of the evaluated assets ({', '.join(in_sample)}) were used to choose "
        "settings (in-sample)"
    )
    if not oos["n_assets"]:
        return head + "; no asset of this evaluation is out-of-sample."
    return head + (
        f"; on the {oos['n_assets']} out-of-sample assets {best} has median QLIKE "
        f"{oos['median_qlike_ratio']:.3f} x HAR and beats HAR significantly on {oos['beats_har']} "
        f"of {oos['n_assets']}."
    )


def panel_headline(
    panel: pl.DataFrame, board: pl.DataFrame, tuned_on: Sequence[str] | None = None
) -> dict[str, Any]:
    """The evaluation's headline: the best model over the evaluated assets, and the tuning caveat.

    Returns
    -------
    dict
        ``sentence`` (the markdown's first line), ``settings`` (:func:`settings_line`), ``n_assets``,
        ``best_model``, ``median_qlike_ratio``, ``beats_har`` (assets with DM p < 0.05 and lower
        QLIKE), ``tuned_on``, ``in_sample_assets``, ``out_of_sample`` (the same figures over the assets
        not used for tuning, with ``goal_met``: median ratio <= 0.93 and significant on >= 2/3).
    """
    assets = sorted(board["symbol"].unique().to_list())
    tuned = sorted(dict.fromkeys(tuned_on or []))
    in_sample = [a for a in assets if a in set(tuned)]
    out_assets = [a for a in assets if a not in set(tuned)]
    base: dict[str, Any] = {"n_assets": len(assets), "tuned_on": tuned or None, "in_sample_assets": in_sample}
    base["settings"] = settings_line(assets, tuned_on)
    best = _best_row(panel)
    if best is None:
        missing = BENCHMARK not in set(board["model"].to_list())
        why = "HAR-RV was not scored, so no model has a ratio to it" if missing else "only HAR-RV was scored"
        sentence = f"No headline over {len(assets)} assets: {why}."
        empty = {"best_model": None, "median_qlike_ratio": math.nan, "beats_har": 0, "out_of_sample": None}
        return base | empty | {"sentence": sentence}
    model = str(best["model"])
    overall = _subset_figures(board, model, assets)
    oos = _subset_figures(board, model, out_assets)
    sentence = _sentence(model, overall["median_qlike_ratio"], overall["beats_har"], len(assets))
    sentence += _tuning_sentence(in_sample, oos, model)
    return base | {
        "best_model": model,
        "median_qlike_ratio": overall["median_qlike_ratio"],
        "beats_har": overall["beats_har"],
        "out_of_sample": oos,
        "goal": {"median_ratio_max": GOAL_MEDIAN_RATIO, "share_significant_min": GOAL_SHARE_SIGNIFICANT},
        "sentence": sentence,
    }
