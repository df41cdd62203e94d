"""Walk-forward scoring: the common scoring set, volatility losses and forecast tests.

Pure functions (polars / numpy in, frames out). Folds and the fit-then-forecast loop are in
:mod:`tasks.walk_forward`; the Prefect fold task is in ``flows/steps/evaluate.py``.

Scoring
    Every model is scored on exactly the same (symbol, target) pairs: those every model forecast and
    whose realized variance is trustworthy (not ``low_coverage``); :func:`common_scoring_set` says how
    many pairs it dropped and why.

Losses on the variance scale (Patton 2011): MSE, MAE and QLIKE of the RV forecast ``rv`` against the
realized ``rv_actual``; the research code's RMSE of squared returns (``variance`` vs ``ret**2``);
out-of-sample R^2 against the naive forecast. Tests: Mincer-Zarnowitz with HAC errors, Diebold-Mariano
against HAR-RV with the Harvey-Leybourne-Newbold correction, and the Model Confidence Set through
``arch.bootstrap.MCS``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import polars as pl
from scipy import stats

from core.errors import ConfigError, DataError
from core.hashing import files_hash, frame_hash, source_root

#: The benchmark every model is compared with.
BENCHMARK = "har"
#: The naive forecast out-of-sample R^2 is measured against.
NAIVE = "naive"


# ------------------------------------------------------------------------------------------ scoring set
def realized_frame(features: pl.DataFrame) -> pl.DataFrame:
    """Per (symbol, target): the realized return, RV, the origin's naive RV inputs and low coverage."""
    return features.select(
        "symbol",
        pl.col("session_date").alias("target"),
        pl.coalesce("ret_cc", "ret_oc").alias("ret"),
        pl.col("rv").alias("rv_actual"),
        pl.col("low_coverage").fill_null(False),
    )


@dataclass(frozen=True)
class ScoringSet:
    """The predictions every model is scored on, joined with what was realized.

    Attributes
    ----------
    scored : pl.DataFrame
        Prediction rows plus ``ret``, ``rv_actual``; only the common (symbol, target) pairs.
    dropped : dict[str, int]
        Pairs left out, by reason.
    """

    scored: pl.DataFrame
    dropped: dict[str, int]


def common_scoring_set(
    predictions: pl.DataFrame, features: pl.DataFrame, models: Sequence[str]
) -> ScoringSet:
    """Restrict ``predictions`` to the (symbol, target) pairs that every model in ``models`` forecast.

    Pairs whose target is not yet realized, or whose realized RV rests on too few bars
    (``low_coverage``), are dropped as well, with counts per reason.
    """
    wanted = list(dict.fromkeys(models))
    if not wanted:
        raise ConfigError("no models to score")
    preds = predictions.filter(pl.col("model").is_in(wanted) & (pl.col("horizon") == 1))
    missing = sorted(set(wanted) - set(preds["model"].unique().to_list()))
    if missing:
        raise DataError(f"no predictions for models {missing}; did their folds fail?")
    keys = preds.select("symbol", "target", "model").unique()
    counts = keys.group_by("symbol", "target").len()
    all_pairs = counts.height
    common = counts.filter(pl.col("len") == len(wanted)).select("symbol", "target")
    realized = realized_frame(features)
    joined = common.join(realized, on=["symbol", "target"], how="left")
    unrealized = joined.filter(pl.col("rv_actual").is_null() | pl.col("ret").is_null())
    low = joined.filter(
        pl.col("rv_actual").is_not_null() & pl.col("ret").is_not_null() & pl.col("low_coverage")
    )
    keep = joined.filter(
        pl.col("rv_actual").is_not_null() & pl.col("ret").is_not_null() & ~pl.col("low_coverage")
    )
    scored = preds.join(keep.drop("low_coverage"), on=["symbol", "target"], how="inner").sort(
        "model", "symbol", "target"
    )
    dropped = {
        "not forecast by every model": all_pairs - common.height,
        "target not realized yet": unrealized.height,
        "low-coverage target session": low.height,
    }
    return ScoringSet(scored, dropped)


# ------------------------------------------------------------------------------------------ losses
def qlike(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """QLIKE per observation, ``a/f - log(a/f) - 1`` (Patton 2011); 0 for a perfect forecast."""
    ratio = np.asarray(actual, float) / np.asarray(forecast, float)
    return ratio - np.log(ratio) - 1.0


def loss_series(frame: pl.DataFrame, loss: str) -> np.ndarray:
    """One loss per scored row: ``qlike``, ``mse``, ``mae`` (on RV) or ``sq_ret`` (variance vs r^2)."""
    a = frame["rv_actual"].to_numpy()
    f = frame["rv"].to_numpy()
    if loss == "qlike":
        return qlike(np.maximum(a, 1e-12), np.maximum(f, 1e-12))
    if loss == "mse":
        return (a - f) ** 2
    if loss == "mae":
        return np.abs(a - f)
    if loss == "sq_ret":
        return (frame["ret"].to_numpy() ** 2 - frame["variance"].to_numpy()) ** 2
    raise ConfigError(f"unknown loss {loss!r}; use qlike, mse, mae or sq_ret")


@dataclass(frozen=True)
class TestStat:
    """A test's statistic and p-value (NaN when it cannot be computed), with a note."""

    statistic: float
    pvalue: float
    note: str = ""


def newey_west_variance(x: np.ndarray, lags: int) -> float:
    """Long-run variance of ``x`` with Bartlett weights (Newey-West 1987)."""
    d = np.asarray(x, float) - np.mean(x)
    n = d.size
    lrv = float(d @ d) / n
    for lag in range(1, min(lags, n - 1) + 1):
        w = 1.0 - lag / (lags + 1.0)
        lrv += 2.0 * w * float(d[lag:] @ d[:-lag]) / n
    return lrv


def diebold_mariano(
    loss_model: np.ndarray, loss_bench: np.ndarray, horizon: int = 1, lags: int | None = None
) -> TestStat:
    """Diebold-Mariano test of equal predictive accuracy with the Harvey-Leybourne-Newbold correction.

    Parameters
    ----------
    loss_model, loss_bench : np.ndarray
        Losses of the model and the benchmark on the same dates.
    horizon : int
        Forecast horizon ``h``.
    lags : int | None
        Newey-West lags of the loss-differential variance; default ``h - 1`` (the DM choice).

    Returns
    -------
    TestStat
        The HLN-corrected statistic (negative: the model's loss is smaller) and its two-sided p-value
        from Student's t with ``T - 1`` degrees of freedom.
    """
    d = np.asarray(loss_model, float) - np.asarray(loss_bench, float)
    d = d[np.isfinite(d)]
    n = d.size
    if n < 10:
        return TestStat(math.nan, math.nan, f"only {n} paired losses")
    lrv = newey_west_variance(d, horizon - 1 if lags is None else lags)
    if lrv <= 1e-300:
        mean_d = float(np.mean(d))
        if mean_d == 0:
            return TestStat(math.nan, math.nan, "identical losses")
        return TestStat(math.copysign(math.inf, mean_d), 0.0, "constant loss differential")
    dm = float(np.mean(d)) / math.sqrt(lrv / n)
    h = horizon
    hln = dm * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    p = 2.0 * float(stats.t.sf(abs(hln), df=n - 1))
    return TestStat(hln, p)


def mincer_zarnowitz(actual: np.ndarray, forecast: np.ndarray, lags: int = 5) -> dict[str, float]:
    """Mincer-Zarnowitz regression ``actual = a + b * forecast`` with HAC (Newey-West) errors.

    Returns
    -------
    dict
        ``a``, ``b``, ``r2`` and the Wald test of ``a = 0, b = 1``: ``wald`` (chi2, 2 df) and ``p``.
    """
    import statsmodels.api as sm

    y = np.asarray(actual, float)
    x = np.asarray(forecast, float)
    ok = np.isfinite(y) & np.isfinite(x)
    if ok.sum() < 10 or np.ptp(x[ok]) == 0:
        return {"a": math.nan, "b": math.nan, "r2": math.nan, "wald": math.nan, "p": math.nan}
    fit = sm.OLS(y[ok], sm.add_constant(x[ok])).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    diff = np.asarray(fit.params) - np.array([0.0, 1.0])
    cov = np.asarray(fit.cov_params())
    wald = float(diff @ np.linalg.solve(cov, diff))
    return {
        "a": float(fit.params[0]),
        "b": float(fit.params[1]),
        "r2": float(fit.rsquared),
        "wald": wald,
        "p": float(stats.chi2.sf(wald, 2)),
    }


def model_confidence_set(
    losses: pl.DataFrame, size: float = 0.10, reps: int = 1000, block_size: int | None = None, seed: int = 0
) -> dict[str, float]:
    """The Model Confidence Set (Hansen, Lunde and Nason 2011) through ``arch.bootstrap.MCS``.

    Parameters
    ----------
    losses : pl.DataFrame
        One column per model, one row per date (the same dates for every model).
    size : float
        Test size: 0.10 gives the 90% MCS.
    reps, block_size, seed
        Bootstrap replications, block length (default ``T ** (1/3)``), seed.

    Returns
    -------
    dict[str, float]
        The MCS p-value of every model; a model is in the set when its p-value is >= ``size``.
        Models with identical losses (one model's forecast copied, or two equal fits) are scored once
        and share that p-value: arch would divide by their zero loss-differential variance.
    """
    from arch.bootstrap import MCS

    same_as: dict[str, str] = {}
    for col in losses.columns:
        same_as[col] = next(
            (u for u in dict.fromkeys(same_as.values()) if losses[col].equals(losses[u])), col
        )
    distinct = losses.select(list(dict.fromkeys(same_as.values())))
    if distinct.width < 2:
        return {c: 1.0 for c in losses.columns}
    frame = distinct.to_pandas()
    block = block_size or max(2, round(len(frame) ** (1 / 3)))
    mcs = MCS(frame, size=size, reps=reps, block_size=block, method="R", seed=seed)
    mcs.compute()
    pvalues = {str(k): float(v) for k, v in mcs.pvalues["Pvalue"].items()}
    return {col: pvalues[rep] for col, rep in same_as.items()}


def _r2_oos(a: np.ndarray, f: np.ndarray, naive: np.ndarray) -> float:
    denom = float(np.sum((a - naive) ** 2))
    return 1.0 - float(np.sum((a - f) ** 2)) / denom if denom > 0 else math.nan


def leaderboard(scored: pl.DataFrame, mcs_size: float = 0.10, mcs_reps: int = 1000) -> pl.DataFrame:
    """Losses and tests per (symbol, model) on the common scoring set.

    Columns: ``symbol, model, n, qlike, qlike_ratio`` (mean QLIKE over HAR-RV's), ``mse, mae,
    rmse_sq_ret, r2_oos`` (vs naive), the
    Mincer-Zarnowitz ``mz_a, mz_b, mz_p``, the DM test on QLIKE against HAR-RV ``dm_stat, dm_p``,
    ``mcs_p`` and ``in_mcs`` (90% MCS on QLIKE), ``loses_to_har`` (mean QLIKE above HAR's) and
    ``beats_har`` (below HAR's with DM p < 0.05). Sorted by symbol, then QLIKE.
    """
    rows: list[dict[str, object]] = []
    for symbol in sorted(scored["symbol"].unique().to_list()):
        sym = scored.filter(pl.col("symbol") == symbol)
        models = sorted(sym["model"].unique().to_list())
        by_model = {m: sym.filter(pl.col("model") == m).sort("target") for m in models}
        q = {m: loss_series(f, "qlike") for m, f in by_model.items()}
        naive = by_model.get(NAIVE)
        bench = q.get(BENCHMARK)
        mcs = model_confidence_set(pl.DataFrame(q), size=mcs_size, reps=mcs_reps)
        for m, f in by_model.items():
            a, fc = f["rv_actual"].to_numpy(), f["rv"].to_numpy()
            dm = (
                diebold_mariano(q[m], bench)
                if bench is not None and m != BENCHMARK
                else TestStat(math.nan, math.nan)
            )
            mz = mincer_zarnowitz(a, fc)
            mean_q = float(np.mean(q[m]))
            bench_q = float(np.mean(bench)) if bench is not None else math.nan
            rows.append(
                {
                    "symbol": symbol,
                    "model": m,
                    "n": f.height,
                    "qlike": mean_q,
                    "qlike_ratio": mean_q / bench_q if bench_q > 0 else math.nan,
                    "mse": float(np.mean(loss_series(f, "mse"))),
                    "mae": float(np.mean(loss_series(f, "mae"))),
                    "rmse_sq_ret": math.sqrt(float(np.mean(loss_series(f, "sq_ret")))),
                    "r2_oos": _r2_oos(a, fc, naive["rv"].to_numpy()) if naive is not None else math.nan,
                    "mz_a": mz["a"],
                    "mz_b": mz["b"],
                    "mz_p": mz["p"],
                    "dm_stat": dm.statistic,
                    "dm_p": dm.pvalue,
                    "mcs_p": mcs.get(m, math.nan),
                    "in_mcs": mcs.get(m, 0.0) >= mcs_size,
                    "loses_to_har": bool(mean_q > bench_q) if bench is not None else False,
                    "beats_har": bool(mean_q < bench_q and dm.pvalue < 0.05) if bench is not None else False,
                }
            )
    if not rows:
        raise DataError("nothing to score: the common scoring set is empty")
    return pl.DataFrame(rows).sort("symbol", "qlike")


# ------------------------------------------------------------------------------------------ versions
@lru_cache(maxsize=4)
def model_code_hash(stacked: bool = False) -> str:
    """Content hash of the code a fold's forecasts depend on (models, training, events; + stacking).

    Part of every fold task's cache key, so editing a model invalidates its cached folds while an
    unrelated change (a report, a README) does not; ``stacked`` adds ``tasks/models/ensemble.py``, which
    only the ensemble's folds depend on.
    """
    root = source_root()
    models = [f for f in sorted((root / "tasks" / "models").glob("*.py")) if f.name != "ensemble.py"]
    names = ["tasks/train.py", "tasks/walk_forward.py", "tasks/events.py"]
    names += ["tasks/models/ensemble.py"] if stacked else []
    return files_hash(root, models + [root / n for n in names])


def features_version(features: pl.DataFrame, symbols: Sequence[str], end: date) -> str:
    """Content hash of the feature rows of ``symbols`` up to ``end`` (a fold's data version)."""
    part = features.filter(pl.col("symbol").is_in(list(symbols)) & (pl.col("session_date") <= end))
    return frame_hash(part)


def describe_targets(features: pl.DataFrame) -> dict[str, str]:
    """Per symbol, what its forecast target (realized variance) was built from, in words.

    Read from ``features_daily.interval`` / ``sampling_interval`` of the rows the evaluation used:
    ``"rv of 1h bars"`` or ``"imported realized measures (oxfordman)"``; units are decimal daily
    variance either way.
    """
    out: dict[str, str] = {}
    if features.height == 0 or "interval" not in features.columns:
        return out
    counts = features.group_by("symbol", "interval", "sampling_interval").len().sort("len", descending=True)
    main = counts.unique("symbol", keep="first", maintain_order=True)
    for symbol, interval, sampling, _ in main.iter_rows():
        if interval == "realized":
            source = str(sampling or "").removeprefix("realized:") or "file"
            out[str(symbol)] = f"imported realized measures ({source})"
        else:
            out[str(symbol)] = f"rv of {sampling or interval} bars"
    return dict(sorted(out.items()))
