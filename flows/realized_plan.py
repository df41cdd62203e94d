"""Which data a symbol's features (and so its forecast target) come from: bars or imported measures.

A symbol with bars uses its bars unless the user asks for ``--target-source realized``; a symbol that
has only imported realized measures (``volrisk ingest realized``) uses those. Checked before any task
runs, with one line naming what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import duckdb

from core.errors import ConfigError
from core.hashing import frame_hash
from core.symbols import validate_symbol
from flows.preflight import check_interval_change
from tasks.realized_features import REALIZED_INTERVAL
from warehouse.catalog import bar_symbols, feature_intervals, get_instrument
from warehouse.realized import read_realized, realized_sources, realized_symbols

TargetSource = Literal["bars", "realized"]
TARGET_SOURCES: tuple[TargetSource, ...] = ("bars", "realized")


@dataclass(frozen=True)
class RealizedPlan:
    """Features of one symbol built from its imported realized measures."""

    symbol: str
    calendar: str
    source: str
    first: date
    last: date
    version: str


def target_sources(
    con: duckdb.DuckDBPyConnection, symbols: list[str], wanted: TargetSource | None
) -> dict[str, TargetSource]:
    """Per symbol, the data its features are built from (``wanted`` or: bars if any, else realized)."""
    if wanted is not None and wanted not in TARGET_SOURCES:
        raise ConfigError(f"target source must be one of {list(TARGET_SOURCES)}; got {wanted!r}")
    with_bars, with_realized = set(bar_symbols(con)), set(realized_symbols(con))
    out: dict[str, TargetSource] = {}
    for symbol in symbols:
        validate_symbol(symbol)
        has = {"bars": symbol in with_bars, "realized": symbol in with_realized}
        choice: TargetSource = wanted or ("bars" if has["bars"] else "realized")
        if not has[choice]:
            if not any(has.values()):
                raise ConfigError(
                    f"{symbol} has neither bars nor realized measures in the warehouse; ingest it first "
                    f"(`volrisk ingest ...` for bars, `volrisk ingest realized FILE` for daily measures)"
                )
            other = "realized" if choice == "bars" else "bars"
            raise ConfigError(
                f"{symbol} has no {choice} in the warehouse (it has {other}); use --target-source {other}"
            )
        out[symbol] = choice
    return out


def plan_realized(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    start: date | None,
    end: date | None,
    replace: bool,
) -> RealizedPlan:
    """What building ``symbol``'s features from realized measures reads, and its data version."""
    inst = get_instrument(con, symbol)
    if inst is None:
        raise ConfigError(
            f"{symbol} is not a registered instrument, so its session calendar is unknown; register it "
            f"with `volrisk instruments set {symbol} --asset-class ... --calendar ...`"
        )
    sources = realized_sources(con, symbol)
    if len(sources) > 1:
        names = ", ".join(f"{s} ({n} rows)" for s, _, _, n in sources)
        raise ConfigError(f"{symbol} has realized measures from several sources ({names}); keep one")
    source, first, last, _ = sources[0]
    lo = max(start, first) if start else first
    hi = min(end - timedelta(days=1), last) if end else last
    if hi < lo:
        raise ConfigError(
            f"{symbol}: no realized measures between {start} and {end} (stored {first}..{last})"
        )
    check_interval_change(symbol, REALIZED_INTERVAL, feature_intervals(con, symbol, lo, hi), replace)
    rows = read_realized(con, symbol, lo, hi + timedelta(days=1), source=source)
    return RealizedPlan(symbol, inst.calendar, source, lo, hi, frame_hash(rows))
