"""Door of the walk-forward: the Prefect task that fits and forecasts a block of folds of one symbol.

One task per block of folds (not per fold): the block reads its inputs once, fits a fresh model per
fold, and writes every fold's model run and forecasts in one write. A fold task per fold spent most
of its time in orchestration and warehouse round-trips, not in the fit (issue 11's benchmark).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import polars as pl
from prefect import task

from core.errors import ConfigError, DataError, TransientError
from flows.orchestration import TASK_DEFAULTS
from flows.steps.train import load_model_data
from tasks.models.base import ModelData
from tasks.models.checkpoint import Checkpointable
from tasks.models.torch_fit import History
from tasks.train import build_model, model_run_id, plain_config
from tasks.walk_forward import Fold, fit_predict
from warehouse.models import read_run_predictions, write_model_run, write_predictions
from warehouse.resource import Warehouse

#: Serializes torch fits inside one process: torch's random generator and thread count are
#: process-wide, so two torch fits in parallel threads would draw each other's dropout masks and
#: forecasts would depend on scheduling. Torch models take turns; everything else runs alongside.
#: (The process runner gives each worker process its own generator, so fits there run in parallel.)
TORCH_LOCK = threading.Lock()

#: LightGBM crashed the process (SIGSEGV in ``lgb.train`` while another thread was in
#: ``Booster.predict``) when two ensemble blocks ran in threads of one process (``stack_flow``, the
#: thread runner on the 6-index benchmark's warehouse): the ensemble's fits take turns as well.
LIGHTGBM_LOCK = threading.Lock()

Row = dict[str, Any]


def fit_lock(fitted: object) -> Any:
    """The lock a fit of ``fitted`` holds in a thread (torch and LightGBM take turns; others run
    alongside)."""
    if isinstance(fitted, Checkpointable):
        return TORCH_LOCK
    return LIGHTGBM_LOCK if getattr(fitted, "name", "") == "ensemble" else nullcontext()


class FoldsFailed(Exception):
    """Some folds of a block failed: the others were stored. Carries both lists (pickles whole)."""

    def __init__(self, message: str, done: list[Row], failures: list[Row]) -> None:
        super().__init__(message, done, failures)  # all in args: the process runner pickles it
        self.message, self.done, self.failures = message, done, failures

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class FittedFold:
    run: Row
    frame: pl.DataFrame
    item: Row


def fold_payload(fold: Fold) -> Row:
    """A fold as the task's JSON-able parameter (its cache key sees every date)."""
    return {
        "fold": fold.fold,
        "train_start": fold.train_start.isoformat(),
        "train_end": fold.train_end.isoformat(),
        "origins": [d.isoformat() for d in fold.origins],
    }


def _fold_of(symbol: str, payload: Row) -> Fold:
    days = sorted(date.fromisoformat(o) for o in payload["origins"])
    k = int(payload["fold"])
    spec = Fold(
        k,
        date.fromisoformat(payload["train_start"]),
        date.fromisoformat(payload["train_end"]),
        tuple(days),
        (),
    )
    if not days or days[0] < spec.train_end:
        raise ConfigError(f"fold {k} of {symbol}: origins must follow train_end {spec.train_end}")
    return spec


def _fit_fold(
    model: str, config: dict[str, object] | None, symbol: str, data: ModelData, fold: Fold, data_version: str
) -> FittedFold:
    t0 = time.perf_counter()
    fitted = build_model(model, config)  # a fresh model per fold: no fold sees another's fit
    cfg = plain_config(fitted.config())
    run_id = model_run_id(model, cfg, [symbol], fold.train_start, fold.train_end, data_version)
    with fit_lock(fitted):
        frame = fit_predict(fitted, data, fold).filter(pl.col("symbol") == symbol)
    if frame.height == 0 and getattr(fitted, "panel_inputs", False):
        short = getattr(fitted, "too_short", {}).get(symbol)
        why = (
            f"fewer than {getattr(fitted, 'min_train', '?')} training sessions ({short})" if short else "none"
        )
        raise DataError(f"model {model!r} made no forecast for {symbol!r} in fold {fold.fold}: {why}")
    history = getattr(fitted, "history", None)
    metrics = {"fold": fold.fold, "history": history.as_dict() if isinstance(history, History) else None}
    wall = time.perf_counter() - t0
    run = {
        "model_run": run_id, "model": model, "symbols": [symbol], "train_start": fold.train_start,
        "train_end": fold.train_end, "config": cfg, "data_version": data_version,
        "metrics": metrics,
        "device": str(getattr(fitted, "device", "cpu")), "wall_s": wall,
    }  # fmt: skip
    item = {
        "model_run": run_id, "model": model, "symbol": symbol, "fold": fold.fold, "wall_s": wall,
        "first_origin": fold.origins[0].isoformat(),
    }  # fmt: skip
    return FittedFold(run, frame, item)


def load_block_data(
    wh: Warehouse, model: str, config: dict[str, object] | None, symbols: Sequence[str], last: date,
    base_runs: Sequence[str] | None,
) -> ModelData:  # fmt: skip
    with wh.reading() as con:
        data = load_model_data(con, build_model(model, config), sorted(symbols), None, last)
        if base_runs:
            preds = read_run_predictions(con, base_runs)
            data = replace(data, predictions=preds.drop("model_run", "created_at"))
    return data


def fit_predict_folds(
    warehouse_path: str,
    warehouse_id: str,
    model: str,
    symbol: str,
    folds: list[Row],
    config: dict[str, object] | None,
    data_version: str,
    base_runs: list[str] | None = None,
    group_symbols: list[str] | None = None,
    label: str = "",
) -> list[Row]:
    """Fit ``model`` on each fold of a block of one symbol, forecast the fold's origins, store them.

    Parameters
    ----------
    warehouse_path, warehouse_id : str
        The warehouse (its id keeps a rebuilt warehouse from taking an old cache hit).
    model, symbol : str
        Registry name and the symbol whose folds these are.
    folds : list[dict]
        The block, as :func:`fold_payload` writes each fold: ``fold`` (stored with every
        prediction), ``train_start``/``train_end`` (the fit sees sessions in it only) and ``origins``.
    config : dict | None
        Model config overrides.
    data_version : str
        Content hash of the inputs up to the block's last origin (part of the cache key).
    base_runs : list[str] | None
        For ``ensemble``: the model runs whose out-of-fold predictions it stacks.
    group_symbols : list[str] | None
        For ``ensemble``: the symbols of this symbol's asset class (pooled in its training rows).
    label : str
        The task run's name suffix (the block's fold range); not used otherwise.

    Returns
    -------
    list[dict]
        Per fold: ``model_run``, ``model``, ``symbol``, ``fold``, ``rows`` and ``wall_s``.

    Raises
    ------
    FoldsFailed
        When some folds failed: the others are stored first and travel in the exception.
    """
    specs = [_fold_of(symbol, f) for f in folds]
    if not specs:
        raise ConfigError(f"{model} {symbol}: a fold block needs at least one fold")
    wh = Warehouse.at(warehouse_path)
    last = max(f.origins[-1] for f in specs)
    data = load_block_data(wh, model, config, sorted(set(group_symbols or []) | {symbol}), last, base_runs)
    fitted: list[FittedFold] = []
    failures: list[Row] = []
    for fold in specs:
        try:
            fitted.append(_fit_fold(model, config, symbol, data, fold, data_version))
        except TransientError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed fold is reported, the block's others are kept
            failures.append(
                {"model": model, "symbol": symbol, "fold": fold.fold, "error": f"{type(exc).__name__}: {exc}"}
            )
    done = store_fitted(wh, fitted)
    if failures:
        raise FoldsFailed(f"{len(failures)} of {len(specs)} folds of {model} {symbol} failed", done, failures)
    return done


def store_fitted(wh: Warehouse, fitted: Sequence[FittedFold]) -> list[Row]:
    """Every fitted fold's model run and forecasts, in one write."""
    if not fitted:
        return []
    done = []
    with wh.writing() as con:
        for f in fitted:
            write_model_run(con, f.run)
            rows = write_predictions(con, f.frame, f.run["model_run"], fold=int(f.item["fold"]))
            done.append({**f.item, "rows": rows})
    return done


evaluate_folds = task(name="walk-forward-folds", task_run_name="{model}-{symbol}-{label}", **TASK_DEFAULTS)(
    fit_predict_folds
)
