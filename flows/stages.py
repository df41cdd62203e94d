"""The pipeline's parameters and its stages, run from ``pipeline_flow`` and the backfill runner.

:class:`PipelineParams` validates every parameter of a pipeline run together; ``run_*_stage`` run
one stage flow for those parameters and turn what failed into failure rows (never raising for data),
so a failed partition stops only what depends on it.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError
from core.symbols import validate_symbol
from flows.samples import sample_inputs, sample_symbols
from tasks.config import get_settings
from tasks.experiment import ExperimentSpec

Device = Literal["auto", "cpu", "cuda"]
PipelineSource = Literal["samples", "file", "synthetic", "yfinance", "warehouse"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class EvaluationWindow(BaseModel):
    """Walk-forward evaluation window; ``None`` leaves the choice to ``evaluate_flow``."""

    model_config = ConfigDict(extra="forbid")

    test_start: date | None = Field(default=None, description="First out-of-sample session.")
    test_end: date | None = Field(default=None, description="Last out-of-sample session.")
    train_start: date | None = Field(
        default=None, description="First training session (default: all history)."
    )
    refit_every: int = Field(default=63, ge=1, le=2520, description="Refit every k sessions.")

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
    start: date | None = Field(default=None, description="First UTC date (inclusive); default: all data.")
    end: date | None = Field(default=None, description="Last UTC date (exclusive); default: all data.")
    source: PipelineSource = Field(
        default="samples",
        description="samples (bundled real data), file, synthetic, yfinance, or warehouse (bars "
        "already stored: skip ingest).",
    )
    paths: list[str] | None = Field(default=None, description="Vendor files, for source=file.")
    fmt: str | list[str] | None = Field(default=None, description="File format(s), for source=file.")
    interval: str | None = Field(
        default=None, description="Bar interval (synthetic/yfinance; files infer it)."
    )
    seed: int = Field(default=0, ge=0, description="Seed of the synthetic source.")
    models: list[str] | None = Field(
        default=None, description="Model registry names (default: evaluate_flow's)."
    )
    evaluation: EvaluationWindow = Field(default_factory=EvaluationWindow)
    device: Device = Field(default="auto", description="Training device; auto follows $VOLRISK_DEVICE.")
    evaluate: bool = Field(
        default=True, description="Run train/predict/evaluate/stack/report after features."
    )
    name: str = Field(default="pipeline", description="Run label: report name and summary artifact key.")
    warehouse: str | None = Field(
        default=None, description="DuckDB file (default: the configured warehouse)."
    )

    @field_validator("symbols")
    @classmethod
    def _symbols_ok(cls, value: list[str]) -> list[str]:
        bad: list[str] = []
        rule = ""
        for symbol in value:
            try:
                validate_symbol(symbol)
            except ConfigError as exc:
                bad.append(symbol)
                rule = str(exc).split(": ", 1)[1]
        if bad:
            raise ValueError(f"invalid symbols {bad}; {rule}")
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
            known = sample_symbols()
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


def failure(stage: str, partition: str, error: str, symbol: str | None = None) -> dict[str, Any]:
    return {"stage": stage, "symbol": symbol, "partition": partition, "error": error}


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
        symbols, paths, fmts = sample_inputs(p.symbols)
        kwargs.update(symbols=symbols, paths=paths, fmt=fmts, source="file")
    elif p.source == "file":
        kwargs.update(symbols=p.symbols, paths=p.paths, fmt=p.fmt, source="file", interval=p.interval)
    else:
        kwargs.update(symbols=p.symbols, source=p.source, interval=p.interval, seed=p.seed)
    try:
        rows = flow_fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the whole stage failed: every symbol depends on it
        error = f"{type(exc).__name__}: {exc}"
        return [], [failure("ingest", "all", error, s) for s in p.symbols]
    failures = [
        failure("ingest", str(r.get("location")), str(r.get("error")), r.get("symbol"))
        for r in rows
        if r.get("status") == "failed"
    ]
    return rows, failures


def symbols_with_bars(
    wh_path: str, symbols: list[str], start: date | None, end: date | None
) -> dict[str, str]:
    """``{symbol: reason}`` for the symbols that have no intraday bars in ``[start, end)``.

    A symbol with no bars at all but imported realized measures is not missing: its features are
    built from those measures (``features_flow`` checks their range).
    """
    from flows.preflight import chosen_interval
    from warehouse.bars import bars_version, stored_intervals
    from warehouse.catalog import features_interval
    from warehouse.realized import realized_symbols
    from warehouse.resource import Warehouse

    lo = datetime(start.year, start.month, start.day, tzinfo=UTC) if start else None
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC) if end else None
    missing: dict[str, str] = {}
    if not Path(wh_path).is_file():
        return {s: f"warehouse {wh_path} does not exist" for s in symbols}
    with Warehouse.at(wh_path).reading() as con:
        realized_only = set(realized_symbols(con))
        for symbol in symbols:
            stored = stored_intervals(con, symbol)
            if not [s for s in stored if s[0] != "1d"]:
                if not stored and symbol in realized_only:
                    continue
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
        failures.append(failure("features", f"{symbol} {p.start}..{p.end}", reason, symbol))
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
            failures.append(failure("features", "all", error, s))
            blocked[s] = f"features: {error}"
        return None, failures, blocked
    for r in result["failed"]:
        label = f"{r['symbol']}/{r['interval']}/{r['start']}..{r['end']}"
        failures.append(failure("features", label, f"{r['status']}: {r.get('error')}", r["symbol"]))
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
        return None, [failure("evaluate", "all", f"evaluation is not available: {exc}")]
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
        return None, [failure("evaluate", "all", f"{type(exc).__name__}: {exc}")]
    failures: list[dict[str, Any]] = []
    for item in out.get("failed") or []:
        if isinstance(item, dict):
            label = str(
                item.get("partition")
                or "/".join(str(item[k]) for k in ("model", "symbol", "fold") if item.get(k) is not None)
                or "?"
            )
            failures.append(failure("evaluate", label, str(item.get("error", item)), item.get("symbol")))
        else:
            failures.append(failure("evaluate", str(item), str(item)))
    return out, failures
