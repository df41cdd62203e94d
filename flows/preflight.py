"""Cheap checks of command-line arguments, run before Prefect or torch is imported.

A flow run waits 5-20 s for Prefect's temporary server; a typo should not. Every check here reads
only the arguments, the file system and (read-only, briefly) the warehouse, and raises
:class:`~core.errors.ConfigError` with one line that names the option and what was expected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.symbols import SYMBOL_PATTERN, validate_symbol
from tasks.model_catalog import BUILTIN_MODELS


def symbols(values: Sequence[str], option: str | None = None) -> list[str]:
    """Validate symbols; a comma or space inside one says how to give several."""
    for value in values:
        parts = [p for p in value.replace(",", " ").split() if p]
        if option and len(parts) > 1 and all(SYMBOL_PATTERN.fullmatch(p) for p in parts):
            example = " ".join(f"{option} {p}" for p in parts[:3])
            raise ConfigError(f"{option} takes one symbol and repeats for more: {example}")
        validate_symbol(value)
    return list(values)


def files(paths: Iterable[Path], what: str = "file") -> list[Path]:
    """Every path exists, is a file and is readable."""
    out = []
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{what} '{path}' does not exist or is not a file")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{what} '{path}' is not readable")
        out.append(path)
    return out


def file_format(fmt: str | None) -> None:
    """A known ``--format`` name (or none: detected)."""
    from tasks.sources.layouts import LAYOUTS

    if fmt is not None and fmt not in LAYOUTS and fmt != "generic":
        raise ConfigError(f"--format {fmt!r} is unknown; expected one of {sorted(LAYOUTS)} or 'generic'")


def parse_date(value: str | None, option: str) -> date | None:
    """``YYYY-MM-DD`` or None."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--{option} {value!r} is not a date; expected YYYY-MM-DD") from None


def date_range(start: str | None, end: str | None, names: tuple[str, str] = ("start", "end")) -> None:
    """Both dates parse and the first is not after the second."""
    lo, hi = parse_date(start, names[0]), parse_date(end, names[1])
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"--{names[0]} {lo} is after --{names[1]} {hi}")


def models(names: Sequence[str] | None) -> None:
    """Every ``-m`` name is a registered model."""
    unknown = sorted(set(names or []) - set(BUILTIN_MODELS))
    if unknown:
        raise ConfigError(f"unknown models {unknown}; registered: {sorted(BUILTIN_MODELS)}")


def json_object(text: str | None, option: str) -> dict[str, Any] | None:
    """A JSON object given on the command line, or None."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f'{option} must be a JSON object, e.g. \'{{"voltransformer": {{"epochs": 5}}}}\'')
    return value


def choice(value: str, allowed: Sequence[str], option: str) -> None:
    """``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{option} {value!r}: expected one of {', '.join(allowed)}")


def at_least(value: int | None, low: int, option: str) -> None:
    """An integer option is at least ``low`` (None passes)."""
    if value is not None and value < low:
        raise ConfigError(f"{option} {value}: expected an integer >= {low}")


def _require_stored(
    path: str, wanted: Sequence[str], what: str, lister: Callable[[Any], list[str]], advice: str
) -> None:
    """The warehouse exists and ``lister`` finds every symbol in ``wanted``; else say ``advice``."""
    from warehouse.resource import Warehouse

    if not Path(path).is_file():
        raise ConfigError(f"warehouse {path} does not exist; {advice.format(symbols='SYMBOL')}")
    with Warehouse.at(path).reading() as con:
        stored = set(lister(con))
    missing = [s for s in wanted if s not in stored]
    if missing:
        raise ConfigError(
            f"no {what} for {missing} in {path}; {advice.format(symbols=' '.join(missing))} "
            f"(stored: {sorted(stored) or 'none'})"
        )


def warehouse_with_features(path: str, wanted: Sequence[str]) -> None:
    """The warehouse exists and holds daily features for every symbol in ``wanted``."""
    from warehouse.catalog import feature_symbols

    _require_stored(path, wanted, "features_daily rows", feature_symbols, "run `volrisk features {symbols}`")


def warehouse_with_bars(path: str, wanted: Sequence[str]) -> None:
    """The warehouse exists and holds bars for every symbol in ``wanted``."""
    from warehouse.catalog import bar_symbols

    _require_stored(path, wanted, "bars stored", bar_symbols, "ingest them first (`volrisk ingest ...`)")


def warehouse_exists(path: str) -> None:
    """The warehouse file exists (for commands that only read it)."""
    if not Path(path).is_file():
        raise ConfigError(f"warehouse {path} does not exist; ingest bars and run `volrisk evaluate` first")


def stored_evaluation(path: str, name: str | None) -> None:
    """The warehouse holds the evaluation ``name`` (None: any)."""
    from warehouse.evaluations import read_evaluation
    from warehouse.resource import Warehouse

    warehouse_exists(path)
    with Warehouse.at(path).reading() as con:
        found = read_evaluation(con, name)
    if found is None:
        which = f"evaluation {name!r}" if name else "evaluation"
        raise ConfigError(f"no stored {which} in {path}; run `volrisk evaluate` first")


def stored_model_run(path: str, model_run: str) -> None:
    """The warehouse holds the trained run ``model_run``."""
    from warehouse.catalog import has_model_run
    from warehouse.resource import Warehouse

    warehouse_exists(path)
    with Warehouse.at(path).reading() as con:
        found = has_model_run(con, model_run)
    if not found:
        raise ConfigError(f"model run {model_run!r} not found in {path}; `volrisk train` prints run ids")


def chosen_interval(
    symbol: str,
    stored: list[tuple[str, int, Any, Any]],
    requested: dict[str, str] | None,
    features_from: str | None = None,
) -> tuple[str, int, Any, Any]:
    """The (interval, rows, first, last) row of ``stored`` that features for ``symbol`` will read.

    ``--interval`` first; else the interval the symbol's stored features came from (``features_from``),
    so adding minute bars to an hourly history does not switch it; else the longest history.
    """
    intraday = [s for s in stored if s[0] != "1d"]
    longest = max(intraday, key=lambda s: s[3] - s[2])[0] if intraday else None
    kept = features_from if any(s[0] == features_from for s in intraday) else None
    chosen = (requested or {}).get(symbol) or kept or longest
    match = [s for s in intraday if s[0] == chosen]
    if not intraday:
        daily = " only daily (1d) bars are stored, and" if stored else ""
        raise ConfigError(
            f"{symbol}:{daily} daily features measure realized variance from intraday bars; ingest "
            "intraday bars, or import daily realized measures (`volrisk ingest realized`)"
        )
    if not match:
        have = [s[0] for s in intraday]
        raise ConfigError(f"{symbol}: no intraday bars at interval {chosen!r} (stored: {have})")
    return match[0]


def check_interval_change(
    symbol: str, interval: str, stored: list[tuple[str, Any, Any, int]], replace: bool
) -> None:
    """Refuse to rebuild sessions stored from another bar interval unless ``replace`` says so.

    RV from 1-minute and hourly bars differ in level, so mixing them in one symbol's history silently
    changes the target a model learns. ``stored`` is ``warehouse.features.feature_intervals``.
    """
    other = [s for s in stored if s[0] != interval]
    if not other or replace:
        return

    def what(iv: str) -> str:
        return "imported realized measures" if iv == "realized" else f"{iv} bars"

    was = "; ".join(f"{n} sessions {a}..{b} from {what(iv)}" for iv, a, b, n in other)
    raise ConfigError(
        f"{symbol}: the stored features in this range were built from other data ({was}); rebuilding "
        f"them from {what(interval)} would mix sources in one history. Pass --replace-interval to "
        f"rebuild exactly the sessions the {what(interval)} cover (the others are kept), or narrow "
        "--start/--end"
    )


def feature_rebuild(
    path: str, symbols: Sequence[str], start: str | None, end: str | None,
    intervals: dict[str, str] | None, replace: bool,
) -> None:  # fmt: skip
    """The interval each symbol's features will read exists, and no stored session changes interval."""
    from datetime import timedelta

    from warehouse.bars import stored_intervals
    from warehouse.catalog import feature_intervals, features_interval
    from warehouse.resource import Warehouse

    lo, hi = parse_date(start, "start"), parse_date(end, "end")
    with Warehouse.at(path).reading() as con:
        for symbol in symbols:
            row = chosen_interval(
                symbol, stored_intervals(con, symbol), intervals, features_interval(con, symbol)
            )
            interval, _, first, last = row
            a = max(lo, first.date()) if lo else first.date()
            b = min(hi - timedelta(days=1), last.date()) if hi else last.date()
            if a > b:
                raise ConfigError(
                    f"{symbol}: no {interval} bars between {start} and {end} (stored {first:%Y-%m-%d}.."
                    f"{last:%Y-%m-%d}); pick another range or --interval {symbol}=..."
                )
            check_interval_change(symbol, interval, feature_intervals(con, symbol, a, b), replace)


def instrument_options(asset_class: str | None, calendar: str | None) -> None:
    """``--asset-class`` is an allowed class and ``--calendar`` a volrisk calendar name (either optional)."""
    from tasks.instruments import check_asset_class, check_calendar

    if asset_class is not None:
        check_asset_class(asset_class)
    if calendar is not None:
        check_calendar(calendar)


def instruments(
    path: str, wanted: Sequence[str], asset_class: str | None = None, calendar: str | None = None
) -> None:
    """Every symbol is registered in the warehouse, known, or given ``--asset-class``/``--calendar``.

    A registration the options contradict is refused too (see
    :func:`tasks.instruments.ingest_registration`); nothing is written here.
    """
    from tasks.instruments import InstrumentInfo, ingest_registration

    instrument_options(asset_class, calendar)
    stored: dict[str, InstrumentInfo] = {}
    if Path(path).is_file() and wanted:
        from warehouse.catalog import get_instrument
        from warehouse.resource import Warehouse

        with Warehouse.at(path).reading() as con:
            for symbol in wanted:
                inst = get_instrument(con, symbol)
                if inst is not None:
                    stored[symbol] = InstrumentInfo(*(getattr(inst, f) for f in InstrumentInfo._fields))
    for symbol in dict.fromkeys(wanted):
        ingest_registration(symbol, stored.get(symbol), asset_class, calendar)
