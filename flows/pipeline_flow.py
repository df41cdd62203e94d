"""``pipeline_flow``: the whole DAG, ingest -> quality + features -> evaluation, from the stage flows.

Also the thin flows the deployments in ``deployments/prefect.yaml`` run:

- ``daily_flow`` (``daily-ingest``): ingest and build features for the UTC day before its scheduled
  start time;
- ``weekly_evaluate_flow`` (``weekly-evaluate``) and ``weekly_stack_flow`` (``weekly-stack``): the
  evaluation window ends at the scheduled start date;
- ``backfill_flow`` (``backfill``): a date range in chunks (logic in :mod:`flows.backfill`).

Failure isolation: a failed partition stops only what depends on it.

- An ingest partition that failed (or an ingest stage that could not start) takes its symbol out of
  features and evaluation.
- A features partition that raised takes its symbol out of evaluation. A month the data-quality gate
  blocked is left out of features (it is reported as failed with the checks that failed), and the
  symbol goes on to evaluation with that month's sessions missing.
- Evaluation failures are reported per partition as ``evaluate_flow`` returns them.

The flow ends ``Completed`` when nothing failed and ``Failed`` otherwise; either way its message
and the markdown artifact ``pipeline-summary-<name>`` list every failed partition and why, and the
state's result is the summary dict (``run_pipeline`` returns it without raising).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError
from tasks.config import get_settings
from tasks.experiment import ExperimentSpec

Device = Literal["auto", "cpu", "cuda"]
PipelineSource = Literal["samples", "file", "synthetic", "yfinance", "warehouse"]
_SYMBOL = re.compile(r"^[A-Za-z0-9^.=_-]{1,32}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class EvaluationWindow(BaseModel):
    """Walk-forward evaluation window; ``None`` leaves the choice to ``evaluate_flow``."""

    model_config = ConfigDict(extra="forbid")

    test_start: date | None = Field(None, description="First out-of-sample session.")
    test_end: date | None = Field(None, description="Last out-of-sample session.")
    train_start: date | None = Field(None, description="First training session (default: all history).")
    refit_every: int = Field(63, ge=1, le=2520, description="Refit every k sessions.")

    @model_validator(mode="after")
    def _ordered(self) -> EvaluationWindow:
        if self.test_start and self.test_end and self.test_start > self.test_end:
            raise ValueError(f"test_start {self.test_start} is after test_end {self.test_end}")
        if self.train_start and self.test_start and self.train_start >= self.test_start:
            raise ValueError(f"train_start {self.train_start} must be before test_start {self.test_start}")
        return self


class PipelineParams(BaseModel):
    """Every parameter of :func:`pipeline_flow`, validated together (cross-field rules included)."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[str] = Field(..., min_length=1, description="Instruments, e.g. BTC-USDT EURUSD SPY.")
    start: date | None = Field(None, description="First UTC date (inclusive); default: all data.")
    end: date | None = Field(None, description="Last UTC date (exclusive); default: all data.")
    source: PipelineSource = Field(
        "samples",
        description="samples (bundled real data), file, synthetic, yfinance, or warehouse (bars "
        "already stored: skip ingest).",
    )
    paths: list[str] | None = Field(None, description="Vendor files, for source=file.")
    fmt: str | list[str] | None = Field(None, description="File format(s), for source=file.")
    interval: str | None = Field(None, description="Bar interval (synthetic/yfinance; files infer it).")
    seed: int = Field(0, ge=0, description="Seed of the synthetic source.")
    models: list[str] | None = Field(None, description="Model registry names (default: evaluate_flow's).")
    evaluation: EvaluationWindow = Field(default_factory=EvaluationWindow)
    device: Device = Field("auto", description="Training device; auto follows $VOLRISK_DEVICE.")
    evaluate: bool = Field(True, description="Run train/predict/evaluate/stack/report after features.")
    name: str = Field("pipeline", description="Run label: report name and summary artifact key.")
    warehouse: str | None = Field(None, description="DuckDB file (default: the configured warehouse).")

    @field_validator("symbols")
    @classmethod
    def _symbols_ok(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not _SYMBOL.match(s) or ".." in s]
        if bad:
            raise ValueError(f"invalid symbols {bad}; expected ^[A-Za-z0-9^.=_-]{{1,32}}$")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate symbols in {value}")
        return value

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"name {value!r}: lowercase letters, digits and dashes, at most 63")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineParams:
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end} (end is exclusive)")
        if self.source == "file" and not self.paths:
            raise ValueError("source 'file' needs paths")
        if self.source in ("synthetic", "yfinance") and (self.start is None or self.end is None):
            raise ValueError(f"source {self.source!r} needs both start and end")
        if self.source == "samples":
            from flows.cli import SAMPLE_FILES

            known = {sym for _, sym, _ in SAMPLE_FILES}
            missing = [s for s in self.symbols if s not in known]
            if missing:
                raise ValueError(f"no bundled samples for {missing}; the samples hold {sorted(known)}")
        return self

    def wh_path(self) -> str:
        return str(Path(self.warehouse) if self.warehouse else get_settings().warehouse)


def validate_params(**values: Any) -> PipelineParams:
    """Build :class:`PipelineParams`, turning pydantic's error into one readable ``ConfigError``."""
    try:
        return PipelineParams(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid pipeline parameters: {problems}") from None


def resolve_device(device: str) -> str:
    """``auto`` follows ``$VOLRISK_DEVICE`` (set by the ``gpu`` work pool's job variables).

    ``cuda`` without a usable GPU is an error, unless the worker allows a CPU fallback with
    ``VOLRISK_ALLOW_CPU_FALLBACK=1`` (``make server`` sets it where ``nvidia-smi`` finds no GPU).
    """
    wanted = device if device != "auto" else os.environ.get("VOLRISK_DEVICE", "auto")
    if wanted not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device {wanted!r} (from $VOLRISK_DEVICE?) is not auto, cpu or cuda")
    if wanted == "cuda":
        import torch

        if not torch.cuda.is_available():
            if os.environ.get("VOLRISK_ALLOW_CPU_FALLBACK") == "1":
                return "cpu"
            raise ConfigError("device 'cuda' requested but torch sees no CUDA device")
    return wanted


def scheduled_date() -> date:
    """The UTC date of this flow run's scheduled start (now, outside a scheduled run)."""
    from prefect.runtime import flow_run

    ts = flow_run.scheduled_start_time
    if not isinstance(ts, datetime):  # pragma: no cover - defensive: a string from the API
        ts = datetime.fromisoformat(str(ts))
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).date()


def _failure(stage: str, partition: str, error: str, symbol: str | None = None) -> dict[str, Any]:
    return {"stage": stage, "symbol": symbol, "partition": partition, "error": error}


def _sample_inputs(symbols: list[str]) -> tuple[list[str], list[str], list[str]]:
    from flows.cli import SAMPLE_FILES, SAMPLES_DIR

    chosen = [(name, sym, fmt) for name, sym, fmt in SAMPLE_FILES if sym in symbols]
    missing = [name for name, _, _ in chosen if not (SAMPLES_DIR / name).is_file()]
    if missing:
        raise ConfigError(f"bundled sample files missing from {SAMPLES_DIR}: {missing}")
    return (
        [sym for _, sym, _ in chosen],
        [str(SAMPLES_DIR / name) for name, _, _ in chosen],
        [fmt for _, _, fmt in chosen],
    )


def run_ingest_stage(
    p: PipelineParams, task_runner: Any = None, inline: bool = False
) -> tuple[list[dict[str, Any]], list[dict]]:
    """Run ``ingest_flow`` for ``p``; returns (partition rows, failures). Never raises for data.

    ``inline``: run the flow's body in the current flow run (its tasks become tasks of that run)
    instead of as a subflow run: no flow-run API round-trips or heartbeat thread per call.
    """
    from flows.ingest_flow import ingest_flow

    if inline:
        flow_fn: Any = ingest_flow.fn
    else:
        flow_fn = ingest_flow.with_options(task_runner=task_runner) if task_runner else ingest_flow
    kwargs: dict[str, Any] = {"start": p.start, "end": p.end, "warehouse": p.wh_path()}
    if p.source == "samples":
        symbols, paths, fmts = _sample_inputs(p.symbols)
        kwargs.update(symbols=symbols, paths=paths, fmt=fmts, source="file")
    elif p.source == "file":
        kwargs.update(symbols=p.symbols, paths=p.paths, fmt=p.fmt, source="file", interval=p.interval)
    else:
        kwargs.update(symbols=p.symbols, source=p.source, interval=p.interval, seed=p.seed)
    try:
        rows = flow_fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the whole stage failed: every symbol depends on it
        error = f"{type(exc).__name__}: {exc}"
        return [], [_failure("ingest", "all", error, s) for s in p.symbols]
    failures = [
        _failure("ingest", str(r.get("location")), str(r.get("error")), r.get("symbol"))
        for r in rows
        if r.get("status") == "failed"
    ]
    return rows, failures


def symbols_with_bars(
    wh_path: str, symbols: list[str], start: date | None, end: date | None
) -> dict[str, str]:
    """``{symbol: reason}`` for the symbols that have no intraday bars in ``[start, end)``."""
    from flows.preflight import chosen_interval
    from warehouse.bars import bars_version, stored_intervals
    from warehouse.catalog import features_interval
    from warehouse.db import session

    lo = datetime(start.year, start.month, start.day, tzinfo=UTC) if start else None
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC) if end else None
    missing: dict[str, str] = {}
    if not Path(wh_path).is_file():
        return {s: f"warehouse {wh_path} does not exist" for s in symbols}
    with session(wh_path, read_only=True) as con:
        for symbol in symbols:
            stored = stored_intervals(con, symbol)
            if not [s for s in stored if s[0] != "1d"]:
                missing[symbol] = "no intraday bars stored"
                continue
            # the interval features_flow picks: the stored features', else the longest history
            interval, _, first, last = chosen_interval(symbol, stored, None, features_interval(con, symbol))
            empty = (hi is not None and first >= hi) or (lo is not None and last < lo)
            if not empty and lo is not None and hi is not None:
                empty = bars_version(con, symbol, interval, lo, hi).startswith("0:")
            if empty:
                missing[symbol] = f"no {interval} bars in range (stored {first:%Y-%m-%d}..{last:%Y-%m-%d})"
    return missing


def run_features_stage(
    p: PipelineParams,
    symbols: list[str],
    task_runner: Any = None,
    missing_ok: bool = False,
    inline: bool = False,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, str]]:
    """Run ``features_flow``; returns (its result, failures, {symbol: reason} blocked from evaluation).

    A symbol without bars in the range is a failure, or (``missing_ok``, for backfill chunks before a
    symbol's history starts) is left out silently. ``inline`` as in :func:`run_ingest_stage`.
    """
    from flows.features_flow import features_flow

    if not symbols:
        return None, [], {}
    failures: list[dict[str, Any]] = []
    blocked: dict[str, str] = {}
    for symbol, reason in symbols_with_bars(p.wh_path(), symbols, p.start, p.end).items():
        if missing_ok:
            blocked[symbol] = reason
            continue
        failures.append(_failure("features", f"{symbol} {p.start}..{p.end}", reason, symbol))
        blocked[symbol] = f"features: {reason}"
    todo = [s for s in symbols if s not in blocked]
    if not todo:
        return None, failures, blocked
    if inline:
        flow_fn: Any = features_flow.fn
    else:
        flow_fn = features_flow.with_options(task_runner=task_runner) if task_runner else features_flow
    try:
        result = flow_fn(
            symbols=todo, start=p.start, end=p.end, cross_asset=len(todo) >= 2, warehouse=p.wh_path()
        )
    except Exception as exc:  # noqa: BLE001 - the stage could not run at all
        error = f"{type(exc).__name__}: {exc}"
        for s in todo:
            failures.append(_failure("features", "all", error, s))
            blocked[s] = f"features: {error}"
        return None, failures, blocked
    for r in result["failed"]:
        label = f"{r['symbol']}/{r['interval']}/{r['start']}..{r['end']}"
        failures.append(_failure("features", label, f"{r['status']}: {r.get('error')}", r["symbol"]))
        if r["status"] == "failed":  # blocked months are data decisions; the symbol goes on
            blocked.setdefault(r["symbol"], f"features partition {label} failed")
    return result, failures, blocked


def run_evaluation_stage(p: PipelineParams, symbols: list[str]) -> tuple[dict[str, Any] | None, list[dict]]:
    """Walk-forward train -> predict -> evaluate -> stack -> report through ``evaluate_flow``."""
    if not symbols:
        return None, []
    try:
        from flows.evaluate_flow import evaluate_flow
    except ImportError as exc:
        return None, [_failure("evaluate", "all", f"evaluation is not available: {exc}")]
    w = p.evaluation
    try:
        spec = ExperimentSpec(
            symbols=symbols,
            models=p.models,
            test_start=w.test_start.isoformat() if w.test_start else None,
            test_end=w.test_end.isoformat() if w.test_end else None,
            train_start=w.train_start.isoformat() if w.train_start else None,
            refit_every=w.refit_every,
            name=p.name,
            device=resolve_device(p.device),
        )
        out = evaluate_flow(spec, warehouse=p.wh_path())
    except Exception as exc:  # noqa: BLE001
        return None, [_failure("evaluate", "all", f"{type(exc).__name__}: {exc}")]
    failures: list[dict[str, Any]] = []
    for item in out.get("failed") or []:
        if isinstance(item, dict):
            label = str(
                item.get("partition")
                or "/".join(str(item[k]) for k in ("model", "symbol", "fold") if item.get(k) is not None)
                or "?"
            )
            failures.append(_failure("evaluate", label, str(item.get("error", item)), item.get("symbol")))
        else:
            failures.append(_failure("evaluate", str(item), str(item)))
    return out, failures


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary artifact: what ran, per stage, and every failed partition with its reason."""
    p = summary["params"]
    lines = [
        f"# volrisk pipeline `{p['name']}`: {summary['verdict']}",
        "",
        f"symbols {', '.join(p['symbols'])}; dates {p['start'] or 'all'} .. {p['end'] or 'all'} "
        f"(end exclusive); source `{p['source']}`; device `{summary.get('device') or p['device']}`; "
        f"wall {summary['wall_s']:.1f}s",
        "",
        "| stage | partitions | ok | cached | failed | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary["stages"].items():
        lines.append(
            f"| {name} | {s.get('partitions', 0)} | {s.get('ok', 0)} | {s.get('cached', 0)} | "
            f"{s.get('failed', 0)} | {s.get('seconds', 0):.1f} |"
        )
    if summary.get("report"):
        lines += ["", f"Report: `{summary['report']}`"]
    if summary["failed"]:
        lines += ["", "## Failed partitions", "", "| stage | symbol | partition | why |", "|---|---|---|---|"]
        for f in summary["failed"]:
            why = str(f["error"]).replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {f['stage']} | {f.get('symbol') or '-'} | {f['partition']} | {why} |")
    if summary["skipped"]:
        lines += ["", "## Not run because an upstream partition failed", ""]
        lines += [f"- {sym}: {why}" for sym, why in sorted(summary["skipped"].items())]
    return "\n".join(lines) + "\n"


def _stage_counts(rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    statuses = [r.get("status") for r in rows]
    return {
        "partitions": len(rows),
        "ok": sum(s in ("success", "cached") for s in statuses),
        "cached": sum(s == "cached" for s in statuses),
        "failed": sum(s in ("failed", "blocked") for s in statuses),
        "seconds": seconds,
    }


def finish(summary: dict[str, Any], artifact_key: str) -> State[Any]:
    """Publish the summary artifact and turn the summary into the flow's final state."""
    failed = summary["failed"]
    summary["verdict"] = "all partitions succeeded" if not failed else f"{len(failed)} partition(s) failed"
    try:
        create_markdown_artifact(
            markdown=summary_markdown(summary), key=artifact_key, description=summary["verdict"]
        )
    except Exception as exc:  # noqa: BLE001 - an artifact must never fail the run
        get_run_logger().warning("could not publish the summary artifact: %s", exc)
    if not failed:
        return Completed(message=summary["verdict"], data=summary)
    detail = "; ".join(
        f"{f['stage']} {f.get('symbol') or ''} {f['partition']}: {str(f['error'])[:120]}" for f in failed[:8]
    )
    more = f" (+{len(failed) - 8} more, see artifact {artifact_key})" if len(failed) > 8 else ""
    return Failed(message=f"{summary['verdict']}: {detail}{more}", data=summary)


@flow(name="pipeline", log_prints=True)
def pipeline_flow(
    symbols: list[str],
    start: date | None = None,
    end: date | None = None,
    source: PipelineSource = "samples",
    models: list[str] | None = None,
    evaluation: EvaluationWindow | None = None,
    device: Device = "auto",
    evaluate: bool = True,
    paths: list[str] | None = None,
    fmt: str | list[str] | None = None,
    interval: str | None = None,
    seed: int = 0,
    name: str = "pipeline",
    warehouse: str | None = None,
) -> State[Any]:
    """Ingest -> data-quality gate + daily features -> walk-forward evaluation, stacking and report.

    Parameters
    ----------
    symbols : list[str]
        Instruments, e.g. ``["BTC-USDT", "EURUSD", "SPY"]``.
    start, end : date | None
        Half-open UTC date range of the bars to ingest and featurize (default: everything).
    source : {"samples", "file", "synthetic", "yfinance", "warehouse"}
        Where bars come from; ``warehouse`` skips ingestion and uses the bars already stored.
    models : list[str] | None
        Registry names to evaluate (default: ``evaluate_flow``'s set).
    evaluation : EvaluationWindow | None
        Test window, training start and refit cadence.
    device : {"auto", "cpu", "cuda"}
        Training device; ``auto`` follows ``$VOLRISK_DEVICE`` (the gpu work pool sets ``cuda``).
    evaluate : bool
        Run the evaluation stage (False: ingest and features only).
    paths, fmt, interval, seed
        Source details: files and formats for ``file``; interval and seed for ``synthetic``.
    name : str
        Label of the run: the report name and the summary artifact key ``pipeline-summary-<name>``.
    warehouse : str | None
        DuckDB file (default: the configured warehouse).

    Returns
    -------
    State
        ``Completed`` or ``Failed``; its result is the summary dict (``stages``, ``failed``,
        ``skipped``, ``report``, ``features``, ``evaluation``).
    """
    t0 = time.perf_counter()
    p = validate_params(
        symbols=symbols,
        start=start,
        end=end,
        source=source,
        models=models,
        evaluation=evaluation or EvaluationWindow(),
        device=device,
        evaluate=evaluate,
        paths=paths,
        fmt=fmt,
        interval=interval,
        seed=seed,
        name=name,
        warehouse=warehouse,
    )
    logger = get_run_logger()
    failures: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    stages: dict[str, dict[str, Any]] = {}

    if p.source != "warehouse":
        t = time.perf_counter()
        rows, ingest_failures = run_ingest_stage(p)
        failures += ingest_failures
        stages["ingest"] = _stage_counts(rows, time.perf_counter() - t)
        stages["ingest"]["failed"] = len(ingest_failures)
        for f in ingest_failures:
            skipped.setdefault(str(f["symbol"]), f"ingest partition {f['partition']} failed")
        logger.info("ingest: %s", stages["ingest"])

    t = time.perf_counter()
    feature_symbols = [s for s in p.symbols if s not in skipped]
    features, feature_failures, blocked = run_features_stage(p, feature_symbols)
    failures += feature_failures
    stages["features"] = _stage_counts(features["partitions"] if features else [], time.perf_counter() - t)
    stages["features"]["failed"] = len(feature_failures)
    for sym, why in blocked.items():
        skipped.setdefault(sym, why)
    logger.info("features: %s", stages["features"])

    evaluation_out: dict[str, Any] | None = None
    resolved_device: str | None = None
    if p.evaluate:
        t = time.perf_counter()
        eval_symbols = [s for s in p.symbols if s not in skipped]
        try:
            resolved_device = resolve_device(p.device)
        except ConfigError as exc:
            failures.append(_failure("evaluate", "all", str(exc)))
            eval_symbols = []
        evaluation_out, eval_failures = run_evaluation_stage(p, eval_symbols)
        failures += eval_failures
        stages["evaluate"] = {
            "partitions": len(eval_symbols),
            "ok": len(eval_symbols) if evaluation_out is not None else 0,
            "failed": len(eval_failures),
            "seconds": time.perf_counter() - t,
        }

    summary: dict[str, Any] = {
        "params": p.model_dump(mode="json"),
        "device": resolved_device,
        "stages": stages,
        "failed": failures,
        "skipped": skipped,
        "features": features,
        "evaluation": evaluation_out,
        "report": (evaluation_out or {}).get("report"),
        "wall_s": time.perf_counter() - t0,
    }
    state = finish(summary, f"pipeline-summary-{p.name}")
    if summary["report"]:
        print(f"report: {summary['report']}")
    return state


def run_pipeline(**params: Any) -> dict[str, Any]:
    """Call :func:`pipeline_flow` and return its summary whether or not partitions failed.

    Invalid parameters still raise (``ConfigError`` or Prefect's ``ParameterTypeError``).
    """
    state = pipeline_flow(**params, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, dict):
        return result
    if isinstance(result, BaseException):
        raise result
    raise RuntimeError(f"pipeline ended {state.type.value} without a summary: {state.message}")


# --------------------------------------------------------------------------- deployment flows


@flow(name="daily-ingest", log_prints=True)
def daily_flow(
    symbols: list[str],
    source: PipelineSource = "yfinance",
    interval: str | None = "1h",
    day: date | None = None,
    days: int = 1,
    warehouse: str | None = None,
) -> State[Any]:
    """Ingest and build features for one UTC day (default: the day before the scheduled start).

    ``day=None`` is resolved when the run starts, from ``prefect.runtime.flow_run.scheduled_start_time``,
    so a run scheduled for 00:15 UTC on the 2nd processes the 1st, a late run still processes the day
    it was scheduled for, and a manual run processes yesterday. ``days`` > 1 also redoes earlier days
    (late-arriving bars).
    """
    if days < 1:
        raise ConfigError(f"days must be >= 1, got {days}")
    last = day or scheduled_date() - timedelta(days=1)
    print(f"daily-ingest for {last - timedelta(days=days - 1)}..{last} (UTC)")
    state = pipeline_flow(
        symbols=symbols,
        start=last - timedelta(days=days - 1),
        end=last + timedelta(days=1),
        source=source,
        interval=interval,
        evaluate=False,
        name="daily",
        warehouse=warehouse,
        return_state=True,
    )
    summary = state.result(raise_on_failure=False)
    if state.is_completed():
        return Completed(message=state.message, data=summary)
    return Failed(message=state.message, data=summary)


@flow(name="weekly-evaluate", log_prints=True)
def weekly_evaluate_flow(
    symbols: list[str],
    models: list[str] | None = None,
    test_days: int = 364,
    as_of: date | None = None,
    refit_every: int = 63,
    device: Device = "auto",
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Walk-forward evaluation over the ``test_days`` before ``as_of`` (default: the scheduled date)."""
    from flows.evaluate_flow import evaluate_flow

    as_of = as_of or scheduled_date()
    test_end = as_of - timedelta(days=1)
    test_start = as_of - timedelta(days=test_days)
    print(f"weekly-evaluate: test window {test_start}..{test_end}")
    spec = ExperimentSpec(
        symbols=symbols,
        models=models,
        test_start=test_start.isoformat(),
        test_end=test_end.isoformat(),
        refit_every=refit_every,
        name="weekly",
        device=resolve_device(device),
    )
    return evaluate_flow(spec, warehouse=warehouse)


@flow(name="weekly-stack", log_prints=True)
def weekly_stack_flow(symbols: list[str], as_of: date | None = None, warehouse: str | None = None) -> dict:
    """Refit the stacking meta-learner on the predictions the weekly evaluation stored."""
    from flows.evaluate_flow import stack_flow

    print(f"weekly-stack as of {as_of or scheduled_date()}")
    return stack_flow(symbols=symbols, name="weekly", warehouse=warehouse)


@flow(name="backfill", log_prints=True)
def backfill_flow(
    start: date,
    end: date,
    symbols: list[str],
    source: PipelineSource = "samples",
    chunk: Literal["day", "week", "month"] = "month",
    stage: Literal["ingest", "features", "evaluate", "all"] = "all",
    task_runner: Literal["thread", "dask"] = "thread",
    interval: str | None = None,
    seed: int = 0,
    warehouse: str | None = None,
) -> State[Any]:
    """Backfill ``[start, end)`` chunk by chunk; see :func:`flows.backfill.run_backfill`."""
    from flows.backfill import run_backfill

    summary = run_backfill(
        start=start,
        end=end,
        symbols=symbols,
        source=source,
        chunk=chunk,
        stage=stage,
        task_runner=task_runner,
        interval=interval,
        seed=seed,
        warehouse=warehouse,
    )
    return finish(summary, "backfill-summary")
