"""A small, seeded evaluation for report tests: real scoring code over simulated forecasts.

Returns follow a GARCH-like path with known variance; the models are noisy views of that variance,
so the leaderboard, risk, strategy and stacking code paths all run as in a real evaluation.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import norm

from core.schema import QUANTILE_COLUMNS, QUANTILES
from tasks.evaluate import realized_frame
from tasks.risk_calibrated import calibrated_predictions, calibration_plan
from tasks.scorecard import Scorecard, build_scorecard

SYMBOLS = {"AAA": "crypto", "BBB": "equity_index"}


def _truth(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(true variance, return) of ``n`` sessions with persistent volatility."""
    log_v = np.empty(n)
    log_v[0] = np.log(1e-4)
    for t in range(1, n):
        log_v[t] = -9.2 * 0.05 + 0.95 * log_v[t - 1] + 0.25 * rng.standard_normal()
    var = np.exp(log_v)
    return var, np.sqrt(var) * rng.standard_normal(n)


def _model_rows(
    model: str,
    symbol: str,
    days: list[date],
    var: np.ndarray,
    noise: float,
    drift: float,
    rng: np.random.Generator,
) -> pl.DataFrame:
    fc = var * np.exp(noise * rng.standard_normal(var.size))
    mean = drift * np.sqrt(fc) * rng.standard_normal(var.size)
    quant = {c: mean + np.sqrt(fc) * norm.ppf(q) for c, q in zip(QUANTILE_COLUMNS, QUANTILES, strict=True)}
    return pl.DataFrame(
        {
            "model": model,
            "symbol": symbol,
            "origin": [d - timedelta(days=1) for d in days],
            "target": days,
            "horizon": 1,
            "variance": fc,
            "rv": fc,
            "mean": mean,
            **quant,
            "family": "gaussian",
            "params": json.dumps({}),
        }
    ).with_columns(pl.col("horizon").cast(pl.Int32))


#: (noise of log variance, drift scale of the mean): the ensemble is the sharpest.
MODELS = {"har": (0.35, 0.0), "ewma": (0.5, 0.0), "quantile": (0.45, 0.3), "ensemble": (0.3, 0.3)}


def small_scorecard(
    models: tuple[str, ...] = tuple(MODELS),
    n: int = 320,
    seed: int = 3,
    overrides: dict[str, tuple[float, float]] | None = None,
    calibration: dict[str, Any] | None = None,
) -> Scorecard:
    """A :class:`Scorecard` of ``models`` on two symbols and ``n`` sessions each.

    ``overrides`` replaces a model's (noise, drift) of :data:`MODELS`. ``calibration``: the config
    of the calibrated twins, as in an evaluation (default: every model gets the default twin).
    """
    spec = MODELS | (overrides or {})
    rng = np.random.default_rng(seed)
    preds, feats = [], []
    for symbol in SYMBOLS:
        days = [date(2022, 1, 3) + timedelta(days=i) for i in range(n)]
        var, ret = _truth(n, rng)
        rv = var * np.exp(0.2 * rng.standard_normal(n))
        feats.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "session_date": days,
                    "rv": rv,
                    "ret_cc": ret,
                    "ret_oc": ret,
                    "low_coverage": False,
                }
            )
        )
        preds += [_model_rows(m, symbol, days, var, *spec[m], rng) for m in models]
    params = {
        "symbols": list(SYMBOLS),
        "models": list(models),
        "refit_every": 21,
        "window": "expanding",
        "folds": {s: 15 for s in SYMBOLS},
        "embargo": 2,
        "windows": {s: ["2022-01-03", "2022-11-19"] for s in SYMBOLS},
    }
    plan = calibration_plan(list(models), calibration)
    calibrated = calibrated_predictions(pl.concat(preds), realized_frame(pl.concat(feats)), plan)
    return build_scorecard(
        "fixture",
        params,
        pl.concat(preds),
        pl.concat(feats),
        SYMBOLS,
        None,
        list(models),
        mcs_reps=200,
        calendars={s: "24x7" for s in SYMBOLS},
        calibrated=calibrated,
    )
