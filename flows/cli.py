"""The ``volrisk`` command line (typer).

Every command turns volrisk's own errors into a one-line message and exit code 2; a raw traceback
is shown only with ``--debug``.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.markup import escape
from rich.progress import TextColumn
from rich.table import Table

from core.errors import ConfigError, VolriskError
from flows import cli_devpanel, cli_evaluate, cli_instruments, cli_models, cli_risk, preflight, progress
from flows.backfill_cli import register as register_backfill
from flows.cli_common import (
    DEBUG,
    WarehouseOpt,
    console,
    err_console,
    friendly_errors,
    run_with_progress,
    warehouse_path,
)
from flows.samples import sample_inputs, sample_symbols
from tasks.config import get_settings

app = typer.Typer(
    help="volrisk: intraday bars to honest volatility and risk forecasts.", no_args_is_help=True
)
ingest_app = typer.Typer(help="Load bars into the warehouse.", no_args_is_help=True)
warehouse_app = typer.Typer(help="Inspect the warehouse.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(warehouse_app, name="warehouse")
quality_app = typer.Typer(help="Data-quality results and reports.", no_args_is_help=True)
app.add_typer(quality_app, name="quality")
app.add_typer(cli_risk.risk_app, name="risk")


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's run logs.")] = False,
) -> None:
    """volrisk command line."""
    DEBUG["on"] = debug
    if not verbose:  # Prefect is imported lazily by the commands, so this takes effect
        # Quiet the terminal only; run logs still reach the Prefect API (and the UI).
        for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
            os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")


def print_ingest_summary(rows: list[dict[str, Any]]) -> None:
    """Per-symbol totals: rows new, updated, quarantined and skipped; then any failures and notes."""
    table = Table(title="ingest summary")
    for col in ("symbol", "interval", "partitions", "new", "updated", "quarantined", "skipped", "failed"):
        table.add_column(col, justify="right" if col not in ("symbol", "interval") else "left")
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        key = (row["symbol"], row.get("interval") or "?")
        t = totals.setdefault(
            key, dict.fromkeys(("partitions", "new", "updated", "quarantined", "skipped", "failed"), 0)
        )
        t["partitions"] += 1
        if row.get("status") == "failed":
            t["failed"] += 1
            continue
        t["new"] += row.get("new", 0)
        t["updated"] += row.get("updated", 0)
        t["quarantined"] += row.get("quarantined", 0)
        t["skipped"] += row.get("unchanged", 0)
    for (symbol, interval), t in sorted(totals.items()):
        style = "red" if t["failed"] else None
        table.add_row(
            symbol,
            interval,
            *[f"{t[k]:,}" for k in ("partitions", "new", "updated", "quarantined", "skipped", "failed")],
            style=style,
        )
    console.print(table)
    console.print("[dim]skipped = identical to what the warehouse already holds[/]")
    for row in rows:
        if row.get("status") == "failed":
            where, why = escape(str(row["location"])), escape(str(row.get("error")))  # file text: no markup
            console.print(f"[red]failed[/] {row['symbol']} {where}: {why}")
        for note in row.get("notes") or []:
            console.print(f"[dim]{row['symbol']} {escape(Path(str(row['location'])).name)}: {escape(note)}")


def _exit_code(rows: list[dict[str, Any]]) -> None:
    if any(r.get("status") == "failed" for r in rows):
        raise typer.Exit(1)


PrefectOpt = Annotated[
    bool,
    typer.Option(
        "--prefect",
        help="Run as a Prefect flow run even without PREFECT_API_URL (starts a temporary server, 5-20 s). "
        "With PREFECT_API_URL set, ingests always are flow runs.",
    ),
]


def _ingest(request: Any, label: str, prefect: bool) -> None:
    """Run one ingest request with a progress bar, print its summary, exit 1 if a partition failed."""
    from flows.ingest_flow import run_ingest

    rows = run_with_progress(lambda: run_ingest(request, True if prefect else None), label)
    print_ingest_summary(rows)
    _exit_code(rows)


def _generic_params(fmt: str | None, opts: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The generic layout's parameters when ``--format generic`` (or its options) are given."""
    if not (fmt == "generic" or opts["ts_column"] or opts["tz"] or not opts["header"]):
        return fmt, None
    from tasks.sources.layouts import generic_from_params

    generic = {k: opts[k] for k in ("ts_column", "tz", "stamp", "delimiter", "interval", "header")}
    generic["column_map"] = _parse_pairs(opts["column"], "--column")
    if opts["ts_format"]:
        generic["ts_format"] = opts["ts_format"]
    generic_from_params(generic)  # a bad mapping answers now, not after a server start
    return "generic", generic


@ingest_app.command("file")
@friendly_errors
def ingest_file(
    paths: Annotated[list[Path], typer.Argument(help="Vendor files (CSV, CSV.gz).")],
    symbol: Annotated[
        list[str],
        typer.Option(
            "--symbol", "-s", help="One symbol for all files, or one per file: the flag repeats (-s A -s B)."
        ),
    ],
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="Format name; detected when omitted.")
    ] = None,
    interval: Annotated[str | None, typer.Option(help="Bar interval; inferred when omitted.")] = None,
    start: Annotated[str | None, typer.Option(help="Keep bars from this UTC date (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Keep bars before this UTC date.")] = None,
    ts_column: Annotated[str | None, typer.Option(help="generic: the timestamp column.")] = None,
    tz: Annotated[str | None, typer.Option(help="generic: IANA time zone of naive stamps.")] = None,
    column: Annotated[
        list[str] | None, typer.Option("--column", help="generic: CANONICAL=COLUMN, e.g. open=Open.")
    ] = None,
    ts_format: Annotated[str | None, typer.Option(help="generic: strptime format (default ISO).")] = None,
    stamp: Annotated[str, typer.Option(help="generic: bar 'start' or 'end' stamps.")] = "start",
    delimiter: Annotated[str, typer.Option(help="generic: CSV field separator.")] = ",",
    no_header: Annotated[
        bool,
        typer.Option(
            "--no-header",
            help="generic: the file has no header line; --ts-column and --column give 1-based positions "
            "(--ts-column 1 --column open=2 ...).",
        ),
    ] = False,
    asset_class: cli_instruments.AssetClassOpt = None,
    calendar: cli_instruments.CalendarOpt = None,
    prefect: PrefectOpt = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Ingest vendor files: HistData, NinjaTrader, Binance, FTX, Lean, Yahoo CSV, or any CSV/Parquet.

    For any other layout use --format generic with --ts-column, --tz and --column CANONICAL=COLUMN.
    A symbol not yet registered (`volrisk instruments list`) needs --asset-class and --calendar,
    unless it is a known code; they register every symbol of this run.
    """
    preflight.symbols(symbol, "--symbol")
    preflight.files(paths)
    preflight.file_format(fmt)
    preflight.date_range(start, end)
    if len(symbol) not in (1, len(paths)):
        raise VolriskError(
            f"give one --symbol for all {len(paths)} files or one per file (the flag repeats: "
            f"--symbol A --symbol B); got {len(symbol)}"
        )
    opts = dict(ts_column=ts_column, tz=tz, column=column, ts_format=ts_format, stamp=stamp,
                delimiter=delimiter, interval=interval, header=not no_header)  # fmt: skip
    fmt, generic = _generic_params(fmt, opts)
    preflight.instruments(warehouse_path(warehouse), symbol, asset_class, calendar)
    from flows.ingest_flow import IngestRequest  # Prefect: after the checks

    request = IngestRequest(
        symbols=symbol, start=preflight.parse_date(start, "start"), end=preflight.parse_date(end, "end"),
        source="file", interval=interval, paths=[str(p) for p in paths], fmt=fmt,
        warehouse=warehouse_path(warehouse), generic=generic, asset_class=asset_class, calendar=calendar,
    )  # fmt: skip
    _ingest(request, "ingest files", prefect)


@ingest_app.command("synthetic")
@friendly_errors
def ingest_synthetic(
    symbols: Annotated[list[str], typer.Argument(help="Symbols to generate.")],
    start: Annotated[str, typer.Option(help="First UTC date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="End UTC date, exclusive.")],
    interval: Annotated[str, typer.Option(help="Bar interval.")] = "1m",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical bars.")] = 0,
    prefect: PrefectOpt = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Generate seeded jump-diffusion bars (one partition per symbol and month)."""
    preflight.symbols(symbols)
    preflight.date_range(start, end)
    from flows.ingest_flow import IngestRequest  # Prefect: after the checks

    request = IngestRequest(
        symbols=symbols, start=preflight.parse_date(start, "start"), end=preflight.parse_date(end, "end"),
        source="synthetic", interval=interval, seed=seed, warehouse=warehouse_path(warehouse),
    )  # fmt: skip
    _ingest(request, "generate", prefect)


@ingest_app.command("yfinance")
@friendly_errors
def ingest_yfinance(
    symbols: Annotated[list[str], typer.Argument(help="Yahoo symbols, e.g. BTC-USD EURUSD=X ^GSPC.")],
    start: Annotated[str, typer.Option(help="First UTC date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="End UTC date, exclusive.")],
    interval: Annotated[str, typer.Option(help="1m, 5m, 1h or 1d.")] = "1d",
    prefect: PrefectOpt = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Download bars from Yahoo Finance (1m: last 30 days, at most 7 days per request)."""
    preflight.symbols(symbols)
    preflight.date_range(start, end)
    preflight.instruments(warehouse_path(warehouse), symbols)
    from flows.ingest_flow import IngestRequest  # Prefect: after the checks

    request = IngestRequest(
        symbols=symbols, start=preflight.parse_date(start, "start"), end=preflight.parse_date(end, "end"),
        source="yfinance", interval=interval, warehouse=warehouse_path(warehouse),
    )  # fmt: skip
    _ingest(request, "download", prefect)


@ingest_app.command("realized")
@friendly_errors
def ingest_realized(
    paths: Annotated[
        list[Path], typer.Argument(help="Realized-measure CSVs (Oxford-Man or the simple layout, above).")
    ],
    asset_class: cli_instruments.AssetClassOpt = None,
    calendar: cli_instruments.CalendarOpt = None,
    no_features: Annotated[
        bool,
        typer.Option(
            "--no-features",
            help="Only import: do not build the daily features of imported symbols that have no bars.",
        ),
    ] = False,
    prefect: PrefectOpt = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Import daily realized measures, then build the features of symbols that have no bars.

    After the import, every imported symbol without bars gets its daily features (the forecast target
    rv, the HAR inputs, returns) built from the measures, so `volrisk evaluate SYMBOL ...` can run
    next; `--no-features` skips that (run `volrisk features SYMBOL` later).

    Units: rv, bv, rs_pos, rs_neg and rk are DECIMAL variances of daily log returns (1e-4 = 1% daily
    volatility), rq is decimal quarticity (about 1e-8 at 1% daily volatility), ret is the decimal
    close-to-close log return (-0.02 = about -2%). A file whose values look like percent squared,
    percent returns or volatilities is refused as a whole, with the factor to multiply by.

    Dates are the exchange's local session dates (an Oxford-Man stamp 2020-01-06 00:00:00+01:00 is
    2020-01-06). Layouts, recognised from the header: Oxford-Man (unnamed date column, Symbol, rv5,
    bv, rk_parzen, medrv, rsv, open_to_close, ...; rsv is the downside semivariance, rs_pos = rv5 -
    rsv) and simple date,symbol,rv[,bv][,rq][,rs_pos,rs_neg][,rk][,ret] (rs_pos and rs_neg as a
    pair). Bad rows are quarantined with file:line and a reason.

    Every symbol must be registered (`volrisk instruments list`), a known index code (.SPX, .FTSE,
    .N225, ...) or given --asset-class and --calendar, which register every symbol of the files.
    """
    preflight.files(paths)
    from tasks.ingest import realized_file_symbols

    symbols = sorted({s for p in paths for s in realized_file_symbols(p)})
    preflight.instruments(warehouse_path(warehouse), symbols, asset_class, calendar)
    from flows.ingest_flow import IngestRequest  # Prefect: after the checks

    request = IngestRequest(
        symbols=[],
        paths=[str(p) for p in paths],
        source="realized",
        warehouse=warehouse_path(warehouse),
        asset_class=asset_class,
        calendar=calendar,
    )
    _ingest(request, "import realized", prefect)
    if not no_features:
        _features_of_realized_only(warehouse_path(warehouse), symbols)


def _features_of_realized_only(path: str, symbols: list[str]) -> None:
    """Build the daily features of the symbols that have realized measures and no bars."""
    from warehouse.catalog import bar_symbols
    from warehouse.resource import Warehouse

    with Warehouse.at(path).reading() as con:
        with_bars = set(bar_symbols(con))
    wanted = [s for s in symbols if s not in with_bars]
    if not wanted:
        return
    _run_features("features from realized measures", symbols=wanted, warehouse=path)


def _run_features(label: str, **params: Any) -> None:
    """Run ``features_flow(**params)`` with a progress bar, print its summary, exit 1 on a failure."""
    from flows.features_flow import features_flow

    result: dict[str, Any] = {}

    def run() -> list[dict[str, Any]]:
        result.update(features_flow(**params))
        return list(result["partitions"])

    run_with_progress(run, label)
    print_features_summary(result)
    if result["failed"]:
        raise typer.Exit(1)


@ingest_app.command("samples")
@friendly_errors
def ingest_samples(prefect: PrefectOpt = False, warehouse: WarehouseOpt = None) -> None:
    """Ingest the bundled real data: BTC/USDT, EUR/USD and SPY (see data/samples/README.md)."""
    symbols, paths, fmts = sample_inputs(sorted(sample_symbols()))
    from flows.ingest_flow import IngestRequest  # Prefect: after the checks

    request = IngestRequest(
        symbols=symbols, paths=paths, fmt=fmts, source="file", warehouse=warehouse_path(warehouse)
    )
    _ingest(request, "ingest samples", prefect)


def _parse_pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    """``["A=x", "B=y"]`` -> ``{"A": "x", "B": "y"}``, or a one-line error naming the option."""
    if not values:
        return None
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise VolriskError(f"{option} {item!r}: expected KEY=VALUE, e.g. {option} SPY=1m")
        out[key] = value
    return out


#: The per-symbol counts of ``volrisk features`` (partition statuses, then session counts).
_FEATURE_COUNTS = (
    "months",
    "success",
    "cached",
    "blocked",
    "failed",
    "sessions",
    "low_coverage",
    "jump_days",
)
_FEATURE_HEADERS = ("months", "built", "cached", "blocked", "failed", "sessions", "low coverage", "jump days")


def print_features_summary(result: dict[str, Any]) -> None:
    """Per-symbol partitions built, cached, blocked by data quality or failed; sessions; checks."""
    table = Table(title="features summary")
    for col in ("symbol", "interval", *_FEATURE_HEADERS):
        table.add_column(col, justify="left" if col in ("symbol", "interval") else "right")
    per: dict[tuple[str, str], dict[str, int]] = {}
    for r in result["partitions"]:
        t = per.setdefault((r["symbol"], r["interval"]), dict.fromkeys(_FEATURE_COUNTS, 0))
        t["months"] += 1
        t[r["status"]] += 1
        for k in ("sessions", "low_coverage", "jump_days"):
            t[k] += int(r.get(k) or 0)
    for (sym, interval), t in sorted(per.items()):
        cells = [f"{t[k]:,}" for k in _FEATURE_COUNTS]
        table.add_row(sym, interval, *cells, style="red" if t["failed"] or t["blocked"] else None)
    console.print(table)
    for check in result.get("feature_checks") or []:
        verdict = "[green]passed[/]" if check.get("passed") else "[red]FAILED[/]"
        console.print(
            f"feature checks {check.get('symbol', '')}: {verdict} "
            f"({len(check.get('warnings', []))} warnings) {check.get('error') or ''}"
        )
    for r in result["partitions"]:
        if r.get("off_calendar"):
            dates = ", ".join(r.get("off_calendar_dates") or [])
            console.print(
                f"[yellow]{r['symbol']}[/]: {r['off_calendar']} imported dates are not sessions of its "
                f"calendar and were left out of its features (e.g. {dates}); they stay in realized_daily"
            )
    if result.get("cross_asset"):
        c = result["cross_asset"]
        console.print(f"cross-asset: {c['pairs']} pairs, {c['rows']:,} rows")
    for r in result["failed"]:
        why = escape(str(r.get("error")))
        console.print(f"[red]{r['status']}[/] {r['symbol']} {r['start']}..{r['end']}: {why}")


def _feature_sources(path: str, symbols: list[str], target_source: str | None) -> list[str]:
    """Check every symbol has the data its features will be built from; return those built from bars."""
    from flows.realized_plan import target_sources
    from warehouse.resource import Warehouse

    if not Path(path).is_file():
        raise ConfigError(f"warehouse {path} does not exist; ingest them first (`volrisk ingest ...`)")
    with Warehouse.at(path).reading() as con:
        sources = target_sources(con, symbols, target_source)  # type: ignore[arg-type]
    return [s for s in symbols if sources[s] == "bars"]


@app.command("features")
@friendly_errors
def features(
    symbols: Annotated[list[str], typer.Argument(help="Symbols with bars in the warehouse.")],
    start: Annotated[str | None, typer.Option(help="First session date (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="End session date, exclusive.")] = None,
    interval: Annotated[
        list[str] | None, typer.Option("--interval", help="SYMBOL=INTERVAL (default: most intraday bars).")
    ] = None,
    no_cross_asset: Annotated[bool, typer.Option("--no-cross-asset", help="Skip correlations.")] = False,
    replace_interval: Annotated[
        bool,
        typer.Option(
            "--replace-interval",
            help="Rebuild sessions whose stored features came from another bar interval (refused otherwise).",
        ),
    ] = False,
    target_source: Annotated[
        str | None,
        typer.Option(
            "--target-source",
            help="bars or realized: what the features (and so the forecast target) are built from, for "
            "symbols that have both (default: bars; a symbol with only imported realized measures "
            "uses them).",
        ),
    ] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Quality-check bars, then build daily features (one partition per symbol and month).

    Symbols imported with `volrisk ingest realized` (daily measures, no bars) get their features from
    those measures: rv is the target, with the HAR inputs, returns and whatever bv/rq/semivariances the
    file had; bar-only columns stay empty.
    """
    preflight.symbols(symbols)
    preflight.date_range(start, end)
    if target_source is not None:
        preflight.choice(target_source, ("bars", "realized"), "--target-source")
    pairs = _parse_pairs(interval, "--interval")
    bar_syms = _feature_sources(warehouse_path(warehouse), symbols, target_source)
    preflight.feature_rebuild(warehouse_path(warehouse), bar_syms, start, end, pairs, replace_interval)
    _run_features(
        "features",
        symbols=symbols,
        start=preflight.parse_date(start, "start"),
        end=preflight.parse_date(end, "end"),
        intervals=pairs,
        cross_asset=not no_cross_asset,
        warehouse=warehouse_path(warehouse),
        replace_interval=replace_interval,
        target_source=target_source,
    )


@quality_app.command("report")
@friendly_errors
def quality_report(
    symbols: Annotated[list[str], typer.Argument(help="Symbols to report on.")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: reports/quality-YYMMDD).")] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Write a markdown data-quality report with one RV/jumps/coverage chart per symbol."""
    from tasks.quality_report import write_quality_report
    from warehouse.features import read_features
    from warehouse.quality import read_dq_results
    from warehouse.resource import Warehouse

    with Warehouse.at(warehouse_path(warehouse)).reading() as con:
        feats = read_features(con, symbols)
        dq = read_dq_results(con)
    if feats.height == 0:
        raise VolriskError(
            f"no features stored for {symbols}; run `volrisk features {' '.join(symbols)}` first"
        )
    wanted = {s.lower() for s in symbols}
    dq = dq.filter(dq["partition"].str.split("/").list.first().str.to_lowercase().is_in(list(wanted)))
    folder = out or get_settings().reports / f"quality-{datetime.now():%y%m%d}"
    path = write_quality_report(feats, dq, folder, f"Data quality: {', '.join(symbols)}")
    console.print(f"report written to [bold]{path}[/]")
    for png in sorted(folder.glob("*.png")):
        console.print(f"  plot {png}")


@quality_app.command("show")
@friendly_errors
def quality_show(
    symbols: Annotated[
        list[str] | None, typer.Argument(help="Symbols (default: every symbol checked).")
    ] = None,
    check: Annotated[str | None, typer.Option(help="Only this check, e.g. bar_gaps or stale_bars.")] = None,
    severity: Annotated[str, typer.Option(help="failed (errors and warnings), error or warning.")] = "failed",
    detail: Annotated[bool, typer.Option("--detail", help="Also list every failing partition.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many detail rows.")] = 100,
    warehouse: WarehouseOpt = None,
) -> None:
    """Stored data-quality results: failed checks per symbol and check (newest run of each partition)."""
    preflight.symbols(symbols or [])
    preflight.choice(severity, ("failed", "error", "warning"), "--severity")
    preflight.at_least(limit, 1, "--limit")
    wh = warehouse_path(warehouse)
    preflight.warehouse_exists(wh)
    from tasks.quality_report import dq_summary, latest_results
    from warehouse.quality import read_dq_results
    from warehouse.resource import Warehouse

    with Warehouse.at(wh).reading() as con:
        dq = latest_results(read_dq_results(con))
    if dq.height == 0:
        raise VolriskError(
            f"no data-quality results in {wh}; `volrisk features SYMBOL` runs the quality gate first"
        )
    dq = dq.with_columns(pl.col("partition").str.split("/").list.first().alias("_symbol"))
    if symbols:
        dq = dq.filter(pl.col("_symbol").is_in(symbols))
    if check:
        dq = dq.filter(pl.col("expectation") == check)
    failed = dq.filter(~pl.col("success") & (pl.lit(severity == "failed") | (pl.col("severity") == severity)))
    checked = f"{dq.height:,} checks of {dq['_symbol'].n_unique()} symbol(s)"
    if failed.height == 0:
        console.print(f"[green]no failed checks[/] among {checked}")
        return
    _print_dq_summary(dq_summary(failed), checked)
    if detail:
        _print_dq_detail(failed, limit)


def _print_dq_summary(summary: pl.DataFrame, checked: str) -> None:
    table = Table(title=f"failed data-quality checks ({checked})")
    for col in summary.columns:
        table.add_column(col, justify="right" if col in ("partitions", "unexpected", "worst") else "left")
    for row in summary.iter_rows():
        style = "red" if row[4] == "error" else None
        table.add_row(*[escape(str(v)) for v in row], style=style)
    console.print(table)


def _print_dq_detail(failed: pl.DataFrame, limit: int) -> None:
    import json

    table = Table(title="failing partitions")
    for col in ("partition", "check", "column", "severity", "unexpected", "message"):
        table.add_column(col, justify="right" if col == "unexpected" else "left")
    rows = failed.sort(pl.col("severity") != "error", "partition", "expectation")
    for r in rows.head(limit).iter_rows(named=True):
        try:
            message = json.loads(r["details"] or "{}").get("message", "")
        except ValueError:
            message = ""
        cells = (
            r["partition"],
            r["expectation"],
            r["column_name"],
            r["severity"],
            str(r["unexpected_count"]),
        )
        table.add_row(*cells, escape(str(message)[:120]))
    console.print(table)
    if failed.height > limit:
        console.print(f"... and {failed.height - limit} more (raise --limit)")


def _features_version(wh: str, symbols: list[str], end: date) -> str:
    """Content hash of the features a training run reads (its data version)."""
    from tasks.evaluate import features_version
    from warehouse.features import read_features
    from warehouse.resource import Warehouse

    with Warehouse.at(wh).reading() as con:
        frame = read_features(con, symbols, None, end)
    if frame.height == 0:
        raise VolriskError(f"no features stored for {symbols} up to {end}; run `volrisk features` first")
    return features_version(frame, symbols, end)


def _model_config(pairs: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` as a model config; a value that is not JSON stays a string."""
    import json

    cfg: dict[str, Any] = {}
    for key, raw in (_parse_pairs(pairs, "--set") or {}).items():
        try:
            cfg[key] = json.loads(raw)
        except json.JSONDecodeError:
            cfg[key] = raw
    return cfg


@app.command("train")
@friendly_errors
def train(
    model: Annotated[str, typer.Argument(help="Registry name, e.g. har, garch, voltransformer, prob_lstm.")],
    symbols: Annotated[list[str], typer.Argument(help="Symbols whose daily features train the model.")],
    train_end: Annotated[str, typer.Option(help="Last session of the training window (YYYY-MM-DD).")],
    train_start: Annotated[str | None, typer.Option(help="First session (default: all history).")] = None,
    config: Annotated[
        list[str] | None, typer.Option("--set", help="Model config KEY=VALUE (JSON values), e.g. epochs=5.")
    ] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Train one model on stored daily features; records a model_runs row (and a checkpoint)."""
    wh = warehouse_path(warehouse)
    preflight.models([model])
    preflight.symbols(symbols)
    preflight.date_range(train_start, train_end, ("train-start", "train-end"))
    end = preflight.parse_date(train_end, "train-end")
    assert end is not None
    cfg = _model_config(config)
    preflight.warehouse_with_features(wh, symbols)
    from flows.steps.train import train_and_record  # torch: seconds to import, so after the checks

    bar = progress.progress_bar(TextColumn("{task.fields[loss]}"), console=err_console)
    task_id = bar.add_task(f"train {model}", total=None, loss="")

    def on_epoch(stats: Any) -> None:
        val = f"val {stats.val_loss:.4g}" if stats.val_loss is not None else ""
        bar.update(
            task_id,
            completed=stats.epoch + 1,  # EpochStats counts epochs from 0
            total=stats.epochs,
            loss=f"train {stats.train_loss:.4g} {val} best@{stats.best_epoch}",
        )

    with bar:
        run = train_and_record(
            wh,
            model,
            symbols,
            end,
            cfg,
            _features_version(wh, symbols, end),
            train_start=preflight.parse_date(train_start, "train-start"),
            progress=on_epoch,
        )
        if bar.tasks[0].total is None:  # a model fitted in one step (no epochs)
            bar.update(task_id, total=1, completed=1, loss="fitted")
    console.print(
        f"model run [bold]{run['model_run']}[/] ({run['model']}, {run['device']}, {run['wall_s']:.1f}s)"
    )
    for key, value in sorted((run.get("metrics") or {}).items()):
        console.print(f"  {key:<24} {value}")
    if run.get("checkpoint"):
        console.print(f"  checkpoint {run['checkpoint']}")


@app.command("predict")
@friendly_errors
def predict(
    model_run: Annotated[str, typer.Argument(help="A model run id printed by `volrisk train`.")],
    start: Annotated[str, typer.Option(help="First origin session (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last origin session.")],
    horizon: Annotated[int, typer.Option(help="Sessions ahead.")] = 1,
    warehouse: WarehouseOpt = None,
) -> None:
    """Forecast from a trained run for every stored session from --start to --end; store them.

    Predictions go to the warehouse's predictions table under the run id.
    """
    wh = warehouse_path(warehouse)
    preflight.date_range(start, end)
    preflight.at_least(horizon, 1, "--horizon")
    preflight.stored_model_run(wh, model_run)
    from warehouse.catalog import feature_sessions
    from warehouse.models import read_model_run
    from warehouse.resource import Warehouse

    lo, hi = preflight.parse_date(start, "start"), preflight.parse_date(end, "end")
    assert lo is not None and hi is not None
    with Warehouse.at(wh).reading() as con:
        run = read_model_run(con, model_run)
        if run is None:
            raise VolriskError(f"model run {model_run!r} not found; `volrisk train` prints run ids")
        origins = feature_sessions(con, list(run["symbols"]), lo, hi)
    if not origins:
        raise VolriskError(f"no stored sessions between {lo} and {hi} for {run['symbols']}")
    from flows.steps.train import predict_and_record  # torch: seconds to import, so after the checks

    out = predict_and_record(wh, model_run, origins, horizon=horizon)
    print_predict_summary(run, origins, horizon, out)


def print_predict_summary(
    run: dict[str, Any], origins: list[date], horizon: int, out: dict[str, Any]
) -> None:
    """What ``volrisk predict`` stored, as a short table."""
    table = Table(title="predictions stored")
    for col in ("model run", "model", "symbols", "origins", "first", "last", "horizon", "rows"):
        table.add_column(col, justify="right" if col in ("origins", "horizon", "rows") else "left")
    table.add_row(
        str(out["model_run"]), str(run.get("model", "")), ", ".join(run["symbols"]), f"{len(origins):,}",
        str(origins[0]), str(origins[-1]), str(horizon), f"{out['rows']:,}",
    )  # fmt: skip
    console.print(table)


@warehouse_app.command("info")
@friendly_errors
def warehouse_info(warehouse: WarehouseOpt = None) -> None:
    """Tables, row counts and date coverage per symbol."""
    from warehouse.catalog import bar_coverage, table_counts
    from warehouse.resource import Warehouse

    path = warehouse_path(warehouse)
    with Warehouse.at(path).reading() as con:
        counts = table_counts(con)
        coverage = bar_coverage(con)
    console.print(f"[bold]warehouse[/] {path}")
    t1 = Table(title="tables")
    t1.add_column("table")
    t1.add_column("rows", justify="right")
    for name, n in counts.iter_rows():
        t1.add_row(name, f"{n:,}")
    console.print(t1)
    t2 = Table(title="bars by symbol (UTC)")
    for col in ("symbol", "interval", "rows", "first bar", "last bar", "days", "sources"):
        t2.add_column(col, justify="right" if col in ("rows", "days") else "left")
    for sym, interval, rows, first, last, days, sources in coverage.iter_rows():
        t2.add_row(sym, interval, f"{rows:,}", _fmt_ts(first), _fmt_ts(last), f"{days:,}", sources)
    console.print(t2)


@warehouse_app.command("check")
@friendly_errors
def warehouse_check(warehouse: WarehouseOpt = None) -> None:
    """Verify invariants: no duplicate bar keys; print content checksums per symbol."""
    from warehouse.bars import bars_checksum
    from warehouse.catalog import bar_coverage, duplicate_bar_keys
    from warehouse.resource import Warehouse

    with Warehouse.at(warehouse_path(warehouse)).reading() as con:
        dups = duplicate_bar_keys(con)
        symbols = sorted(set(bar_coverage(con)["symbol"].to_list()))
        sums = {s: bars_checksum(con, s) for s in symbols}
        total = bars_checksum(con)
    for s, c in sums.items():
        console.print(f"{s:<12} {c}")
    console.print(f"{'ALL':<12} {total}")
    if dups:
        err_console.print(f"[red]{dups} duplicate (symbol, interval, ts) keys[/]")
        raise typer.Exit(1)
    console.print("[green]ok[/]: no duplicate bar keys")


def _fmt_ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


register_backfill(app)
cli_evaluate.register(app)
cli_instruments.register(app)
cli_devpanel.register(app)
cli_models.register(app)


if __name__ == "__main__":
    app()
