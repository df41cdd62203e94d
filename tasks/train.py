"""The training stage's pure part: run ids, configs, and hold-out metrics.

``flows/steps/train.py`` is its door: it reads features from the warehouse, fits, stores the checkpoint
(torch models) under ``<VOLRISK_HOME>/models/<model_run>/`` and records a ``model_runs`` row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np

from core.errors import ConfigError, DataError


# ------------------------------------------------------------------------------------------ metrics
def volatility_metrics(
    actual: np.ndarray, forecast: np.ndarray, naive: np.ndarray | None = None
) -> dict[str, float | int | None]:
    """QLIKE and MSE on the variance scale (Patton 2011), and R² against a naive forecast.

    ``qlike = mean(RV/f - log(RV/f) - 1)``; ``mse = mean((RV - f)^2)``; ``r2_vs_naive = 1 -
    SSE(f) / SSE(naive)`` (negative when the model loses). Pairs with a non-finite or non-positive
    member are left out; ``n`` counts the pairs used.
    """
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(f) & (a > 0) & (f > 0)
    nv = None if naive is None else np.asarray(naive, dtype=np.float64)
    if nv is not None:
        ok &= np.isfinite(nv) & (nv > 0)
    if not ok.any():
        return {"n": 0, "qlike": None, "mse": None, "r2_vs_naive": None}
    ratio = a[ok] / f[ok]
    out: dict[str, float | int | None] = {
        "n": int(ok.sum()),
        "qlike": float(np.mean(ratio - np.log(ratio) - 1.0)),
        "mse": float(np.mean((a[ok] - f[ok]) ** 2)),
        "r2_vs_naive": None,
    }
    if nv is not None:
        sse_naive = float(np.sum((a[ok] - nv[ok]) ** 2))
        out["r2_vs_naive"] = 1.0 - float(np.sum((a[ok] - f[ok]) ** 2)) / sse_naive if sse_naive > 0 else None
    return out


# ------------------------------------------------------------------------------------------ runs (pure)
def plain_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A model's stored config as constructor arguments (a ``model`` key, if any, is dropped)."""
    return {k: v for k, v in dict(config or {}).items() if k != "model"}


def build_model(model: str, config: Mapping[str, Any] | None) -> Any:
    """``get_model(model, **config)`` for a config read back from ``model_runs``.

    A model whose ``config()`` reports settings its constructor does not take (a class-level choice,
    e.g. HAR's ``jumps``) is rebuilt from the keys its constructor accepts; models that take
    ``**config`` get every key and report unknown ones themselves.
    """
    import inspect

    from tasks.models.base import get_model

    args = plain_config(config)
    try:
        return get_model(model, **args)
    except TypeError:
        params = inspect.signature(type(get_model(model))).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            raise
        names = {p.name for p in params}
        return get_model(model, **{k: v for k, v in args.items() if k in names})


def model_run_id(
    model: str,
    config: Mapping[str, Any],
    symbols: Sequence[str],
    train_start: date | None,
    train_end: date,
    data_version: str,
) -> str:
    """Deterministic run id ``<model>-<hash>`` of (model, config, symbols, window, data version).

    The same training inputs give the same id, so retraining upserts the same ``model_runs`` row and
    overwrites the same checkpoint instead of piling up copies.
    """
    from core.hashing import content_hash

    key = content_hash(model, dict(config), sorted(symbols), str(train_start), str(train_end), data_version)
    return f"{model}-{key}"


def as_date(value: date | str, name: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{name} must be an ISO date (YYYY-MM-DD); got {value!r}") from None
    if not isinstance(value, date):
        raise ConfigError(f"{name} must be a date or an ISO date string; got {value!r}")
    return value


def holdout_metrics(
    model_name: str,
    config: Mapping[str, Any],
    data: Any,
    train_end: date,
    val_fraction: float = 0.15,
) -> dict[str, Any]:
    """Validation metrics of a registry model on the last ``val_fraction`` of its training window.

    A copy of the model is fitted on the sessions before the hold-out tail only and forecasts each
    tail session one step ahead; the tail's realized RV scores it (QLIKE, MSE on the variance scale,
    R² against the naive last-RV forecast). The tail never enters that fit, whatever the model does
    internally (the torch models' own early-stopping split lies inside the shortened window).

    Parameters
    ----------
    model_name : str
        Registry name.
    config : Mapping[str, Any]
        Its configuration.
    data : ModelData
        Data through ``train_end`` (later rows are ignored).
    train_end : date
        Last session of the training window.
    val_fraction : float
        Share of the window's sessions in the hold-out tail (0 skips the measurement).

    Returns
    -------
    dict
        ``holdout_start``, ``holdout_end``, ``n``, ``qlike``, ``mse``, ``r2_vs_naive`` (or only
        ``holdout: "none"``).
    """
    import polars as pl

    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, int | float)
        or not 0 <= val_fraction < 0.9
    ):
        raise ConfigError(f"val_fraction must be a number in [0, 0.9); got {val_fraction!r}")
    if val_fraction == 0:
        return {"holdout": "none"}
    feats = data.features.filter(pl.col("session_date") <= train_end)
    sessions = feats["session_date"].unique().sort()
    n_tail = max(int(len(sessions) * val_fraction), 2)
    if len(sessions) - n_tail < 2:
        raise DataError(f"training window of {len(sessions)} sessions is too short for a hold-out tail")
    cut = sessions[len(sessions) - n_tail - 1]
    model = build_model(model_name, config).fit(data.upto(cut), cut)
    origins = sessions.filter(sessions >= cut)[:-1].to_list()
    pred = model.predict(data.upto(train_end), origins, horizon=1)
    realized = feats.select(
        "symbol", pl.col("session_date").alias("target"), pl.col("rv").alias("_actual"), "low_coverage"
    )
    naive = feats.select("symbol", pl.col("session_date").alias("origin"), pl.col("rv_d").alias("_naive"))
    scored = (
        pred.join(realized, on=["symbol", "target"], how="inner")
        .join(naive, on=["symbol", "origin"], how="left")
        .filter(~pl.col("low_coverage"))
    )
    metrics = volatility_metrics(
        scored["_actual"].to_numpy(), scored["rv"].to_numpy(), scored["_naive"].to_numpy()
    )
    return {"holdout_start": str(origins[0]), "holdout_end": str(train_end), **metrics}


