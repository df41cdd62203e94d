"""Minute mode as a Prefect flow: read minute bars, run the pure backtest, store predictions, report.

``minute_risk_flow(symbol, spec, warehouse, start, end, reports_dir)``:

1. ``load-minute-bars``: the symbol's ``1m`` bars in ``[start, end)`` and its instrument's time zone
   (``tasks.instruments.calendar_timezone`` of its calendar; UTC for 24/7 crypto) from the warehouse.
2. ``minute-backtest``: :func:`tasks.minute_risk.minute_risk_backtest` (fits, forecasts, online
   calibration, backtests), reporting training epochs and forecasts to :mod:`flows.progress`.
3. ``store-minute-run``: the hold-out predictions (``minute_predictions``) and the run
   (``minute_runs``) in one writer session, and the report (:mod:`tasks.minute_report`).

The run id is a content hash of the symbol, the spec, the window and the bars' checksum, so rerunning
the same backtest replaces its rows with identical ones. Nothing is cached across runs: the
backtest is the work asked for.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from core.errors import ConfigError, DataError
from core.hashing import content_hash
from core.schema import INTERVAL_SECONDS, INTRADAY_INTERVALS
from flows import progress
from flows.orchestration import TASK_DEFAULTS
from tasks.config import get_settings
from tasks.intraday_seasonality import SeasonalitySettings
from tasks.minute_report import write_minute_report
from tasks.minute_risk import (
    DEFAULT_MINUTE_MODELS,
    MinuteRiskResult,
    MinuteRiskSpec,
    minute_risk_backtest,
)

_NO_CACHE = {**TASK_DEFAULTS, "cache_policy": NO_CACHE, "persist_result": False}
MINUTE_INTERVAL = "1m"


def interval_label(minutes: int) -> str:
    """The stored interval name of ``minutes``-long bars (``ConfigError`` if not intraday)."""
    for name in INTRADAY_INTERVALS:
        if INTERVAL_SECONDS[name] == 60 * minutes:
            return name
    raise ConfigError(
        f"interval_minutes={minutes!r}: expected one of 1, 5, 15, 30, 60 ({INTRADAY_INTERVALS})"
    )


def _known_keys(given: dict[str, Any], cls: type, what: str) -> None:
    """Raise ``ConfigError`` naming any key of ``given`` that is not a field of the dataclass ``cls``."""
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what}(s) {unknown}; known: {known}")


def spec_from_dict(params: dict[str, Any]) -> MinuteRiskSpec:
    """A :class:`MinuteRiskSpec` from its JSON form (``MinuteRiskSpec.as_dict``)."""
    d = dict(params)
    _known_keys(d, MinuteRiskSpec, "minute-mode setting")
    seasonality = dict(d.get("seasonality") or {})
    _known_keys(seasonality, SeasonalitySettings, "seasonality setting")
    d["seasonality"] = SeasonalitySettings(**seasonality)
    d["models"] = tuple(d.get("models") or DEFAULT_MINUTE_MODELS)
    return MinuteRiskSpec(**d)


def load_minute_bars(
    warehouse: str, symbol: str, start: datetime | None, end: datetime | None,
    interval: str = MINUTE_INTERVAL,
) -> tuple[pl.DataFrame, str, str]:  # fmt: skip
    """``(bars, time zone, bars checksum)`` of one symbol's stored ``interval`` bars."""
    from tasks.instruments import calendar_timezone
    from warehouse.bars import bars_checksum, read_bars
    from warehouse.catalog import get_instrument
    from warehouse.resource import Warehouse

    with Warehouse.at(warehouse).reading() as con:
        bars = read_bars(con, symbol, interval, start, end)
        inst = get_instrument(con, symbol)
        checksum = bars_checksum(con, symbol)
    if bars.height == 0:
        raise DataError(f"no {interval} bars stored for {symbol} in the window; ingest {interval} bars first")
    tz = (inst.timezone or calendar_timezone(inst.calendar)) if inst is not None else "UTC"
    if inst is not None and inst.calendar == "24x7":
        tz = "UTC"
    return bars, tz, checksum


def _listener(seen: dict[str, int]) -> Any:
    """Turn ``progress(stage, done, total)`` of the pure pipeline into :func:`flows.progress.report`."""

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in seen:
            seen[stage] = 0
            progress.report(stage, total)
        for _ in range(max(0, done - seen[stage])):
            progress.report(stage, 0, {"stage": stage})
        seen[stage] = max(seen[stage], done)

    return on_progress


@task(name="minute-backtest", task_run_name="minute-backtest-{symbol}", **_NO_CACHE)
def run_backtest(symbol: str, warehouse: str, spec: dict[str, Any], start: datetime | None,
                 end: datetime | None) -> tuple[MinuteRiskResult, str]:  # fmt: skip
    """Load the bars, run the pure pipeline; returns the result and its run id."""
    s = spec_from_dict(spec)
    bars, tz, checksum = load_minute_bars(warehouse, symbol, start, end, interval_label(s.interval_minutes))
    s = replace(s, timezone=tz) if "timezone" not in spec else s
    run_id = content_hash("minute", symbol, s.as_dict(), str(start), str(end), checksum)
    return minute_risk_backtest(bars, s, progress=_listener({})), run_id


@task(name="store-minute-run", task_run_name="store-minute-run-{run_id}", **_NO_CACHE)
def store_and_report(
    result: MinuteRiskResult, run_id: str, warehouse: str, reports_dir: str | None
) -> dict[str, Any]:
    """Write the report, then the predictions and the run row in one writer session."""
    from warehouse.minute_risk import write_minute_predictions, write_minute_run
    from warehouse.resource import Warehouse

    folder = Path(reports_dir) if reports_dir else get_settings().reports
    paths = write_minute_report(result, folder, run_id)
    symbol = result.spec.symbol
    with Warehouse.at(warehouse).writing() as con:
        n = write_minute_predictions(con, result.predictions, run_id, symbol)
        write_minute_run(con, {
            "run_id": run_id, "symbol": symbol, "spec": result.spec.as_dict(), "meta": result.meta,
            "summary": result.summary, "recommended": result.recommended, "report": paths["md"],
        })  # fmt: skip
    return {"rows": n, **paths}


@flow(name="minute-risk", log_prints=True)
def minute_risk_flow(
    symbol: str,
    spec: dict[str, Any],
    warehouse: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    reports_dir: str | None = None,
) -> dict[str, Any]:
    """Minute-mode VaR/ES backtest of one symbol (module docstring).

    Returns
    -------
    dict[str, Any]
        ``run_id``, ``symbol``, ``meta``, ``summary`` (one row per model and variant),
        ``recommended``, ``rows`` stored, and the report paths ``md``, ``json``, ``plots``.
    """
    wh = str(warehouse or get_settings().warehouse)
    result, run_id = run_backtest(symbol, wh, spec, start, end)
    stored = store_and_report(result, run_id, wh, reports_dir)
    return {
        "run_id": run_id, "symbol": symbol, "meta": result.meta, "summary": result.summary,
        "recommended": result.recommended, **stored,
    }  # fmt: skip
