"""``pipeline_flow``: the whole DAG, ingest -> quality + features -> evaluation, from the stage flows.

Also the thin flows the deployments in ``deployments/prefect.yaml`` run:

- ``daily_flow`` (``daily-ingest``): ingest and build features for the UTC day before its scheduled
  start time;
- ``weekly_evaluate_flow`` (``weekly-evaluate``) and ``weekly_stack_flow`` (``weekly-stack``): the
  evaluation window ends at the scheduled start date;
- ``backfill_flow`` (``backfill``): a date range in chunks (logic in :mod:`flows.backfill`).

The pipeline's parameters and stage runners are in :mod:`flows.stages`.

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

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from core.errors import ConfigError
from flows.backfill import BackfillSettings, run_backfill
from flows.backfill_runners import InProcessRunner
from flows.stages import (
    Device,
    EvaluationWindow,
    PipelineParams,
    PipelineSource,
    failure,
    resolve_device,
    run_evaluation_stage,
    run_features_stage,
    run_ingest_stage,
    validate_params,
)
from tasks.experiment import ExperimentSpec


def scheduled_date() -> date:
    """The UTC date of this flow run's scheduled start (now, outside a scheduled run)."""
    from prefect.runtime import flow_run

    ts = flow_run.scheduled_start_time
    if not isinstance(ts, datetime):  # pragma: no cover - defensive: a string from the API
        ts = datetime.fromisoformat(str(ts))
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).date()


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
    symbols: list[str], start: date | None = None, end: date | None = None,
    source: PipelineSource = "samples", models: list[str] | None = None,
    evaluation: EvaluationWindow | None = None, device: Device = "auto", evaluate: bool = True,
    paths: list[str] | None = None, fmt: str | list[str] | None = None, interval: str | None = None,
    seed: int = 0, name: str = "pipeline", warehouse: str | None = None,
) -> State[Any]:  # fmt: skip
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
        symbols=symbols, start=start, end=end, source=source, models=models,
        evaluation=evaluation or EvaluationWindow(), device=device, evaluate=evaluate, paths=paths,
        fmt=fmt, interval=interval, seed=seed, name=name, warehouse=warehouse,
    )  # fmt: skip
    logger = get_run_logger()
    tally = _Tally()
    if p.source != "warehouse":
        _ingest_step(p, tally)
        logger.info("ingest: %s", tally.stages["ingest"])
    features = _features_step(p, tally)
    logger.info("features: %s", tally.stages["features"])
    evaluation_out, resolved_device = _evaluate_step(p, tally) if p.evaluate else (None, None)
    summary: dict[str, Any] = {
        "params": p.model_dump(mode="json"), "device": resolved_device, "stages": tally.stages,
        "failed": tally.failures, "skipped": tally.skipped, "features": features,
        "evaluation": evaluation_out, "report": (evaluation_out or {}).get("report"),
        "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    return _publish(summary, p.name)


def _publish(summary: dict[str, Any], name: str) -> State[Any]:
    """Finish the pipeline run (artifact ``pipeline-summary-<name>``); print where its report is."""
    state = finish(summary, f"pipeline-summary-{name}")
    if summary["report"]:
        print(f"report: {summary['report']}")
    return state


@dataclass
class _Tally:
    """What a pipeline run has found so far: failures, symbols left out (and why), stage counts."""

    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


def _ingest_step(p: PipelineParams, tally: _Tally) -> None:
    """Ingest; a symbol whose ingest failed is left out of what follows."""
    t = time.perf_counter()
    rows, ingest_failures = run_ingest_stage(p)
    tally.failures += ingest_failures
    tally.stages["ingest"] = _stage_counts(rows, time.perf_counter() - t)
    tally.stages["ingest"]["failed"] = len(ingest_failures)
    for f in ingest_failures:
        tally.skipped.setdefault(str(f["symbol"]), f"ingest partition {f['partition']} failed")


def _features_step(p: PipelineParams, tally: _Tally) -> dict[str, Any] | None:
    """Quality gate and features of the symbols still in; returns ``features_flow``'s result."""
    t = time.perf_counter()
    feature_symbols = [s for s in p.symbols if s not in tally.skipped]
    features, feature_failures, blocked = run_features_stage(p, feature_symbols)
    tally.failures += feature_failures
    tally.stages["features"] = _stage_counts(
        features["partitions"] if features else [], time.perf_counter() - t
    )
    tally.stages["features"]["failed"] = len(feature_failures)
    for sym, why in blocked.items():
        tally.skipped.setdefault(sym, why)
    return features


def _evaluate_step(p: PipelineParams, tally: _Tally) -> tuple[dict[str, Any] | None, str | None]:
    """Evaluate the symbols still in; returns (``evaluate_flow``'s result, the device it used)."""
    t = time.perf_counter()
    eval_symbols = [s for s in p.symbols if s not in tally.skipped]
    resolved_device: str | None = None
    try:
        resolved_device = resolve_device(p.device)
    except ConfigError as exc:
        tally.failures.append(failure("evaluate", "all", str(exc)))
        eval_symbols = []
    evaluation_out, eval_failures = run_evaluation_stage(p, eval_symbols)
    tally.failures += eval_failures
    tally.stages["evaluate"] = {
        "partitions": len(eval_symbols),
        "ok": len(eval_symbols) if evaluation_out is not None else 0,
        "failed": len(eval_failures),
        "seconds": time.perf_counter() - t,
    }
    return evaluation_out, resolved_device


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
    """Backfill ``[start, end)`` chunk by chunk in this process; see :mod:`flows.backfill`."""
    settings = BackfillSettings(
        start=start, end=end, symbols=symbols, source=source, chunk=chunk, stage=stage,
        task_runner=task_runner, interval=interval, seed=seed, warehouse=warehouse,
    )  # fmt: skip
    summary = run_backfill(settings, InProcessRunner(settings))
    return finish(summary, "backfill-summary")
