"""``volrisk instruments list`` and ``volrisk instruments set``: the registry the user controls.

:func:`register` adds the ``instruments`` group to the CLI.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flows import preflight
from flows.cli_common import WarehouseOpt, console, friendly_errors, warehouse_path

instruments_app = typer.Typer(
    help="The instrument registry: asset class, session calendar, time zone and quote currency.",
    no_args_is_help=True,
)

AssetClassOpt = Annotated[
    str | None,
    typer.Option("--asset-class", help="commodity, crypto, equity_index or fx."),
]
CalendarOpt = Annotated[
    str | None,
    typer.Option("--calendar", help="24x7, fx (17:00 New York roll) or an exchange_calendars code (XNYS)."),
]


def instruments_list(warehouse: WarehouseOpt = None) -> None:
    """Every registered instrument, and the data each has (bars, realized days, feature sessions)."""
    from warehouse.catalog import list_instruments
    from warehouse.resource import Warehouse

    wh = warehouse_path(warehouse)
    preflight.warehouse_exists(wh)
    with Warehouse.at(wh).reading() as con:
        rows = list_instruments(con)
    table = Table(title=f"instruments in {wh}")
    cols = ("symbol", "asset class", "calendar", "timezone", "quote", "default source", "bars", "realized",
            "features")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right" if col in ("bars", "realized", "features") else "left")
    for r in rows.iter_rows(named=True):
        fields = ("symbol", "asset_class", "calendar", "timezone", "quote_currency", "default_source")
        cells = ["-" if r[c] is None else escape(str(r[c])) for c in fields]
        if r["asset_class"] is None:
            cells[1] = "[yellow]not registered[/]"
        table.add_row(*cells, *[f"{r[c]:,}" for c in ("bars", "realized", "features")])
    console.print(table)
    if rows.height == 0:
        console.print("no instruments yet: `volrisk instruments set SYMBOL --asset-class ... --calendar ...`")


def instruments_set(
    symbol: Annotated[str, typer.Argument(help="The symbol, exactly as in the data (e.g. .SPX, 6EH4).")],
    asset_class: AssetClassOpt = None,
    calendar: CalendarOpt = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA time zone (default: the calendar's).")
    ] = None,
    quote: Annotated[str | None, typer.Option("--quote", help="Quote currency, e.g. USD.")] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Register or change an instrument; fields not given keep their stored (else known) value."""
    from tasks.instruments import check_timezone

    preflight.symbols([symbol])
    preflight.instrument_options(asset_class, calendar)
    if timezone is not None:
        check_timezone(timezone)
    from tasks.instruments import InstrumentInfo, resolve_instrument
    from warehouse.catalog import Instrument, get_instrument, upsert_instrument
    from warehouse.resource import Warehouse

    wh = warehouse_path(warehouse)
    with Warehouse.at(wh).writing() as con:
        found = get_instrument(con, symbol)
        stored = InstrumentInfo(*(getattr(found, f) for f in InstrumentInfo._fields)) if found else None
        info = resolve_instrument(
            symbol, stored=stored, asset_class=asset_class, calendar=calendar, timezone=timezone, quote=quote
        )
        upsert_instrument(con, Instrument(*info))
    verb = "updated" if stored else "registered"
    console.print(
        f"{verb} {escape(symbol)}: {info.asset_class}, calendar {info.calendar}, timezone {info.timezone}, "
        f"quote {info.quote_currency or '-'}"
    )


def register(app: typer.Typer) -> None:
    """Add ``volrisk instruments list`` and ``volrisk instruments set`` to the CLI."""
    instruments_app.command("list")(friendly_errors(instruments_list))
    instruments_app.command("set")(friendly_errors(instruments_set))
    app.add_typer(instruments_app, name="instruments")
