"""Door of the walk-forward: the Prefect task that fits and forecasts one fold of one symbol."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import replace
from datetime import date

import polars as pl
from prefect import task

from core.errors import ConfigError
from flows.orchestration import TASK_DEFAULTS
from flows.steps.train import load_model_data
from tasks.models.checkpoint import Checkpointable
from tasks.models.torch_fit import History
from tasks.train import build_model, model_run_id, plain_config
from tasks.walk_forward import Fold, fit_predict
from warehouse.models import read_predictions, write_model_run, write_predictions
from warehouse.resource import Warehouse

#: Serializes torch fits inside one process: torch's random generator and thread count are
#: process-wide, so two torch fits in parallel threads would draw each other's dropout masks and
#: forecasts would depend on scheduling. Torch models take turns; everything else runs alongside.
_TORCH_LOCK = threading.Lock()


def fit_predict_fold(
    warehouse_path: str,
    warehouse_id: str,
    model: str,
    symbol: str,
    fold: int,
    train_start: str,
    train_end: str,
    origins: list[str],
    config: dict[str, object] | None,
    data_version: str,
    base_runs: list[str] | None = None,
    group_symbols: list[str] | None = None,
) -> dict[str, object]:
    """Fit ``model`` on one fold of one symbol, forecast the fold's origins and store them.

    Parameters
    ----------
    warehouse_path, warehouse_id : str
        The warehouse (its id keeps a rebuilt warehouse from taking an old cache hit).
    model, symbol : str
        Registry name and the symbol whose fold this is.
    fold : int
        Fold number (stored with every prediction).
    train_start, train_end : str
        Training window (ISO dates); the model sees sessions in it only.
    origins : list[str]
        The fold's forecast origins (ISO dates).
    config : dict | None
        Model config overrides.
    data_version : str
        Content hash of the inputs (part of the cache key).
    base_runs : list[str] | None
        For ``ensemble``: the model runs whose out-of-fold predictions it stacks.
    group_symbols : list[str] | None
        For ``ensemble``: the symbols of this symbol's asset class (pooled in its training rows).

    Returns
    -------
    dict
        ``model_run``, ``model``, ``symbol``, ``fold``, ``rows`` and ``wall_s``.
    """
    t0 = time.perf_counter()
    days = sorted(date.fromisoformat(o) for o in origins)
    spec = Fold(fold, date.fromisoformat(train_start), date.fromisoformat(train_end), tuple(days), ())
    if not days or days[0] < spec.train_end:
        raise ConfigError(f"fold {fold} of {symbol}: origins must follow train_end {spec.train_end}")
    fitted = build_model(model, config)
    cfg = plain_config(fitted.config())
    run_id = model_run_id(model, cfg, [symbol], spec.train_start, spec.train_end, data_version)
    wh = Warehouse.at(warehouse_path)
    with wh.reading() as con:
        data = load_model_data(con, fitted, sorted(set(group_symbols or []) | {symbol}), None, days[-1])
        if base_runs:
            preds = pl.concat([read_predictions(con, model_run=r) for r in base_runs], how="vertical_relaxed")
            data = replace(data, predictions=preds.drop("model_run", "created_at"))
    with _TORCH_LOCK if isinstance(fitted, Checkpointable) else nullcontext():
        frame = fit_predict(fitted, data, spec).filter(pl.col("symbol") == symbol)
    history = getattr(fitted, "history", None)
    wall = time.perf_counter() - t0
    run = {
        "model_run": run_id,
        "model": model,
        "symbols": [symbol],
        "train_start": spec.train_start,
        "train_end": spec.train_end,
        "config": cfg,
        "data_version": data_version,
        "metrics": {"fold": fold, "history": history.as_dict() if isinstance(history, History) else None},
        "device": str(getattr(fitted, "device", "cpu")),
        "wall_s": wall,
    }
    with wh.writing() as con:
        write_model_run(con, run)
        rows = write_predictions(con, frame, run_id, fold=fold)
    return {"model_run": run_id, "model": model, "symbol": symbol, "fold": fold, "rows": rows, "wall_s": wall}


evaluate_fold = task(name="walk-forward-fold", task_run_name="{model}-{symbol}-fold{fold}", **TASK_DEFAULTS)(
    fit_predict_fold
)
