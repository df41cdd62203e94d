"""Strategy backtest of the research plan's long/short/flat rule on predicted return quantiles.

Pure functions, polars in, frames out; no I/O, no Prefect.

The rule (research plan, test 4)
--------------------------------
At the close of origin session ``t`` a model predicts quantiles of the return of target session
``t+1``. The plan reads "long when p50 > last close"; our quantiles are of the target session's
RETURN, so "p50 > last close" is ``q50 > 0`` and "p50 < last close" is ``q50 < 0``. With the band
``q90 - q10``:

* long (+1) when ``q50 > 0`` and ``band <= threshold``;
* short (-1) when ``q50 < 0`` and ``band <= threshold``;
* flat (0) when ``band > threshold`` (too uncertain), when ``q50 == 0`` or when no threshold is known.

The position decided at ``t`` is held over the target session: its gross return is
``position_t * ret(t+1)``, which is the ``ret`` column of the SAME row (the row of origin ``t`` carries
the realized return of its target). Costs are ``cost_bps / 1e4 * |position_t - position_{t-1}|`` (the
position before the first row is flat), charged in that period, so the net return is exactly
``gross - cost * turnover``.

Threshold (no look-ahead)
-------------------------
``threshold`` may be a fixed number (a band width in return units) or ``None`` (default): the
trailing rule ``band_t > k * median(band of the previous `lookback` origins)`` of the same
(model, symbol), ``k = 1.5`` and ``lookback = 63`` by default (about a quarter of sessions; 1.5 is the
envelope-calibration gate, so a session whose envelope widens like an event day's is sat out). The
median uses origins strictly before ``t``; until ``min_history`` (20) earlier origins exist the
position is flat.

Returns and metrics
-------------------
``ret`` is treated as a log return: the equity curve is ``exp(cumsum(net))`` (exact for a long
position; for a short it is the usual log approximation), ``total_return = equity_end - 1``,
``ann_return = exp(mean(net) * periods_per_year) - 1`` (the geometric annualisation of the same
equity curve, ``(1 + total_return) ** (periods_per_year / n) - 1``, so it is never below -100%),
``max_drawdown`` the
most negative ``equity / running max - 1`` (from a starting equity of 1). The annualized Sharpe is
``mean / std * sqrt(periods_per_year)`` with 365 periods for crypto and 252 otherwise
(:func:`annual_periods`); its standard error is the Lo (2002) GMM delta-method one with a
Newey-West (1987) HAC covariance (:func:`sharpe_hac`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from statsmodels.stats.sandwich_covariance import S_hac_simple

from core.errors import ConfigError, DataError

#: Default multiple of the trailing median band above which a position is flat.
DEFAULT_K = 1.5
#: Default number of previous origins of the trailing median band.
DEFAULT_LOOKBACK = 63
#: Fewest previous origins before the trailing threshold (and so any position) exists.
DEFAULT_MIN_HISTORY = 20
#: Default cost per unit of position change, in basis points.
DEFAULT_COST_BPS = 5.0

METRIC_COLUMNS: dict[str, pl.DataType] = {
    "model": pl.String(),
    "symbol": pl.String(),
    "asset_class": pl.String(),
    "n": pl.Int64(),
    "periods_per_year": pl.Int64(),
    "sharpe": pl.Float64(),
    "sharpe_se_hac": pl.Float64(),
    "sharpe_se_iid": pl.Float64(),
    "ann_return": pl.Float64(),
    "ann_vol": pl.Float64(),
    "total_return": pl.Float64(),
    "max_drawdown": pl.Float64(),
    "turnover": pl.Float64(),
    "exposure": pl.Float64(),
    "hit_rate": pl.Float64(),
    "n_trades": pl.Int64(),
    "cost_bps": pl.Float64(),
}


def annual_periods(asset_class: str | None) -> int:
    """Annualization periods of an asset class: 365 for ``crypto`` (trades every day), 252 otherwise."""
    return 365 if (asset_class or "").lower() == "crypto" else 252


def positions(
    q50: np.ndarray,
    band: np.ndarray,
    *,
    threshold: float | None = None,
    k: float = DEFAULT_K,
    lookback: int = DEFAULT_LOOKBACK,
    min_history: int = DEFAULT_MIN_HISTORY,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (+1/0/-1) of the research rule for one (model, symbol), in origin order.

    Parameters
    ----------
    q50 : np.ndarray
        Predicted median return of each target session.
    band : np.ndarray
        ``q90 - q10`` of each prediction.
    threshold : float | None
        Fixed band threshold; ``None`` for the trailing rule (module docstring).
    k, lookback, min_history
        Trailing rule: ``k * median(band[t - lookback : t])`` once ``min_history`` earlier bands exist.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        Positions and the threshold used at each origin (NaN where none).
    """
    q50 = np.asarray(q50, dtype=float)
    band = np.asarray(band, dtype=float)
    if q50.shape != band.shape or q50.ndim != 1:
        raise DataError(f"q50 and band must be 1-d of one length; got {q50.shape} and {band.shape}")
    n = q50.size
    if threshold is not None:
        if not (isinstance(threshold, int | float) and threshold > 0):
            raise ConfigError(f"threshold must be a positive number or None; got {threshold!r}")
        thr = np.full(n, float(threshold))
    else:
        if not k > 0:
            raise ConfigError(f"k must be > 0; got {k!r}")
        if lookback < 1 or min_history < 1 or min_history > lookback:
            raise ConfigError(
                f"need 1 <= min_history <= lookback; got min_history={min_history}, lookback={lookback}"
            )
        # Median of the previous `lookback` bands, strictly before t (shift by one: no look-ahead).
        prev = pl.Series(band).fill_nan(None).shift(1)
        med = prev.rolling_median(window_size=lookback, min_samples=min_history).to_numpy()
        thr = k * np.asarray(med, dtype=float)
    ok = np.isfinite(q50) & np.isfinite(band) & np.isfinite(thr) & (band <= thr)
    pos = np.where(ok, np.sign(q50), 0.0)
    return pos, thr


def sharpe_hac(returns: np.ndarray, periods: int = 252, nlags: int | None = None) -> dict[str, float]:
    """Annualized Sharpe ratio with its HAC and iid standard errors.

    Lo, A. W. (2002), "The Statistics of Sharpe Ratios", Financial Analysts Journal 58(4): the
    estimator ``SR = mu / sigma`` is a function of the moments ``(mu, sigma^2)``; by the GMM delta
    method ``Var(SR) = g' S g / T`` with ``g = (1/sigma, -mu / (2 sigma^3))`` and ``S`` the long-run
    covariance of ``(r_t - mu, (r_t - mu)^2 - sigma^2)``, estimated with Newey and West (1987)
    Bartlett weights (``statsmodels.stats.sandwich_covariance.S_hac_simple``; default lags
    ``floor(4 (T/100)^(2/9))``). Under iid normal returns this reduces to Lo's
    ``Var(SR) = (1 + SR^2 / 2) / T``, reported as ``se_iid``. Both scale by ``sqrt(periods)``.

    Parameters
    ----------
    returns : np.ndarray
        Per-period (net) strategy returns; non-finite values are dropped.
    periods : int
        Periods per year.
    nlags : int | None
        Newey-West lags (``None``: the rule above).

    Returns
    -------
    dict[str, float]
        ``sharpe``, ``se_hac``, ``se_iid`` (annualized; NaN when the volatility is 0 or T < 3).
    """
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    t = r.size
    nan = {"sharpe": math.nan, "se_hac": math.nan, "se_iid": math.nan}
    if t < 3:
        return nan
    mu = float(r.mean())
    var = float(np.mean((r - mu) ** 2))
    if not var > 0:
        return nan
    sigma = math.sqrt(var)
    sr = mu / sigma
    moments = np.column_stack([r - mu, (r - mu) ** 2 - var])
    s = S_hac_simple(moments, nlags=nlags) / t
    g = np.array([1.0 / sigma, -mu / (2.0 * sigma**3)])
    v_hac = float(g @ s @ g) / t
    v_iid = (1.0 + 0.5 * sr**2) / t
    scale = math.sqrt(periods)
    sr_ddof = mu / float(np.std(r, ddof=1))
    return {
        "sharpe": sr_ddof * scale,
        "se_hac": math.sqrt(max(v_hac, 0.0)) * scale,
        "se_iid": math.sqrt(v_iid) * scale,
    }


def max_drawdown(equity: np.ndarray) -> float:
    """Most negative ``equity / running max - 1``, with a starting equity of 1 (0 when none)."""
    e = np.concatenate([[1.0], np.asarray(equity, dtype=float)])
    peak = np.maximum.accumulate(e)
    return float(np.min(e / peak - 1.0))


def _group_curve(
    g: pl.DataFrame,
    *,
    cost_bps: float,
    threshold: float | None,
    k: float,
    lookback: int,
    min_history: int,
) -> pl.DataFrame:
    q50 = g["q50"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    band = (g["q90"] - g["q10"]).cast(pl.Float64).fill_null(np.nan).to_numpy()
    ret = g["ret"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    pos, thr = positions(q50, band, threshold=threshold, k=k, lookback=lookback, min_history=min_history)
    pos = np.where(np.isfinite(ret), pos, 0.0)  # no realized return: no position
    dpos = np.abs(np.diff(np.concatenate([[0.0], pos])))
    gross = pos * np.nan_to_num(ret, nan=0.0)
    cost = cost_bps / 1e4 * dpos
    net = gross - cost
    equity = np.exp(np.cumsum(net))
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return g.select("model", "symbol", "origin", "target").with_columns(
        pl.Series("q50", q50),
        pl.Series("band", band),
        pl.Series("threshold", thr).fill_nan(None),
        pl.Series("position", pos),
        pl.Series("ret", ret).fill_nan(None),
        pl.Series("turnover", dpos),
        pl.Series("gross", gross),
        pl.Series("cost", cost),
        pl.Series("net", net),
        pl.Series("equity", equity),
        pl.Series("drawdown", equity / peak - 1.0),
    )


def _check_strategy_frame(frame: pl.DataFrame, cost_bps: float) -> None:
    """Refuse a frame without the strategy's columns, with several (model, symbol), or a bad cost."""
    need = ["model", "symbol", "origin", "target", "q10", "q50", "q90", "ret"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DataError(f"strategy frame lacks columns {missing}")
    if frame["model"].n_unique() > 1 or frame["symbol"].n_unique() > 1:
        raise DataError("strategy_backtest takes one (model, symbol); use compare_strategies for many")
    if not (isinstance(cost_bps, int | float) and cost_bps >= 0):
        raise ConfigError(f"cost_bps must be a number >= 0; got {cost_bps!r}")


def _curve_metrics(
    frame: pl.DataFrame, curve: pl.DataFrame, asset_class: str | None, ppy: int, cost_bps: float
) -> dict[str, Any]:
    """The :data:`METRIC_COLUMNS` figures of one equity curve."""
    net = curve["net"].to_numpy()
    pos = curve["position"].to_numpy()
    ret = curve["ret"].fill_null(np.nan).to_numpy()
    sr = sharpe_hac(net, ppy)
    inmkt = (pos != 0) & np.isfinite(ret)
    n = int(net.size)
    metrics: dict[str, Any] = {
        "model": frame["model"][0] if n else None,
        "symbol": frame["symbol"][0] if n else None,
        "asset_class": asset_class,
        "n": n,
        "periods_per_year": int(ppy),
        "sharpe": sr["sharpe"],
        "sharpe_se_hac": sr["se_hac"],
        "sharpe_se_iid": sr["se_iid"],
        "ann_return": float(np.expm1(net.mean() * ppy)) if n else math.nan,
        "ann_vol": float(net.std(ddof=1) * math.sqrt(ppy)) if n > 1 else math.nan,
        "total_return": float(curve["equity"][-1] - 1.0) if n else math.nan,
        "max_drawdown": max_drawdown(curve["equity"].to_numpy()) if n else math.nan,
        "turnover": float(curve["turnover"].mean()) if n else math.nan,  # type: ignore[arg-type]
        "exposure": float(np.mean(np.abs(pos))) if n else math.nan,
        "hit_rate": float(np.mean(pos[inmkt] * ret[inmkt] > 0)) if inmkt.any() else math.nan,
        "n_trades": int(np.sum(curve["turnover"].to_numpy() > 0)),
        "cost_bps": float(cost_bps),
    }
    return metrics


def strategy_backtest(
    frame: pl.DataFrame,
    *,
    cost_bps: float = DEFAULT_COST_BPS,
    threshold: float | None = None,
    k: float = DEFAULT_K,
    lookback: int = DEFAULT_LOOKBACK,
    min_history: int = DEFAULT_MIN_HISTORY,
    periods_per_year: int | None = None,
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Backtest the long/short/flat rule for ONE (model, symbol) (module docstring).

    Parameters
    ----------
    frame : pl.DataFrame
        One model and symbol: ``model, symbol, origin, target, q10, q50, q90, ret`` (and
        ``asset_class`` if ``periods_per_year`` is None). Sorted here by ``target``.
    cost_bps : float
        Cost per unit of position change, basis points.
    threshold : float | None
        Fixed band threshold, or ``None`` for the trailing rule.
    k, lookback, min_history
        The trailing rule's settings.
    periods_per_year : int | None
        Annualization; ``None`` maps ``asset_class`` with :func:`annual_periods`.

    Returns
    -------
    tuple[dict[str, Any], pl.DataFrame]
        Metrics (keys of :data:`METRIC_COLUMNS`: ``sharpe``, ``sharpe_se_hac``, ``sharpe_se_iid``,
        ``ann_return``, ``ann_vol``, ``total_return``, ``max_drawdown``, ``turnover`` (mean
        ``|delta position|`` per period), ``exposure`` (mean ``|position|``), ``hit_rate`` (share of
        periods in the market with ``position * ret > 0``), ``n``, ``n_trades``) and the equity-curve
        frame (``model, symbol, origin, target, q50, band, threshold, position, ret, turnover,
        gross, cost, net, equity, drawdown``).
    """
    _check_strategy_frame(frame, cost_bps)
    asset_class = frame["asset_class"][0] if "asset_class" in frame.columns and frame.height else None
    ppy = periods_per_year if periods_per_year is not None else annual_periods(asset_class)
    curve = _group_curve(
        frame.sort("target"),
        cost_bps=float(cost_bps),
        threshold=threshold,
        k=k,
        lookback=lookback,
        min_history=min_history,
    )
    return _curve_metrics(frame, curve, asset_class, ppy, float(cost_bps)), curve


def compare_strategies(
    scored: pl.DataFrame,
    *,
    cost_bps: float = DEFAULT_COST_BPS,
    threshold: float | None = None,
    k: float = DEFAULT_K,
    lookback: int = DEFAULT_LOOKBACK,
    min_history: int = DEFAULT_MIN_HISTORY,
    periods: dict[str, int] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run :func:`strategy_backtest` for every (model, symbol) of a scored frame, side by side.

    Parameters
    ----------
    scored : pl.DataFrame
        Scored rows (``PREDICTION_SCHEMA`` plus ``ret`` and ``asset_class``), horizon 1.
    cost_bps, threshold, k, lookback, min_history
        See :func:`strategy_backtest`.
    periods : dict[str, int] | None
        Override of periods per year by asset class (default :func:`annual_periods`).

    Returns
    -------
    tuple[pl.DataFrame, pl.DataFrame]
        Metrics per (model, symbol) in :data:`METRIC_COLUMNS` (NaN written as null) and the
        concatenated equity curves.
    """
    if "horizon" in scored.columns and scored.height and (scored["horizon"] != 1).any():
        raise DataError("the strategy trades one session ahead: pass horizon-1 rows only")
    rows: list[dict[str, Any]] = []
    curves: list[pl.DataFrame] = []
    for _, g in scored.sort(["model", "symbol", "target"]).group_by(["model", "symbol"], maintain_order=True):
        ac = g["asset_class"][0] if "asset_class" in g.columns else None
        ppy = (periods or {}).get(str(ac), annual_periods(ac))
        m, c = strategy_backtest(
            g,
            cost_bps=cost_bps,
            threshold=threshold,
            k=k,
            lookback=lookback,
            min_history=min_history,
            periods_per_year=ppy,
        )
        rows.append(m)
        curves.append(c)
    metrics = pl.DataFrame(rows, schema=METRIC_COLUMNS) if rows else pl.DataFrame(schema=METRIC_COLUMNS)
    equity = pl.concat(curves) if curves else pl.DataFrame()
    return metrics.with_columns(pl.col(pl.Float64).fill_nan(None)), equity
