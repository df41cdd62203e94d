"""``volrisk risk``: risk backtests; ``volrisk risk minute SYMBOL`` runs minute mode.

Every option is checked (symbol, warehouse, stored minute bars, model settings) before Prefect
starts, so a mistake answers in one line.
"""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from core.errors import ConfigError
from core.schema import INTERVAL_SECONDS, INTRADAY_INTERVALS
from flows import preflight
from flows.cli_common import WarehouseOpt, console, friendly_errors, run_with_progress, warehouse_path

risk_app = typer.Typer(help="Risk backtests (VaR, ES, intervals).", no_args_is_help=True)

#: VaR levels (tail probabilities) minute mode backtests.
MINUTE_ALPHAS = {0.01: "var99", 0.05: "var95"}


def _pairs(values: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--set KEY=VALUE`` (transformer) or ``--set MODEL.KEY=VALUE``; JSON values, else strings."""
    out: dict[str, dict[str, Any]] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. epochs=5 or ewma.lam=0.99)")
        model, dot, field = key.partition(".")
        model, field = (model, field) if dot else ("transformer", key)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(model, {})[field] = value
    return out


def _config(text: str | None) -> dict[str, Any]:
    """``--config``: a JSON object, inline or in a file."""
    if text is None:
        return {}
    if text.strip().startswith("{"):
        return preflight.json_object(text, "--config") or {}
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"--config {text!r} is neither a JSON object nor a file")
    return preflight.json_object(path.read_text(encoding="utf-8"), f"--config {path}") or {}


def _when(value: str | None, option: str) -> datetime | None:
    day = preflight.parse_date(value, option)
    from datetime import UTC

    return None if day is None else datetime.combine(day, time(0), tzinfo=UTC)


def _interval_minutes(spec: dict[str, Any], interval: str) -> int:
    """Minutes per bar of ``--interval``; a ``--config`` that says otherwise raises ``ConfigError``."""
    minutes = INTERVAL_SECONDS[interval] // 60
    if spec.get("interval_minutes", minutes) != minutes:
        raise ConfigError(
            f"--config sets interval_minutes={spec['interval_minutes']!r} but --interval is {interval!r} "
            f"({minutes} minutes); give the bar interval with --interval only"
        )
    return minutes


def build_spec(
    symbol: str, models: list[str], test_fraction: float, calibrate: str, sets: list[str] | None,
    config: str | None, seed: int | None, compare_raw: bool,
) -> dict[str, Any]:  # fmt: skip
    """The JSON spec of one run, checked (unknown models, settings or keys raise ``ConfigError``)."""
    from tasks.minute_risk import MINUTE_MODELS
    from tasks.minute_scoring import MINUTE_CALIBRATIONS

    for m in models:
        preflight.choice(m, sorted(MINUTE_MODELS), "--model")
    preflight.choice(calibrate, MINUTE_CALIBRATIONS, "--calibrate")
    cfg = _config(config)
    per_model: dict[str, dict[str, Any]] = {
        k: dict(v) for k, v in (cfg.pop("model_config", None) or {}).items()
    }
    for m in MINUTE_MODELS:
        if isinstance(cfg.get(m), dict):
            per_model.setdefault(m, {}).update(cfg.pop(m))
    for m, kv in _pairs(sets).items():
        per_model.setdefault(m, {}).update(kv)
    if seed is not None:
        per_model.setdefault("transformer", {})["seed"] = seed
    spec: dict[str, Any] = {
        "test_fraction": test_fraction,
        "calibration": calibrate,
        "compare_raw": compare_raw,
    }
    spec |= cfg | {"symbol": symbol, "models": list(dict.fromkeys(models)), "model_config": per_model}
    if seed is not None:
        spec["seed"] = seed
    from flows.minute_risk_flow import spec_from_dict

    try:
        spec_from_dict(spec)  # every setting checked now (imports torch for the transformer's)
    except TypeError as exc:
        raise ConfigError(f"--config: {exc}") from None
    return spec


def _check_bars(wh: str, symbol: str, interval: str) -> None:
    """The warehouse holds ``interval`` bars for ``symbol``."""
    from warehouse.bars import stored_intervals
    from warehouse.resource import Warehouse

    preflight.warehouse_with_bars(wh, [symbol])
    with Warehouse.at(wh).reading() as con:
        intervals = stored_intervals(con, symbol)
    if not any(i == interval for i, *_ in intervals):
        have = ", ".join(f"{i} ({n:,} bars)" for i, n, *_ in intervals) or "none"
        hint = "a minute file" if interval == "1m" else f"{interval} bars, or pass --interval"
        raise ConfigError(f"no {interval} bars stored for {symbol} (stored: {have}); ingest {hint} first")


def _check_split(
    wh: str, symbol: str, lo: datetime | None, hi: datetime | None, spec: dict[str, Any]
) -> None:
    """The window holds minute bars enough for the chronological split (pure, no Prefect run)."""
    from flows.minute_risk_flow import interval_label, load_minute_bars, spec_from_dict
    from tasks.minute_risk import minute_series

    s = spec_from_dict(spec)
    bars, _, _ = load_minute_bars(wh, symbol, lo, hi, interval_label(s.interval_minutes))
    minute_series(bars, s)


def print_minute_summary(out: dict[str, Any], alphas: list[float]) -> None:
    """One row per (model, variant): the chosen VaR levels, ES test and 80% coverage; then the report."""
    table = Table(title=f"minute risk backtest: {out['symbol']} ({out['meta']['n_test']:,} hold-out minutes)")
    cols = ["model", "variant"]
    for a in alphas:
        cols += [f"VaR{100 - 100 * a:g} rate", "Kupiec p", "CC p"]
    for col in (*cols, "ES97.5 p", "cov80"):
        table.add_column(col)
    for r in out["summary"]:
        cells = [r["model"], r["variant"]]
        for a in alphas:
            name = MINUTE_ALPHAS[a]
            style = "green" if r[f"{name}_pass"] else "red"
            cells += [
                f"[{style}]{r[f'{name}_rate']:.4f}[/]",
                f"{r[f'{name}_kupiec_p']:.3g}",
                f"{r[f'{name}_cc_p']:.3g}",
            ]
        cells += [f"{r['es975_p']:.3g}", f"{r['cov80']:.3f}"]
        table.add_row(*cells)
    console.print(table)
    rec = out.get("recommended") or {}
    if rec:
        verdict = "passes" if rec.get("var99_pass") else "does NOT pass"
        console.print(
            f"recommended: [bold]{rec['model']} ({rec['variant']})[/], {rec.get('checks_passed', '?')} "
            "of 5 checks passed (Kupiec and CC at 95% and 99%, 80% coverage): 99% VaR "
            f"{verdict} Kupiec and CC; {rec.get('candidates_passing', '?')} of {rec.get('candidates', '?')} "
            "candidates pass every check"
        )
    console.print(
        f"run {out['run_id']}: {out['rows']:,} predictions stored; wall {out['meta']['wall_s']:.1f}s"
    )
    console.print(f"report written to [bold]{out['md']}[/] (and {out['json']})")


@risk_app.command("minute")
@friendly_errors
def minute(
    symbol: Annotated[str, typer.Argument(help="A symbol with stored 1m bars, e.g. BTC-PERP, SPY, EURUSD.")],
    start: Annotated[str | None, typer.Option(help="First UTC day of bars used (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Use bars before this UTC day.")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of returns held out at the end.")] = 0.2,
    alpha: Annotated[list[float] | None, typer.Option(help="VaR tail(s) shown: 0.01 and/or 0.05.")] = None,
    calibrate: Annotated[
        str,
        typer.Option(
            help="Online calibration: mfaci (default: DtACI kept apart after a lower-tail, an "
            "upper-tail and any other minute, against breach clustering), faci, aci, caci (ACI kept "
            "apart after a breach of each level) or none."
        ),
    ] = "mfaci",
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="transformer, ewma, garch, range_har (repeat; default transformer, ewma, range_har).",
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="KEY=VALUE of the transformer's MinuteConfig (epochs=5), or MODEL.KEY=VALUE."
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(help='JSON object or file: {"transformer": {...}, "seasonality": {...}, ...}.'),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the transformer and of the ES simulations.")
    ] = None,
    no_raw: Annotated[
        bool, typer.Option("--no-raw", help="Skip the model on raw (not deseasonalised) returns.")
    ] = False,
    interval: Annotated[
        str, typer.Option(help="Bar interval: 1m (default), 5m, 15m, 30m or 1h; a 'minute' is one bar.")
    ] = "1m",
    warehouse: WarehouseOpt = None,
) -> None:
    """Minute-mode VaR/ES backtest: seasonality removed, model fitted, calibrated online, stored, reported."""
    wh = warehouse_path(warehouse)
    preflight.symbols([symbol])
    preflight.date_range(start, end)
    alphas = sorted(set(alpha or [0.01, 0.05]))
    bad = [a for a in alphas if a not in MINUTE_ALPHAS]
    if bad:
        raise ConfigError(f"--alpha {bad}: expected 0.01 and/or 0.05")
    from tasks.minute_risk import DEFAULT_MINUTE_MODELS

    preflight.choice(interval, INTRADAY_INTERVALS, "--interval")
    _check_bars(wh, symbol, interval)
    spec = build_spec(
        symbol,
        model or list(DEFAULT_MINUTE_MODELS),
        test_fraction,
        calibrate,
        sets,
        config,
        seed,
        not no_raw,
    )
    spec["interval_minutes"] = _interval_minutes(spec, interval)
    lo, hi = _when(start, "start"), _when(end, "end")
    _check_split(wh, symbol, lo, hi, spec)
    from flows.minute_risk_flow import minute_risk_flow  # Prefect: after the checks

    out: dict[str, Any] = {}

    def run() -> list[dict[str, Any]]:
        out.update(minute_risk_flow(symbol, spec, wh, lo, hi))
        return []

    run_with_progress(run, f"minute risk {symbol}")
    print_minute_summary(out, alphas)
