"""Door of the training stage: the Prefect tasks ``train_model`` and ``predict``.

``train_model`` fits any registry model on warehouse features, measures it on a held-out validation
tail, stores the checkpoint (torch models) under ``<VOLRISK_HOME>/models/<model_run>/`` and records a
``model_runs`` row; ``predict`` rebuilds a run and writes its forecasts to ``predictions``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.errors import ConfigError, DataError
from flows.orchestration import TASK_DEFAULTS
from tasks.config import get_settings
from tasks.events import default_event_calendar, read_events_csv
from tasks.models.base import ModelData, get_model
from tasks.models.checkpoint import Checkpointable, load_checkpoint, save_checkpoint
from tasks.models.torch_fit import EpochStats, History, plot_history
from tasks.train import as_date, build_model, holdout_metrics, model_run_id, plain_config
from warehouse.catalog import get_instrument
from warehouse.features import read_cross_asset, read_features
from warehouse.models import read_model_run, write_model_run, write_predictions
from warehouse.resource import Warehouse


def load_model_data(
    con: Any,
    model: Any,
    symbols: Sequence[str],
    start: date | None,
    end: date,
    events_csv: str | None = None,
) -> Any:
    """The :class:`~tasks.models.base.ModelData` a model needs, read from the warehouse.

    Features always; cross-asset rows when the model's config asks for them (``cross_asset``); the
    events of ``events_csv`` (default: :func:`tasks.events.default_event_calendar`, the shipped FOMC
    dates plus a ForexFactory export under the data roots) when the model has ``use_events``; the
    ensemble always gets the cross-asset rows (its ``corr`` regime feature).
    """

    feats = read_features(con, list(symbols), start, end)
    if feats.height == 0:
        raise DataError(
            f"no features_daily rows for {list(symbols)} in {start}..{end}; run `volrisk features` first"
        )
    cross = None
    cfg = getattr(model, "cfg", None)
    if getattr(cfg, "cross_asset", False):
        cross = read_cross_asset(con, list(symbols), start, end)
    events = None
    if getattr(model, "use_events", False):
        events = read_events_csv(Path(events_csv)) if events_csv else default_event_calendar()
    elif getattr(model, "name", "") == "ensemble":
        cross = read_cross_asset(con, list(symbols), start, end, any_partner=True)  # its `corr` feature
    calendars = registered_calendars(con, symbols)
    return ModelData(features=feats, cross_asset=cross, events=events, calendars=calendars)


def registered_calendars(con: Any, symbols: Sequence[str]) -> dict[str, str]:
    """The instrument registry's session calendar of each symbol (unregistered symbols are left out)."""
    found = {s: get_instrument(con, s) for s in symbols}
    return {s: inst.calendar for s, inst in found.items() if inst is not None}


def _models_dir(models_dir: str | None) -> Path:
    if models_dir:
        return Path(models_dir)
    return get_settings().home / "models"


def train_and_record(
    warehouse_path: str,
    model: str,
    symbols: Sequence[str],
    train_end: date | str,
    config: Mapping[str, Any] | None,
    data_version: str,
    train_start: date | str | None = None,
    val_fraction: float = 0.15,
    models_dir: str | None = None,
    progress: Callable[[EpochStats], None] | None = None,
) -> dict[str, Any]:
    """What ``train_model`` does, without Prefect (the CLI calls it with a progress bar).

    Reads the features of ``symbols`` in the window, measures the model on a hold-out tail
    (:func:`holdout_metrics`), fits it on the whole window, saves a torch model's checkpoint and
    history plot under ``<models_dir>/<model_run>/`` and upserts the ``model_runs`` row.

    Returns
    -------
    dict
        ``model_run``, ``model``, ``metrics``, ``device``, ``wall_s``, ``checkpoint``.
    """
    t0 = time.perf_counter()
    end = as_date(train_end, "train_end")
    start = None if train_start is None else as_date(train_start, "train_start")
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    if not names:
        raise ConfigError("symbols must name at least one symbol")
    fitted = get_model(model, **plain_config(config))
    cfg = plain_config(fitted.config())
    run_id = model_run_id(model, cfg, names, start, end, data_version)
    with Warehouse.at(warehouse_path).reading() as con:
        data = load_model_data(con, fitted, names, start, end)
    metrics = holdout_metrics(model, cfg, data, end, val_fraction)
    if progress is not None and hasattr(fitted, "progress"):
        fitted.progress = progress
    fitted.fit(data, end)
    internal = getattr(fitted, "validation", None)
    if internal:
        metrics["early_stopping_split"] = dict(internal)
    checkpoint = None
    device = "cpu"
    if isinstance(fitted, Checkpointable):
        folder = _models_dir(models_dir) / run_id
        weights, meta = fitted.checkpoint_state()
        meta = {**meta, "data_version": data_version, "symbols_trained": names}
        checkpoint = str(save_checkpoint(folder / "model.pt", weights, meta))
        history = getattr(fitted, "history", None)
        if isinstance(history, History):
            plot_history(history, folder / "history.png", title=f"{model} {run_id}")
        device = str(getattr(fitted, "device", "cpu"))
    wall = time.perf_counter() - t0
    first = data.features["session_date"].min()
    with Warehouse.at(warehouse_path).writing() as con:
        write_model_run(
            con,
            {
                "model_run": run_id,
                "model": model,
                "symbols": names,
                "train_start": first,
                "train_end": end,
                "config": cfg,
                "data_version": data_version,
                "metrics": metrics,
                "device": device,
                "wall_s": wall,
                "checkpoint": checkpoint,
            },
        )
    return {
        "model_run": run_id,
        "model": model,
        "metrics": metrics,
        "device": device,
        "wall_s": wall,
        "checkpoint": checkpoint,
    }


def restore_run(warehouse_path: str, run: Mapping[str, Any]) -> Any:
    """Rebuild the fitted model of a ``model_runs`` row.

    A torch model loads its checkpoint (``weights_only``; its feature list must match the config's).
    Other models are deterministic functions of (config, training window, data), so they are refitted
    on the same window read from the warehouse.
    """
    model = build_model(str(run["model"]), run.get("config"))
    if run.get("checkpoint"):
        if not isinstance(model, Checkpointable):
            raise ConfigError(
                f"model_run {run['model_run']!r} has a checkpoint but {run['model']!r} cannot load one"
            )
        weights, meta = load_checkpoint(str(run["checkpoint"]), expected_features=model.input_names())
        model.restore_checkpoint(weights, meta)
        return model
    end = run["train_end"]
    with Warehouse.at(warehouse_path).reading() as con:
        data = load_model_data(con, model, list(run["symbols"]), run.get("train_start"), end)
    return model.fit(data, end)


def predict_and_record(
    warehouse_path: str,
    model_run: str,
    origin_dates: Sequence[date | str],
    horizon: int = 1,
    fold: int | None = None,
) -> dict[str, Any]:
    """What ``predict`` does, without Prefect: forecasts of a stored run written to ``predictions``."""
    origins = sorted({as_date(d, "origin_dates") for d in origin_dates})
    if not origins:
        raise ConfigError("origin_dates must hold at least one date")
    with Warehouse.at(warehouse_path).reading() as con:
        run = read_model_run(con, model_run)
    if run is None:
        raise ConfigError(f"model_run {model_run!r} is not recorded in model_runs; train it first")
    model = restore_run(warehouse_path, run)
    with Warehouse.at(warehouse_path).reading() as con:
        data = load_model_data(con, model, list(run["symbols"]), None, origins[-1])
    frame = model.predict(data, origins, horizon=horizon)
    with Warehouse.at(warehouse_path).writing() as con:
        rows = write_predictions(con, frame, model_run, fold=fold)
    return {"model_run": model_run, "rows": rows, "origins": len(origins)}


@task(name="train-model", task_run_name="train-{model}-{train_end}", **TASK_DEFAULTS)
def train_model(
    warehouse_path: str,
    model: str,
    symbols: list[str],
    train_end: str,
    config: dict[str, Any] | None,
    data_version: str,
    train_start: str | None = None,
    val_fraction: float = 0.15,
    models_dir: str | None = None,
) -> dict[str, Any]:
    """Fit a registry model on ``symbols`` through ``train_end`` and record the run.

    Cached on its plain inputs, i.e. (model, config, symbols, training window, data version, where
    it writes) plus the task's source; nothing run-specific enters the key, so the same training
    inputs are trained once. Retried only on transient errors (a locked warehouse). Logs one line
    per epoch for torch models.
    """
    logger = get_run_logger()

    def log_epoch(st: EpochStats) -> None:
        val = "n/a" if st.val_loss is None else f"{st.val_loss:.5f}"
        logger.info(f"{model} epoch {st.epoch + 1}/{st.epochs}: train {st.train_loss:.5f} val {val}")

    return train_and_record(
        warehouse_path,
        model,
        symbols,
        train_end,
        config,
        data_version,
        train_start,
        val_fraction,
        models_dir,
        progress=log_epoch,
    )


@task(
    name="predict",
    task_run_name="predict-{model_run}",
    **{**TASK_DEFAULTS, "cache_policy": NO_CACHE, "persist_result": False},
)
def predict(
    warehouse_path: str, model_run: str, origin_dates: list[str], horizon: int = 1, fold: int | None = None
) -> dict[str, Any]:
    """Forecast ``origin_dates`` with a stored run and upsert them into ``predictions``.

    Not cached: it reads the warehouse's current features, and the upsert is idempotent.
    """
    return predict_and_record(warehouse_path, model_run, origin_dates, horizon, fold)
