"""The evaluation flows: walk-forward train -> predict -> score -> stack -> report.

``evaluate_flow``
    One cached, retried ``walk-forward-folds`` task per (model, symbol, block of folds) fits a fresh
    model on each fold's training window and stores its out-of-fold predictions (with the fold id)
    in ``predictions``. The ``ensemble`` then stacks them per asset class, fold by fold, trained only
    on earlier folds. Everything is scored on the same dates (``tasks.scorecard``) and written as a
    report (``tasks.report``) plus Prefect artifacts. Re-running with unchanged inputs is all cache
    hits: each block's key is (model, config, symbol, its folds' windows and origins, feature content
    hash, warehouse id, task source). Blocks run in threads, or in worker processes when many torch
    folds are planned (:mod:`flows.fold_runners`).
``stack_flow``
    Re-stacks and re-reports a stored evaluation from its recorded out-of-fold predictions (the
    weekly-stack deployment), without refitting a base model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import polars as pl
from prefect import flow, get_run_logger
from prefect.futures import as_completed

from core.errors import ConfigError, DataError
from core.hashing import frame_hash
from flows import progress
from flows.fold_runners import choose_runner, eval_workers, fold_runner, thread_runner
from flows.pooled import Planned, member_folds, pooled_plan, submit_panel_block
from flows.steps.evaluate import FoldsFailed, evaluate_folds, fold_payload
from tasks.config import get_settings
from tasks.evaluate import describe_targets, features_version, model_code_hash
from tasks.experiment import ExperimentSpec
from tasks.models.ensemble import Ensemble
from tasks.scorecard import ENSEMBLE
from tasks.walk_forward import Fold, PanelFold, walk_forward_folds
from warehouse.evaluations import read_evaluation
from warehouse.resource import Warehouse

#: Default test window length when none is given: the last two years of sessions.
DEFAULT_TEST_DAYS = 730
AnyFold = TypeVar("AnyFold", Fold, PanelFold)
#: Per pooled model: its panels (members) and each panel's folds (:func:`flows.pooled.pooled_plan`).
PooledPlan = dict[str, list[tuple[list[str], list[PanelFold]]]]


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
    events_first: date | None = None


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
    first = events["date"].min() if events.height else None
    return EvalInputs(feats, classes, wid, calendars, events_version, first)  # type: ignore[arg-type]


def default_models() -> list[str]:
    """Every registered model except the stack itself."""
    from tasks.models.base import model_names

    return [m for m in model_names() if m != ENSEMBLE]


def runnable_defaults(feats: pl.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The default models that can run here on ``feats``, and why each other one is left out (a
    foundation model without its extra or weights; a model whose inputs the data lacks)."""
    from tasks.models.foundation_weights import runnable

    here, unavailable = runnable(default_models())
    keep, skipped = models_with_inputs(here, feats)
    return keep, {**unavailable, **skipped}


def models_with_inputs(names: Sequence[str], feats: pl.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The models whose ``required_inputs`` every symbol has, and why each other one is left out.

    A model named by the user is fitted anyway (and fails with its own message); this only keeps
    the default "every model" from failing on data that lacks a measure (e.g. ``rq`` in an
    imported realized file).
    """
    from tasks.models.base import get_model

    parts = {str(p["symbol"][0]): p for p in feats.partition_by("symbol", maintain_order=True)}
    keep: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        needed = tuple(getattr(get_model(name), "required_inputs", ()))
        lacking = {s: [c for c in needed if c not in p.columns or _all_null(p[c])] for s, p in parts.items()}
        bad = {s: cols for s, cols in lacking.items() if cols}
        if bad:
            by_cols: dict[str, list[str]] = {}
            for s, cols in sorted(bad.items()):
                by_cols.setdefault(", ".join(cols), []).append(s)
            skipped[name] = "; ".join(f"needs {c}, which {', '.join(ss)} lack" for c, ss in by_cols.items())
        else:
            keep.append(name)
    return keep, skipped


def models_with_events(
    names: Sequence[str], folds: dict[str, list[Fold]], events_first: date | None
) -> tuple[list[str], dict[str, str]]:
    """The models that can train on the event calendar in every fold, and why each other one is out.

    An event-conditioned model (``use_events``) fails a fold whose training window ends before the
    calendar's first event; this keeps the default "every model" from failing on history older than
    the calendar (every model is scored on the same targets, so its failed folds would drop those
    targets for all).
    """
    from tasks.models.base import get_model

    early = {
        s: f[0].train_end
        for s, f in folds.items()
        if f and (events_first is None or f[0].train_end < events_first)
    }
    keep: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        if early and getattr(get_model(name), "use_events", False):
            where = ", ".join(f"{s} (ends {d})" for s, d in sorted(early.items()))
            skipped[name] = (
                f"the event calendar starts {events_first}, after the first training window of {where}"
            )
        else:
            keep.append(name)
    return keep, skipped


def _all_null(values: pl.Series) -> bool:
    return values.cast(pl.Float64).fill_nan(None).null_count() == values.len()


def _model_config(model: str, device: str, overrides: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    from tasks.models.base import get_model

    cfg = dict((overrides or {}).get(model, {}))
    built = get_model(model, **cfg)
    full = built.config()
    if "device" in full and "device" not in cfg:
        cfg["device"] = device
    if full.get("weights_fingerprint") and "weights_fingerprint" not in cfg:
        # the weights' content hash enters every fold's cache key (new weights: new forecasts) and
        # each fit refuses weights that changed during the run
        cfg["weights_fingerprint"] = full["weights_fingerprint"]
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


def fold_blocks(folds: Sequence[AnyFold], size: int) -> list[list[AnyFold]]:
    """Consecutive blocks of at most ``size`` folds: one fold task each."""
    return [list(folds[i : i + size]) for i in range(0, len(folds), size)]


def _submit(
    runner: Any,
    wh: str,
    inputs: EvalInputs,
    model: str,
    symbol: str,
    block: Sequence[Fold],
    cfg: dict[str, Any],
    **extra: Any,
) -> Any:
    """Submit one block of folds to ``runner`` (``None``: the flow's own thread runner)."""
    from core.hashing import content_hash

    last = max(f.origins[-1] for f in block)
    version = features_version(inputs.features, extra.get("group_symbols") or [symbol], last)
    version = content_hash(
        version,
        model_code_hash(model == ENSEMBLE),
        inputs.events_version,
        sorted(extra.get("base_runs") or []),
    )
    label = f"fold{block[0].fold}" + (f"-{block[-1].fold}" if len(block) > 1 else "")
    params = {
        "warehouse_path": wh, "warehouse_id": inputs.warehouse_id, "model": model, "symbol": symbol,
        "folds": [fold_payload(f) for f in block], "config": cfg, "data_version": version, "label": label,
        **extra,
    }  # fmt: skip
    return evaluate_folds.submit(**params) if runner is None else runner.submit(evaluate_folds, params)


def _collect(futures: Planned, runs: list[dict[str, Any]], failed: list[dict[str, Any]]) -> None:
    """Each block's folds as runs (``success``/``cached``) or failures, in the order blocks finish."""
    for fut in as_completed(list(futures)):
        model, pairs = futures[fut]
        try:
            out = fut.result()
            status = "cached" if fut.state.name == "Cached" else "success"
            done, fails = [{**r, "status": status} for r in out], []
        except FoldsFailed as exc:
            done = [{**r, "status": "success"} for r in exc.done]
            fails = [{**f, "status": "failed"} for f in exc.failures]
        except Exception as exc:  # noqa: BLE001 - one failed block is reported, the rest go on
            error = f"{type(exc).__name__}: {exc}"
            done = []
            fails = [
                {"model": model, "symbol": symbol, "fold": k, "status": "failed", "error": error}
                for symbol, k in pairs
            ]
        runs += done
        failed += fails
        for item in done + fails:
            progress.report("evaluate", item=item)


def _stack_group(pool: str, symbol: str, classes: dict[str, str], folds: dict[str, list[Fold]]) -> list[str]:
    """The symbols whose rows the ensemble of ``symbol`` trains on (its ``pool`` setting)."""
    if pool == "all":
        return sorted(folds)
    if pool == "none":
        return [symbol]
    return sorted(s for s, c in classes.items() if c == classes[symbol] and s in folds)


def _up_to(run: dict[str, Any], fold: Fold) -> bool:
    """A base run of the stacked symbol whose forecasts start by ``fold``'s last origin (a pooled
    model's folds are numbered on its panel's date axis, so dates decide; older manifests hold no
    ``first_origin`` and were numbered like the ensemble's folds)."""
    first = run.get("first_origin")
    return first <= fold.origins[-1].isoformat() if first else int(run["fold"]) <= fold.fold


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
    runner: Any = None,
    folds_per_task: int = 1,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stack each symbol's folds on the earlier folds' out-of-fold predictions.

    Folds with fewer than the ensemble's ``min_rows`` earlier rows are a warm-up: no ensemble
    forecast is made for them, so the common scoring set starts after them. The rest go in blocks of
    ``folds_per_task``; a block reads the base runs of its last fold, and each fold's fit still sees
    only base forecasts whose target is known by its own ``train_end``.
    """
    runs: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    futures: Planned = {}
    cfg = {**(config or {}), "groups": inputs.classes, "base_models": base_models}
    min_rows = int(cfg.get("min_rows", Ensemble().cfg["min_rows"]))
    pool = str(cfg.get("pool", "class"))
    for symbol, sym_folds in folds.items():
        group = _stack_group(pool, symbol, inputs.classes, folds)
        usable = [r for r in base_runs if r["symbol"] in group and r["model"] in base_models]
        stacked = [f for k, f in enumerate(sym_folds) if _stack_rows(sym_folds[:k], f) >= min_rows]
        for block in fold_blocks(stacked, folds_per_task):
            # its own symbol's folds up to the block's last (training rows + the rows it stacks); other
            # symbols of the asset class: all their folds (their numbering differs; the purge cuts them)
            ids = sorted({r["model_run"] for r in usable if r["symbol"] != symbol or _up_to(r, block[-1])})
            fut = _submit(
                runner, wh, inputs, ENSEMBLE, symbol, block, cfg, base_runs=ids, group_symbols=group
            )
            futures[fut] = (ENSEMBLE, [(symbol, f.fold) for f in block])
    if announce:
        progress.report("evaluate", total=sum(len(pairs) for _, pairs in futures.values()))
    _collect(futures, runs, failed)
    return runs, failed


def _existing_warehouse(warehouse: str | None) -> str:
    wh = str(Path(warehouse) if warehouse else get_settings().warehouse)
    if not Path(wh).is_file():
        raise ConfigError(f"warehouse {wh} does not exist; ingest bars and build features first")
    return wh


def _check_models(
    names: Sequence[str],
    config: dict[str, dict[str, Any]] | None = None,
    calibration: dict[str, Any] | None = None,
    stack: bool = False,
) -> None:
    """Unknown names, models that cannot run here (the first reason) and a calibration naming a
    model that is not evaluated fail before any fold runs."""
    from tasks.models.base import model_names
    from tasks.models.foundation_weights import availability
    from tasks.risk_calibrated import check_calibration

    check_calibration(calibration, [*names, *([ENSEMBLE] if stack else [])])
    unknown = sorted(set(names) - set(model_names()))
    if unknown:
        raise ConfigError(f"unknown models {unknown}; registered: {model_names()}")
    for name in names:
        ok, why = availability(name, (config or {}).get(name))
        if not ok:
            raise ConfigError(f"model {name!r} cannot run here: {why}")


def _count_stack_folds(folds: dict[str, list[Fold]], spec: ExperimentSpec) -> int:
    min_rows = int(spec.model_config_for(ENSEMBLE).get("min_rows", Ensemble().cfg["min_rows"]))
    return sum(1 for fs in folds.values() for k, f in enumerate(fs) if _stack_rows(fs[:k], f) >= min_rows)


def _pooled_and_total(
    spec: ExperimentSpec,
    names: Sequence[str],
    folds: dict[str, list[Fold]],
    fold_windows: dict[str, tuple[date, date]],
    inputs: EvalInputs,
    stack: bool,
) -> tuple[PooledPlan, int]:
    """The pooled models' panels and folds, and the number of (model, symbol, fold) forecasts to make."""
    pooled = pooled_plan(
        names, spec, inputs.features, inputs.classes, fold_windows,
        lambda m: _model_config(m, spec.device, spec.config),
    )  # fmt: skip
    n_pooled = sum(len(member_folds(fs)) for plans in pooled.values() for _, fs in plans)
    n_stack = _count_stack_folds(folds, spec) if stack else 0
    return pooled, sum(len(f) for f in folds.values()) * (len(names) - len(pooled)) + n_pooled + n_stack


def _torch_first(names: Sequence[str]) -> list[str]:
    """The torch models first: the longest blocks start early and short ones fill the tail."""
    from tasks.models.base import get_model
    from tasks.models.checkpoint import Checkpointable

    return sorted(names, key=lambda m: not isinstance(get_model(m), Checkpointable))


def submit_base_folds(
    runner: Any,
    wh: str,
    inputs: EvalInputs,
    spec: ExperimentSpec,
    names: list[str],
    folds: dict[str, list[Fold]],
    pooled: PooledPlan,
) -> Planned:
    """Submit every (model, symbol, block of folds) task, torch models first; a pooled model's
    blocks are panel folds (:mod:`flows.pooled`)."""
    futures: Planned = {}
    for model in _torch_first(names):
        cfg = _model_config(model, spec.device, spec.config)
        if model in pooled:
            for members, panel_folds in pooled[model]:
                for pblock in fold_blocks(panel_folds, spec.folds_per_task):
                    fut = submit_panel_block(runner, wh, inputs, model, members, pblock, cfg)
                    futures[fut] = (model, member_folds(pblock))
            continue
        extra = _panel_inputs(model, cfg, list(folds))
        for symbol, sym_folds in folds.items():
            for block in fold_blocks(sym_folds, spec.folds_per_task):
                futures[_submit(runner, wh, inputs, model, symbol, block, cfg, **extra)] = (
                    model, [(symbol, f.fold) for f in block],
                )  # fmt: skip
    return futures


def _panel_inputs(model: str, cfg: dict[str, Any], symbols: list[str]) -> dict[str, Any]:
    """A model with ``panel_inputs`` (e.g. a global market factor) reads every evaluated symbol."""
    from tasks.train import build_model

    return (
        {"group_symbols": sorted(symbols)} if getattr(build_model(model, cfg), "panel_inputs", False) else {}
    )


def _runner_kind(spec: ExperimentSpec, names: Sequence[str], folds: dict[str, list[Fold]]) -> str:
    """The fold runner of this evaluation (see :func:`flows.fold_runners.choose_runner`)."""
    from tasks.models.base import get_model
    from tasks.models.checkpoint import Checkpointable

    n_folds = sum(len(f) for f in folds.values())
    torch_folds = n_folds * sum(isinstance(get_model(m), Checkpointable) for m in names)
    return choose_runner(spec.runner, spec.device, torch_folds, eval_workers())


class _EvaluationPlan(NamedTuple):
    """What one evaluation runs: models, whether it stacks, test windows and folds."""

    names: list[str]
    stack: bool
    windows: dict[str, tuple[date, date]]
    fold_windows: dict[str, tuple[date, date]]
    folds: dict[str, list[Fold]]


def _plan_evaluation(spec: ExperimentSpec, inputs: Any, logger: Any) -> _EvaluationPlan:
    """The models (defaults this data can run, event models that can train), test windows and folds."""
    defaults, skipped = runnable_defaults(inputs.features)
    for model, why in skipped.items():
        logger.warning(f"evaluate {spec.name}: skipping {model} (not asked for by name): {why}")
    names, stack = spec.model_list(defaults)
    _check_models(names, spec.config, spec.calibration, stack)
    windows = symbol_windows(inputs.features, spec.symbols, spec.test_start, spec.test_end)
    fold_windows = with_warmup(inputs.features, windows, spec.stack_warmup if stack else 0)
    folds = plan_folds(
        inputs.features, fold_windows, spec.refit_every, spec.window, spec.train_size, spec.embargo,
        spec.train_start,
    )  # fmt: skip
    if spec.models is None:
        names, late = models_with_events(names, folds, inputs.events_first)
        for model, why in late.items():
            logger.warning(f"evaluate {spec.name}: skipping {model} (not asked for by name): {why}")
    return _EvaluationPlan(names, stack, windows, fold_windows, folds)


def _with_development_assets(wh: str, spec: ExperimentSpec, logger: Any) -> ExperimentSpec:
    """``spec`` with its development-panel symbols (registered by ``volrisk dev-panel``) counted as
    used to choose settings, so the report never calls them out-of-sample."""
    from flows.dev_panel import DEV_PANEL_SOURCE
    from warehouse.catalog import symbols_with_source

    with Warehouse.at(wh).reading() as con:
        dev = symbols_with_source(con, list(spec.symbols), DEV_PANEL_SOURCE)
    extra = [s for s in dev if s not in (spec.tuned_on or [])]
    if not extra:
        return spec
    logger.info(f"evaluate {spec.name}: development-panel assets reported as in-sample: {', '.join(extra)}")
    return spec.model_copy(update={"tuned_on": [*(spec.tuned_on or []), *extra]})


def _stack_folds(
    wh: str, inputs: Any, spec: ExperimentSpec, folds: dict[str, list[Fold]], names: list[str],
    runner: Any, runs: list[dict[str, Any]], failed: list[dict[str, Any]],
) -> None:  # fmt: skip
    """The ensemble's folds on the bases that did not fail anywhere; appends to ``runs``/``failed``."""
    broken = {(f["model"], f["symbol"]) for f in failed}
    bases = [m for m in names if all((m, s) not in broken for s in spec.symbols)]
    ens_runs, ens_failed = run_ensemble(
        wh, inputs, folds, runs, bases, spec.model_config_for(ENSEMBLE), announce=False,
        runner=runner, folds_per_task=spec.folds_per_task,
    )  # fmt: skip
    runs += ens_runs
    failed += ens_failed


@flow(name="evaluate", log_prints=True, task_runner=thread_runner())
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
    spec = _with_development_assets(wh, spec, logger)
    inputs = _read_inputs(wh, spec.symbols)
    plan = _plan_evaluation(spec, inputs, logger)
    names, stack, windows, folds = plan.names, plan.stack, plan.windows, plan.folds
    kind = _runner_kind(spec, names, folds)
    n_folds = {s: len(f) for s, f in folds.items()}
    pooled, total = _pooled_and_total(spec, names, folds, plan.fold_windows, inputs, stack)
    progress.report("evaluate", total=total)
    runs: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    with fold_runner(kind) as runner:  # type: ignore[arg-type]
        futures = submit_base_folds(runner, wh, inputs, spec, names, folds, pooled)
        logger.info(
            f"evaluate {spec.name}: {len(names)} models x folds {n_folds} in {len(futures)} tasks of <= "
            f"{spec.folds_per_task} folds ({kind} runner), test windows {params_windows(windows)}"
        )
        _collect(futures, runs, failed)
        if stack:
            _stack_folds(wh, inputs, spec, folds, names, runner, runs, failed)
    from flows.scoring import score_and_report

    stored_windows = {s: [lo.isoformat(), hi.isoformat()] for s, (lo, hi) in windows.items()}
    params = spec.params(names, stack, stored_windows, n_folds, describe_targets(inputs.features))
    out = score_and_report(wh, spec.name, params, runs, failed, inputs.classes, inputs.calendars, reports_dir)
    out["wall_s"] = time.perf_counter() - t0
    out["runner"] = kind
    out["statuses"] = {
        status: sum(1 for r in runs if r.get("status") == status) for status in ("success", "cached")
    } | {"failed": len(failed)}
    logger.info(
        f"evaluate {spec.name}: report {out['report']} ({len(failed)} failed folds, {out['wall_s']:.0f} s)"
    )
    return out


@flow(name="stack", log_prints=True, task_runner=thread_runner())
def stack_flow(
    symbols: list[str] | None = None,
    name: str | None = None,
    warehouse: str | None = None,
    config: dict[str, Any] | None = None,
    reports_dir: str | None = None,
    calibration: dict[str, Any] | None = None,
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
    calibration : dict | None
        Calibration config of the risk backtests (:mod:`tasks.risk_calibrated`); default: the
        evaluation's own.
    """
    wh = str(Path(warehouse) if warehouse else get_settings().warehouse)
    with Warehouse.at(wh).reading() as con:
        manifest = read_evaluation(con, name)
    if manifest is None:
        raise ConfigError(
            "no stored evaluation to stack; run `volrisk evaluate` (or the weekly-evaluate deployment) first"
        )
    params = manifest["params"] | ({"calibration": calibration} if calibration else {})
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
    ens_runs, ens_failed = run_ensemble(
        wh, inputs, folds, base, bases, config, folds_per_task=spec.folds_per_task
    )
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
