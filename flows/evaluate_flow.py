"""The evaluation flows: walk-forward train -> predict -> score -> stack -> report.

``evaluate_flow``
    One cached, retried ``walk-forward-fold`` task per (model, symbol, fold) fits the model on the
    fold's training window and stores its out-of-fold predictions (with the fold id) in
    ``predictions``. The ``ensemble`` then stacks them per asset class, fold by fold, trained only
    on earlier folds. Everything is scored on the same dates (``tasks.scorecard``) and written as a
    report (``tasks.report``) plus Prefect artifacts. Re-running with unchanged inputs is all cache
    hits: each fold's key is (model, config, symbol, window, origins, feature content hash,
    warehouse id, task source).
``stack_flow``
    Re-stacks and re-reports a stored evaluation from its recorded out-of-fold predictions (the
    weekly-stack deployment), without refitting a base model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from core.errors import ConfigError, DataError
from core.hashing import frame_hash
from flows import progress
from flows.steps.evaluate import evaluate_fold
from tasks.config import get_settings
from tasks.evaluate import describe_targets, features_version, model_code_hash
from tasks.experiment import ExperimentSpec
from tasks.models.ensemble import Ensemble
from tasks.scorecard import ENSEMBLE
from tasks.walk_forward import Fold, walk_forward_folds
from warehouse.evaluations import read_evaluation
from warehouse.resource import Warehouse

#: Default test window length when none is given: the last two years of sessions.
DEFAULT_TEST_DAYS = 730


def params_windows(windows: dict[str, tuple[date, date]]) -> str:
    """``SYM lo..hi`` per symbol, for logs."""
    return ", ".join(f"{s} {lo}..{hi}" for s, (lo, hi) in windows.items())


@dataclass(frozen=True)
class EvalInputs:
    """What the flow reads once: features, asset classes and the warehouse identity."""

    features: pl.DataFrame
    classes: dict[str, str]
    warehouse_id: str
    calendars: dict[str, str]
    events_version: str = ""


def _read_inputs(wh: str, symbols: Sequence[str]) -> EvalInputs:
    from warehouse.catalog import get_instrument, warehouse_id
    from warehouse.features import read_features
    from warehouse.resource import Warehouse

    with Warehouse.at(wh).reading() as con:
        feats = read_features(con, list(symbols))
        classes = {}
        calendars = {}
        for s in symbols:
            inst = get_instrument(con, s)
            if inst is not None:
                calendars[s] = inst.calendar
            cls = inst.asset_class if inst else "unknown"
            classes[s] = "fx+commodity" if cls in ("fx", "commodity") else cls
        wid = warehouse_id(con)
    missing = sorted(set(symbols) - set(feats["symbol"].unique().to_list()))
    if missing:
        raise DataError(
            f"no features_daily rows for {missing}; run `volrisk features {' '.join(missing)}` first"
        )
    from tasks.events import default_event_calendar

    events = default_event_calendar()
    events_version = frame_hash(events)
    return EvalInputs(feats, classes, wid, calendars, events_version)


def default_models() -> list[str]:
    """Every registered model except the stack itself."""
    from tasks.models.base import model_names

    return [m for m in model_names() if m != ENSEMBLE]


def _model_config(model: str, device: str, overrides: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    from tasks.models.base import get_model

    cfg = dict((overrides or {}).get(model, {}))
    if "device" in get_model(model, **cfg).config() and "device" not in cfg:
        cfg["device"] = device
    return cfg


def symbol_windows(
    feats: pl.DataFrame, symbols: Sequence[str], test_start: str | None, test_end: str | None
) -> dict[str, tuple[date, date]]:
    """Test window per symbol: the given dates, or each symbol's last two years of sessions."""
    out: dict[str, tuple[date, date]] = {}
    for s in symbols:
        last = feats.filter(pl.col("symbol") == s)["session_date"].max()
        assert isinstance(last, date)
        hi = date.fromisoformat(test_end) if test_end else last
        lo = date.fromisoformat(test_start) if test_start else hi - timedelta(days=DEFAULT_TEST_DAYS)
        if lo > hi:
            raise ConfigError(f"test_start {lo} is after test_end {hi}")
        out[s] = (lo, hi)
    return out


def with_warmup(
    feats: pl.DataFrame, windows: dict[str, tuple[date, date]], sessions: int
) -> dict[str, tuple[date, date]]:
    """Fold windows that start ``sessions`` sessions before each scoring window.

    The base models forecast the warm-up too, so the ensemble of the first scored fold already has
    about ``sessions`` earlier out-of-fold rows to learn from; nothing in the warm-up is scored.
    """
    if sessions <= 0:
        return dict(windows)
    out: dict[str, tuple[date, date]] = {}
    for s, (lo, hi) in windows.items():
        before = feats.filter((pl.col("symbol") == s) & (pl.col("session_date") < lo))["session_date"].sort()
        start = before[-sessions] if before.len() >= sessions else (before[0] if before.len() else lo)
        out[s] = (start, hi)
    return out


def plan_folds(
    feats: pl.DataFrame,
    windows: dict[str, tuple[date, date]],
    refit_every: int,
    window: str,
    train_size: int | None,
    embargo: int | None,
    train_start: str | None,
) -> dict[str, list[Fold]]:
    """Folds per symbol over the test window (training may not start before ``train_start``)."""
    first = date.fromisoformat(train_start) if train_start else None
    out: dict[str, list[Fold]] = {}
    for s, (lo, hi) in windows.items():
        days = feats.filter(pl.col("symbol") == s)["session_date"].sort()
        if first is not None:
            days = days.filter(days >= first)
        folds = walk_forward_folds(
            days.to_list(),
            lo,
            hi,
            refit_every=refit_every,
            window=window,  # type: ignore[arg-type]
            train_size=train_size,
            embargo=embargo,
        )
        if not folds:
            raise DataError(f"{s}: no test session in {lo}..{hi} has 250 training sessions before it")
        out[s] = folds
    return out


def _submit(
    wh: str, inputs: EvalInputs, model: str, symbol: str, fold: Fold, cfg: dict[str, Any], **extra: Any
) -> Any:
    from core.hashing import content_hash

    version = features_version(inputs.features, extra.get("group_symbols") or [symbol], fold.origins[-1])
    version = content_hash(
        version,
        model_code_hash(model == ENSEMBLE),
        inputs.events_version,
        sorted(extra.get("base_runs") or []),
    )
    return evaluate_fold.submit(
        wh,
        inputs.warehouse_id,
        model,
        symbol,
        fold.fold,
        fold.train_start.isoformat(),
        fold.train_end.isoformat(),
        [d.isoformat() for d in fold.origins],
        cfg,
        version,
        **extra,
    )


def _collect(
    futures: dict[Any, tuple[str, str, int]], runs: list[dict[str, Any]], failed: list[dict[str, Any]]
) -> None:
    for fut in as_completed(list(futures)):
        model, symbol, k = futures[fut]
        item: dict[str, Any] = {"model": model, "symbol": symbol, "fold": k}
        try:
            out = fut.result()
            item.update(out, status="cached" if fut.state.name == "Cached" else "success")
            runs.append(item)
        except Exception as exc:  # noqa: BLE001 - one failed fold is reported, the rest go on
            item.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            failed.append(item)
        progress.report("evaluate", item=item)


def _stack_rows(earlier: Sequence[Fold], fold: Fold) -> int:
    """Out-of-fold rows the ensemble of ``fold`` can train on: earlier targets known by its train_end."""
    return sum(1 for f in earlier for t in f.targets if t <= fold.train_end)


def run_ensemble(
    wh: str,
    inputs: EvalInputs,
    folds: dict[str, list[Fold]],
    base_runs: list[dict[str, Any]],
    base_models: list[str],
    config: dict[str, Any] | None,
    announce: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stack each symbol's folds on the earlier folds' out-of-fold predictions.

    Folds with fewer than the ensemble's ``min_rows`` earlier rows are a warm-up: no ensemble
    forecast is made for them, so the common scoring set starts after them.
    """
    runs: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    futures: dict[Any, tuple[str, str, int]] = {}
    cfg = {**(config or {}), "groups": inputs.classes, "base_models": base_models}
    min_rows = int(cfg.get("min_rows", Ensemble().cfg["min_rows"]))
    for symbol, sym_folds in folds.items():
        group = sorted(s for s, c in inputs.classes.items() if c == inputs.classes[symbol] and s in folds)
        usable = [r for r in base_runs if r["symbol"] in group and r["model"] in base_models]
        for k, fold in enumerate(sym_folds):
            if _stack_rows(sym_folds[:k], fold) < min_rows:
                continue  # a warm-up fold: too few earlier out-of-fold rows to learn from
            # its own symbol's folds up to this one (training rows + the rows it stacks); other symbols
            # of the asset class: all their folds (their numbering differs; the purge cuts them anyway)
            ids = sorted({r["model_run"] for r in usable if r["symbol"] != symbol or r["fold"] <= fold.fold})
            fut = _submit(wh, inputs, ENSEMBLE, symbol, fold, cfg, base_runs=ids, group_symbols=group)
            futures[fut] = (ENSEMBLE, symbol, fold.fold)
    if announce:
        progress.report("evaluate", total=len(futures))
    _collect(futures, runs, failed)
    return runs, failed


def fold_runner() -> ThreadPoolTaskRunner:
    """Fold tasks run in threads, at most one per core (``VOLRISK_EVAL_WORKERS`` overrides).

    Fits are CPU-bound (torch, arch, LightGBM); hundreds of concurrent fold threads only thrash.
    """
    workers = int(os.environ.get("VOLRISK_EVAL_WORKERS", "0")) or max(2, os.cpu_count() or 2)
    return ThreadPoolTaskRunner(max_workers=workers)


def _existing_warehouse(warehouse: str | None) -> str:
    wh = str(Path(warehouse) if warehouse else get_settings().warehouse)
    if not Path(wh).is_file():
        raise ConfigError(f"warehouse {wh} does not exist; ingest bars and build features first")
    return wh


def _check_models(names: Sequence[str]) -> None:
    from tasks.models.base import model_names

    unknown = sorted(set(names) - set(model_names()))
    if unknown:
        raise ConfigError(f"unknown models {unknown}; registered: {model_names()}")


def _count_stack_folds(folds: dict[str, list[Fold]], spec: ExperimentSpec) -> int:
    min_rows = int(spec.model_config_for(ENSEMBLE).get("min_rows", Ensemble().cfg["min_rows"]))
    return sum(1 for fs in folds.values() for k, f in enumerate(fs) if _stack_rows(fs[:k], f) >= min_rows)


def submit_base_folds(
    wh: str,
    inputs: EvalInputs,
    spec: ExperimentSpec,
    names: list[str],
    folds: dict[str, list[Fold]],
    stack: bool,
) -> tuple[dict[Any, tuple[str, str, int]], int]:
    """Submit every (model, symbol, fold) task; returns the futures and the number of stack folds."""
    futures: dict[Any, tuple[str, str, int]] = {}
    for model in names:
        cfg = _model_config(model, spec.device, spec.config)
        for symbol, sym_folds in folds.items():
            for fold in sym_folds:
                futures[_submit(wh, inputs, model, symbol, fold, cfg)] = (model, symbol, fold.fold)
    return futures, _count_stack_folds(folds, spec) if stack else 0


@flow(name="evaluate", log_prints=True, task_runner=fold_runner())
def evaluate_flow(
    spec: ExperimentSpec, warehouse: str | None = None, reports_dir: str | None = None
) -> dict[str, Any]:
    """Walk-forward evaluation of the spec's models on its symbols, the stacked ensemble, and the report.

    Parameters
    ----------
    spec : ExperimentSpec
        What to evaluate and how (symbols, models, test window, folds, stacking, costs).
    warehouse : str | None
        DuckDB file (default: the configured warehouse).
    reports_dir : str | None
        Folder of the reports (default: the configured reports folder).

    Returns
    -------
    dict
        ``report`` (markdown path), ``json``, ``failed`` (folds that failed, with the error),
        ``runs`` (model runs per fold), ``scored`` (scoring-set size) and ``passed_gates``.
    """
    logger = get_run_logger()
    t0 = time.perf_counter()
    wh = _existing_warehouse(warehouse)
    names, stack = spec.model_list(default_models())
    _check_models(names)
    inputs = _read_inputs(wh, spec.symbols)
    windows = symbol_windows(inputs.features, spec.symbols, spec.test_start, spec.test_end)
    fold_windows = with_warmup(inputs.features, windows, spec.stack_warmup if stack else 0)
    folds = plan_folds(
        inputs.features,
        fold_windows,
        spec.refit_every,
        spec.window,
        spec.train_size,
        spec.embargo,
        spec.train_start,
    )
    futures, n_stack = submit_base_folds(wh, inputs, spec, names, folds, stack)
    n_folds = {s: len(f) for s, f in folds.items()}
    logger.info(
        f"evaluate {spec.name}: {len(names)} models x folds {n_folds} = {len(futures)} fold tasks, "
        f"test windows {params_windows(windows)}"
    )
    progress.report("evaluate", total=len(futures) + n_stack)
    runs: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    _collect(futures, runs, failed)
    if stack:
        broken = {(f["model"], f["symbol"]) for f in failed}
        bases = [m for m in names if all((m, s) not in broken for s in spec.symbols)]
        ens_runs, ens_failed = run_ensemble(
            wh, inputs, folds, runs, bases, spec.model_config_for(ENSEMBLE), announce=False
        )
        runs += ens_runs
        failed += ens_failed
    from flows.scoring import score_and_report

    stored_windows = {s: [lo.isoformat(), hi.isoformat()] for s, (lo, hi) in windows.items()}
    params = spec.params(names, stack, stored_windows, n_folds, describe_targets(inputs.features))
    out = score_and_report(wh, spec.name, params, runs, failed, inputs.classes, inputs.calendars, reports_dir)
    out["wall_s"] = time.perf_counter() - t0
    out["statuses"] = {
        status: sum(1 for r in runs if r.get("status") == status) for status in ("success", "cached")
    } | {"failed": len(failed)}
    logger.info(
        f"evaluate {spec.name}: report {out['report']} ({len(failed)} failed folds, {out['wall_s']:.0f} s)"
    )
    return out


@flow(name="stack", log_prints=True, task_runner=fold_runner())
def stack_flow(
    symbols: list[str] | None = None,
    name: str | None = None,
    warehouse: str | None = None,
    config: dict[str, Any] | None = None,
    reports_dir: str | None = None,
) -> dict[str, Any]:
    """Re-stack a stored evaluation on its recorded out-of-fold predictions and rewrite its report.

    Parameters
    ----------
    symbols : list[str] | None
        Restrict to these symbols (default: the evaluation's).
    name : str | None
        The evaluation (default: the latest one).
    warehouse : str | None
        DuckDB file (default: the configured warehouse).
    config : dict | None
        Ensemble config overrides.
    reports_dir : str | None
        Folder of the reports.
    """
    wh = str(Path(warehouse) if warehouse else get_settings().warehouse)
    with Warehouse.at(wh).reading() as con:
        manifest = read_evaluation(con, name)
    if manifest is None:
        raise ConfigError(
            "no stored evaluation to stack; run `volrisk evaluate` (or the weekly-evaluate deployment) first"
        )
    params = manifest["params"]
    spec = ExperimentSpec.from_params(params, manifest["name"])
    syms = symbols or spec.symbols
    inputs = _read_inputs(wh, syms)
    windows = {
        s: (date.fromisoformat(w[0]), date.fromisoformat(w[1]))
        for s, w in params["windows"].items()
        if s in syms
    }
    folds = plan_folds(
        inputs.features,
        with_warmup(inputs.features, windows, spec.stack_warmup),
        spec.refit_every,
        spec.window,
        spec.train_size,
        spec.embargo,
        spec.train_start,
    )
    base = [r for r in manifest["runs"]["runs"] if r["model"] != ENSEMBLE and r["symbol"] in syms]
    bases = sorted({r["model"] for r in base})
    ens_runs, ens_failed = run_ensemble(wh, inputs, folds, base, bases, config)
    failed = [f for f in manifest["runs"].get("failed", []) if f["model"] != ENSEMBLE] + ens_failed
    from flows.scoring import score_and_report

    return score_and_report(
        wh,
        manifest["name"],
        {**params, "symbols": syms},
        base + ens_runs,
        failed,
        inputs.classes,
        inputs.calendars,
        reports_dir,
    )
