"""``volrisk evaluate`` and ``volrisk report``: the evaluation commands (:func:`register` adds them)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from core.errors import VolriskError
from flows import preflight
from flows.cli_common import (
    WarehouseOpt,
    console,
    err_console,
    friendly_errors,
    run_with_progress,
    warehouse_path,
)
from tasks.model_catalog import BUILTIN_MODELS


def _print_summary(out: dict[str, Any]) -> None:
    table = Table(title="evaluation: best model per asset")
    for col in ("symbol", "best model", "QLIKE", "HAR QLIKE", "DM p", "beats HAR", "VaR95", "VaR99"):
        table.add_column(col)
    for r in out.get("summary", []):
        table.add_row(
            r["symbol"],
            r["best_model"],
            f"{r['best_qlike']:.4f}",
            f"{r['har_qlike']:.4f}",
            "n/a" if r["dm_p_vs_har"] is None else f"{r['dm_p_vs_har']:.3g}",
            "[green]yes[/]" if r["beats_har"] else "[red]no[/]",
            "[green]pass[/]" if r["var95_pass"] else "[red]fail[/]",
            "[green]pass[/]" if r["var99_pass"] else "[red]fail[/]",
        )
    console.print(table)
    _print_panel(out)
    for cls, d in (out.get("stacking") or {}).items():
        console.print(f"stacking {cls}: {d['mode']} (serves {d['serves']}, lift {d['lift']:+.3f} Sharpe)")
    console.print(f"all gates passed: {out.get('passed_gates')}")
    for f in out.get("failed", []):
        err_console.print(f"[red]failed[/] {f['model']} {f['symbol']} fold {f['fold']}: {f.get('error')}")
    console.print(f"report written to [bold]{out['report']}[/] (and {out['json']})")


def _ratio(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _print_panel(out: dict[str, Any]) -> None:
    """The across-assets table and the headline (what the report's first lines say)."""
    panel = out.get("panel") or []
    if panel:
        table = Table(title="across assets: QLIKE ratio to HAR")
        for col in ("model", "assets", "median ratio", "beats HAR (p<0.05)", "panel DM p", "panel MCS"):
            table.add_column(col)
        for r in panel:
            table.add_row(
                r["model"], str(r["n_assets"]), _ratio(r["median_qlike_ratio"]), str(r["beats_har_assets"]),
                _ratio(r["panel_dm_p"], 3), "in" if r["in_panel_mcs"] else "out",
            )  # fmt: skip
        console.print(table)
    headline = out.get("headline") or {}
    if headline.get("sentence"):
        console.print(f"[bold]{escape(headline['sentence'])}[/]")
        console.print(escape(headline.get("settings", "")))


def _check(
    symbols: list[str], models: list[str] | None, test_start: str | None, test_end: str | None,
    train_start: str | None, window: str, device: str, refit_every: int, train_size: int | None,
    config: str | None, embargo: int | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """Check ``volrisk evaluate``'s options before Prefect and torch load; returns ``--config``."""
    preflight.symbols(symbols)
    preflight.models(models)
    preflight.date_range(test_start, test_end, ("test-start", "test-end"))
    preflight.parse_date(train_start, "train-start")
    preflight.choice(window, ("expanding", "rolling"), "--window")
    preflight.choice(device, ("auto", "cpu", "cuda", "mps"), "--device")
    preflight.at_least(refit_every, 1, "--refit-every")
    preflight.at_least(train_size, 2, "--train-size")
    preflight.at_least(embargo, 1, "--embargo")
    overrides = preflight.json_object(config, "--config")
    unknown = sorted(set(overrides or {}) - set(BUILTIN_MODELS))
    if unknown:
        raise VolriskError(f"--config names unknown models {unknown}; registered: {sorted(BUILTIN_MODELS)}")
    return overrides


def calibration_option(values: list[str] | None) -> dict[str, Any] | None:
    """``--calibrate METHOD`` (every model) / ``--calibrate MODEL=METHOD`` as a calibration config."""
    from tasks.risk_calibrated import EVERY_MODEL, check_calibration

    if not values:
        return None
    config: dict[str, Any] = {}
    for value in values:
        model, _, method = value.rpartition("=")
        model = model.strip() or EVERY_MODEL
        if model != EVERY_MODEL and model not in BUILTIN_MODELS:
            raise VolriskError(
                f"--calibrate {value!r}: unknown model {model!r}; registered: {sorted(BUILTIN_MODELS)}"
            )
        config[model] = method.strip()
    try:
        check_calibration(config)
    except VolriskError as exc:
        raise VolriskError(f"--calibrate: {exc}") from None
    return config


CalibrateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--calibrate",
        help="Calibration of the return quantiles for the risk backtests: METHOD for every model or "
        "MODEL=METHOD (repeat). Methods: aci, faci, fhs, evt, none, or chains such as fhs+aci "
        "(default fhs+aci for every model). Each calibrated model is scored as <model>+<method>.",
    ),
]


def evaluate(
    symbols: Annotated[list[str], typer.Argument(help="Symbols with daily features in the warehouse.")],
    models: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Registry name (repeat); default: every model.")
    ] = None,
    test_start: Annotated[
        str | None, typer.Option(help="First test session (default: 2 years before the end).")
    ] = None,
    test_end: Annotated[
        str | None, typer.Option(help="Last test session (default: the last stored).")
    ] = None,
    train_start: Annotated[str | None, typer.Option(help="Earliest training session.")] = None,
    refit_every: Annotated[int, typer.Option(help="Sessions per walk-forward fold.")] = 63,
    window: Annotated[str, typer.Option(help="expanding or rolling.")] = "expanding",
    train_size: Annotated[int | None, typer.Option(help="Rolling window length in sessions.")] = None,
    embargo: Annotated[
        int | None,
        typer.Option(
            help="Sessions between a fold's last training session and its first target (>= 1, the "
            "horizon; default 2: one session of safety beyond it)."
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="Evaluation name (report file suffix).")] = "manual",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    no_stack: Annotated[bool, typer.Option("--no-stack", help="Skip the LightGBM ensemble.")] = False,
    config: Annotated[
        str | None, typer.Option(help='Per-model config as JSON, e.g. \'{"voltransformer": {"epochs": 5}}\'.')
    ] = None,
    cost_bps: Annotated[float, typer.Option(help="Strategy cost in basis points of turnover.")] = 5.0,
    runner: Annotated[
        str,
        typer.Option(
            help="Where fold tasks run: thread, process (torch fits in parallel, one worker per core; "
            "VOLRISK_EVAL_WORKERS sets the count) or auto (process for CPU runs with >= 40 neural folds)."
        ),
    ] = "auto",
    folds_per_task: Annotated[
        int, typer.Option(help="Folds of one model and symbol per task (the unit of caching and retries).")
    ] = 10,
    tuned_on: Annotated[
        list[str] | None,
        typer.Option("--tuned-on", help="A symbol used to choose settings (repeat): reported as in-sample."),
    ] = None,
    calibrate: CalibrateOpt = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Walk-forward evaluation of every model, the stacked ensemble, and the report."""
    overrides = _check(symbols, models, test_start, test_end, train_start, window, device, refit_every,
                       train_size, config, embargo)  # fmt: skip
    preflight.choice(runner, ("auto", "thread", "process"), "--runner")
    preflight.at_least(folds_per_task, 1, "--folds-per-task")
    preflight.symbols(tuned_on or [], "--tuned-on")
    calibration = calibration_option(calibrate)
    preflight.warehouse_with_features(warehouse_path(warehouse), symbols)
    from flows.evaluate_flow import evaluate_flow  # Prefect and torch: after the checks
    from tasks.experiment import ExperimentSpec

    spec = ExperimentSpec(
        symbols=symbols, models=models, test_start=test_start, test_end=test_end, train_start=train_start,
        refit_every=refit_every, name=name, device=device, window=window, train_size=train_size,  # type: ignore[arg-type]
        embargo=embargo, stack=not no_stack, config=overrides, cost_bps=cost_bps,
        runner=runner, folds_per_task=folds_per_task, tuned_on=tuned_on,  # type: ignore[arg-type]
        calibration=calibration,
    )  # fmt: skip
    result: dict[str, Any] = {}

    def run() -> list[dict[str, Any]]:
        result.update(evaluate_flow(spec, warehouse=warehouse_path(warehouse)))
        return []

    run_with_progress(run, "evaluate folds")
    _print_summary(result)
    if result.get("failed"):
        raise typer.Exit(1)


def report(
    name: Annotated[str | None, typer.Argument(help="Evaluation name (default: the latest).")] = None,
    calibrate: CalibrateOpt = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Rewrite an evaluation's report (and re-stack it) from its stored out-of-fold predictions.

    ``--calibrate`` re-scores the risk backtests with other calibration methods (stored with the
    evaluation from then on); without it the evaluation's own are used.
    """
    calibration = calibration_option(calibrate)
    preflight.stored_evaluation(warehouse_path(warehouse), name)
    from flows.evaluate_flow import stack_flow

    result: dict[str, Any] = {}

    def run() -> list[dict[str, Any]]:
        result.update(stack_flow(name=name, warehouse=warehouse_path(warehouse), calibration=calibration))
        return []

    run_with_progress(run, "report")
    _print_summary(result)


def register(app: typer.Typer) -> None:
    """Add ``volrisk evaluate`` and ``volrisk report`` to the CLI."""
    app.command("evaluate")(friendly_errors(evaluate))
    app.command("report")(friendly_errors(report))
