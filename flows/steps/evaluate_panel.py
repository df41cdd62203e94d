"""Door of the pooled walk-forward: one Prefect task fits a block of panel folds of a pooled model.

A pooled model (``pool="class"`` or ``"all"``) is fitted once per fold on every member of its panel
(:class:`tasks.walk_forward.PanelFold`: one ``train_end`` for all members) and that one fit forecasts
every member's origins in the fold. Each member's forecasts are stored as a model run of their own
(same config and training window, ``metrics["pooled"]`` names the panel), so scoring, the ensemble and
the report treat them like any other model's runs.
"""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Any

import polars as pl
from prefect import task

from core.errors import ConfigError, DataError, TransientError
from flows.orchestration import TASK_DEFAULTS
from flows.steps.evaluate import FittedFold, FoldsFailed, fit_lock, load_block_data, store_fitted
from tasks.models.base import ModelData
from tasks.models.torch_fit import History
from tasks.train import build_model, model_run_id, plain_config
from tasks.walk_forward import Fold, PanelFold, fit_predict
from warehouse.resource import Warehouse

Row = dict[str, Any]
_log = logging.getLogger(__name__)


def panel_fold_payload(fold: PanelFold) -> Row:
    """A panel fold as the task's JSON-able parameter (its cache key sees every date)."""
    return {
        "fold": fold.fold,
        "train_start": fold.train_start.isoformat(),
        "train_end": fold.train_end.isoformat(),
        "origins": {s: [d.isoformat() for d in days] for s, days in sorted(fold.origins.items())},
    }


def _panel_fold_of(payload: Row) -> PanelFold:
    origins = {
        s: tuple(sorted(date.fromisoformat(d) for d in days)) for s, days in payload["origins"].items()
    }
    fold = PanelFold(
        int(payload["fold"]),
        date.fromisoformat(payload["train_start"]),
        date.fromisoformat(payload["train_end"]),
        {s: days for s, days in origins.items() if days},
    )
    if not fold.origins:
        raise ConfigError(f"panel fold {fold.fold}: no member has an origin")
    return fold


def _member_run(
    model: str, cfg: dict[str, Any], symbol: str, fold: PanelFold, frame: pl.DataFrame, shared: Row
) -> FittedFold:
    """One member's forecasts of a pooled fit, as a model run of its own."""
    run_id = model_run_id(model, cfg, [symbol], fold.train_start, fold.train_end, shared["data_version"])
    run = {
        "model_run": run_id, "model": model, "symbols": [symbol], "train_start": fold.train_start,
        "train_end": fold.train_end, "config": cfg, "data_version": shared["data_version"],
        "metrics": {"fold": fold.fold, "pooled": shared["members"], "history": shared["history"]},
        "device": shared["device"], "wall_s": shared["wall_s"],
    }  # fmt: skip
    item = {
        "model_run": run_id, "model": model, "symbol": symbol, "fold": fold.fold,
        "wall_s": shared["wall_s"], "first_origin": fold.origins[symbol][0].isoformat(),
    }  # fmt: skip
    return FittedFold(run, frame, item)


def _fit_panel_fold(
    model: str, config: dict[str, object] | None, data: ModelData, fold: PanelFold, data_version: str
) -> tuple[list[FittedFold], list[Row]]:
    """Fit once on the panel, split the forecasts by member. A member the model left out as too short
    (``too_short``) is skipped with a warning; any other member without a forecast is a failure."""
    t0 = time.perf_counter()
    fitted = build_model(model, config)
    cfg = plain_config(fitted.config())
    every = sorted({d for days in fold.origins.values() for d in days})
    spec = Fold(fold.fold, fold.train_start, fold.train_end, tuple(every), ())
    with fit_lock(fitted):
        frame = fit_predict(fitted, data, spec)
    history = getattr(fitted, "history", None)
    shared = {
        "data_version": data_version, "members": sorted(fold.origins),
        "device": str(getattr(fitted, "device", "cpu")),
        "history": history.as_dict() if isinstance(history, History) else None,
        "wall_s": (time.perf_counter() - t0) / len(fold.origins),
    }  # fmt: skip
    done, failures = [], []
    short = getattr(fitted, "too_short", {})
    for symbol, days in sorted(fold.origins.items()):
        rows = frame.filter((pl.col("symbol") == symbol) & pl.col("origin").is_in(list(days)))
        if rows.height:
            done.append(_member_run(model, cfg, symbol, fold, rows, shared))
        elif symbol in short:  # the model's own rule (its validation tail took a young member's rows)
            _log.warning(
                "pooled %s left %s out of fold %d (%d training samples, fewer than its min_train): its %d "
                "targets there are forecast by no pooled fit and so scored for no model",
                model, symbol, fold.fold, short[symbol], len(days),
            )  # fmt: skip
        else:
            error = f"DataError: pooled model {model!r} made no forecast for {symbol!r} in fold {fold.fold}"
            failures.append({"model": model, "symbol": symbol, "fold": fold.fold, "error": error})
    return done, failures


def fit_predict_panel_folds(
    warehouse_path: str,
    warehouse_id: str,
    model: str,
    symbols: list[str],
    folds: list[Row],
    config: dict[str, object] | None,
    data_version: str,
    label: str = "",
) -> list[Row]:
    """Fit a pooled ``model`` once per panel fold of a block and store every member's forecasts.

    Parameters
    ----------
    warehouse_path, warehouse_id : str
        The warehouse (its id keeps a rebuilt warehouse from taking an old cache hit).
    model : str
        Registry name of a pooled model.
    symbols : list[str]
        The panel: every member's features are read (and fitted on).
    folds : list[dict]
        The block, as :func:`panel_fold_payload` writes each fold.
    config : dict | None
        Model config overrides.
    data_version : str
        Content hash of the panel's inputs up to the block's last origin (part of the cache key).
    label : str
        The task run's name suffix; not used otherwise.

    Returns
    -------
    list[dict]
        Per (member, fold): ``model_run``, ``model``, ``symbol``, ``fold``, ``rows``, ``wall_s``
        (the shared fit's time divided among the members) and ``first_origin``.

    Raises
    ------
    FoldsFailed
        When some (member, fold) pairs failed: the others are stored first and travel in the exception.
    """
    specs = [_panel_fold_of(f) for f in folds]
    if not specs:
        raise ConfigError(f"{model} {symbols}: a panel fold block needs at least one fold")
    wh = Warehouse.at(warehouse_path)
    last = max(days[-1] for f in specs for days in f.origins.values())
    data = load_block_data(wh, model, config, sorted(symbols), last, None)
    fitted: list[FittedFold] = []
    failures: list[Row] = []
    for fold in specs:
        try:
            done, failed = _fit_panel_fold(model, config, data, fold, data_version)
        except TransientError:
            raise
        except (
            DataError,
            ConfigError,
            ValueError,
            RuntimeError,
        ) as exc:  # the fit failed: every member's fold
            error = f"{type(exc).__name__}: {exc}"
            done, failed = (
                [],
                [{"model": model, "symbol": s, "fold": fold.fold, "error": error} for s in fold.origins],
            )
        fitted += done
        failures += failed
    stored = store_fitted(wh, fitted)
    if failures:
        raise FoldsFailed(f"{len(failures)} member folds of pooled {model} failed", stored, failures)
    return stored


evaluate_panel_folds = task(
    name="pooled-walk-forward-folds", task_run_name="{model}-{label}", **TASK_DEFAULTS
)(fit_predict_panel_folds)
