"""The instrument registry's pure part: known symbols, strict patterns and what a registration holds.

A symbol's asset class and session calendar are never guessed: they come from the warehouse's
``instruments`` table (what the user set with ``volrisk instruments set``), else from the known table
below (the bundled samples and the Oxford-Man / Reuters index codes), else from a strict pattern that
cannot be mistaken (a six-letter currency pair such as ``EURUSD`` or ``EURUSD=X``, a crypto pair such
as ``BTC-USDT``). Anything else is an :class:`UnknownInstrumentError` naming the command that
registers it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from core.errors import ConfigError
from core.symbols import validate_symbol

ASSET_CLASSES = ("commodity", "crypto", "equity_index", "fx")
#: The calendar an asset class implies when none is given (only where it is unambiguous).
_DEFAULT_CALENDAR = {"crypto": "24x7", "fx": "fx"}
_NON_EXCHANGE_TZ = {"24x7": "UTC", "fx": "America/New_York"}


class InstrumentInfo(NamedTuple):
    """An instrument's metadata (the fields of ``warehouse.catalog.Instrument``, in its order)."""

    symbol: str
    asset_class: str
    calendar: str
    quote_currency: str | None = None
    default_source: str | None = None
    timezone: str | None = None


class UnknownInstrumentError(ConfigError):
    """A symbol that is neither registered, known nor matched by a strict pattern."""


def _known(rows: list[tuple[str, str, str, str | None, str | None]]) -> dict[str, InstrumentInfo]:
    return {r[0]: InstrumentInfo(*r) for r in rows}


_KNOWN: dict[str, InstrumentInfo] = _known([
    ("BTC-USDT", "crypto", "24x7", "USDT", "binance"),
    ("BTC-USD", "crypto", "24x7", "USD", "yfinance"),
    ("BTC-PERP", "crypto", "24x7", "USD", "ftx"),
    ("EURUSD", "fx", "fx", "USD", "lean_fx"),
    ("EURUSD=X", "fx", "fx", "USD", "yfinance"),
    ("SPY", "equity_index", "XNYS", "USD", "lean_equity"),
    ("^GSPC", "equity_index", "XNYS", "USD", "yfinance"),
    ("SPX", "equity_index", "XNYS", "USD", "yahoo_csv"),
    ("GC=F", "commodity", "24x7", "USD", "yfinance"),
])  # fmt: skip

#: Oxford-Man / Reuters index codes: (exchange calendar, quote currency).
OXFORD_MAN_CODES: dict[str, tuple[str, str]] = {
    ".SPX": ("XNYS", "USD"), ".DJI": ("XNYS", "USD"), ".RUT": ("XNYS", "USD"), ".IXIC": ("XNAS", "USD"),
    ".FTSE": ("XLON", "GBP"), ".GDAXI": ("XFRA", "EUR"), ".FCHI": ("XPAR", "EUR"),
    ".STOXX50E": ("XFRA", "EUR"), ".AEX": ("XAMS", "EUR"), ".BFX": ("XBRU", "EUR"),
    ".IBEX": ("XMAD", "EUR"), ".SMSI": ("XMAD", "EUR"), ".SSMI": ("XSWX", "CHF"),
    ".FTMIB": ("XMIL", "EUR"), ".OMXC20": ("XCSE", "DKK"), ".OMXHPI": ("XHEL", "EUR"),
    ".OMXSPI": ("XSTO", "SEK"), ".OSEAX": ("XOSL", "NOK"), ".BVLG": ("XLIS", "EUR"),
    ".N225": ("XTKS", "JPY"), ".HSI": ("XHKG", "HKD"), ".KS11": ("XKRX", "KRW"), ".KSE": ("XKAR", "PKR"),
    ".AORD": ("XASX", "AUD"), ".BVSP": ("BVMF", "BRL"), ".MXX": ("XMEX", "MXN"),
    ".GSPTSE": ("XTSE", "CAD"), ".NSEI": ("XBOM", "INR"), ".BSESN": ("XBOM", "INR"),
    ".SSEC": ("XSHG", "CNY"), ".STI": ("XSES", "SGD"),
}  # fmt: skip
_KNOWN.update(
    {code: InstrumentInfo(code, "equity_index", cal, ccy) for code, (cal, ccy) in OXFORD_MAN_CODES.items()}
)

_CCY = "USD|EUR|JPY|GBP|CHF|AUD|NZD|CAD|SEK|NOK"
_FX = re.compile(rf"^({_CCY})({_CCY})(=X)?$")
_CRYPTO = re.compile(r"^(BTC|ETH|SOL|XRP|ADA|DOGE|LTC|BNB)(?:[-_]?(USD|USDT|USDC|EUR|PERP))?$")


def known_symbols() -> list[str]:
    """Every symbol of the known table, sorted."""
    return sorted(_KNOWN)


def known_instrument(symbol: str) -> InstrumentInfo | None:
    """The known table's entry or a strict pattern's match for ``symbol``; ``None`` otherwise.

    Parameters
    ----------
    symbol : str
        The symbol, exactly as stored (no case folding: ``.spx`` is not ``.SPX``).
    """
    validate_symbol(symbol)
    if symbol in _KNOWN:
        return _KNOWN[symbol]
    fx = _FX.match(symbol)
    if fx and fx.group(1) != fx.group(2):
        return InstrumentInfo(symbol, "fx", "fx", fx.group(2))
    crypto = _CRYPTO.match(symbol)
    if crypto:
        quote = crypto.group(2)
        return InstrumentInfo(symbol, "crypto", "24x7", "USD" if quote in (None, "PERP") else quote)
    return None


def unknown_message(symbol: str, also: str = "") -> str:
    """The one line that tells how to register ``symbol`` (``also``: another way, e.g. an ingest option)."""
    return (
        f"unknown instrument {symbol}: register it first with `volrisk instruments set {symbol} "
        f"--asset-class CLASS --calendar CALENDAR`{also} (asset classes: {', '.join(ASSET_CLASSES)}; "
        "calendars: 24x7, fx or an exchange_calendars code such as XNYS, XLON, CMES)"
    )


def check_asset_class(asset_class: str) -> str:
    """Return ``asset_class`` if it is one of :data:`ASSET_CLASSES`, else raise :class:`ConfigError`."""
    if asset_class not in ASSET_CLASSES:
        raise ConfigError(f"--asset-class {asset_class!r}: expected one of {', '.join(ASSET_CLASSES)}")
    return asset_class


def check_calendar(calendar: str) -> str:
    """Return ``calendar`` if it is a volrisk calendar name (``24x7``, ``fx``, an exchange code)."""
    from tasks.calendars import validate_calendar  # exchange_calendars: only when a calendar is given

    try:
        return validate_calendar(calendar)
    except ConfigError as exc:
        raise ConfigError(f"--calendar: {exc}") from None


def check_timezone(timezone: str) -> str:
    """Return ``timezone`` if it is an IANA time-zone name (``Europe/London``), else raise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"--timezone {timezone!r} is not an IANA time zone; expected e.g. America/New_York, Europe/London"
        ) from None
    return timezone


@lru_cache(maxsize=64)
def calendar_timezone(calendar: str) -> str:
    """The time zone of a calendar: ``UTC`` for 24x7, New York for fx, the exchange's zone otherwise."""
    if calendar in _NON_EXCHANGE_TZ:
        return _NON_EXCHANGE_TZ[calendar]
    import exchange_calendars as xcals

    check_calendar(calendar)
    return str(xcals.get_calendar(calendar, start="2024-01-02", end="2024-01-31").tz)


def resolve_instrument(
    symbol: str,
    *,
    stored: InstrumentInfo | None = None,
    asset_class: str | None = None,
    calendar: str | None = None,
    timezone: str | None = None,
    quote: str | None = None,
    source: str | None = None,
    also: str = "",
) -> InstrumentInfo:
    """The registration of ``symbol``: given fields, else the stored ones, else the known table's.

    A changed calendar re-derives the time zone unless ``timezone`` is given.

    Raises
    ------
    UnknownInstrumentError
        Nothing is given, stored or known for ``symbol`` (``also`` is added to the advice).
    ConfigError
        A bad asset class, calendar or time zone, or an asset class whose calendar is ambiguous.
    """
    base = stored or known_instrument(symbol)
    if asset_class is None and base is None and calendar == "fx":
        asset_class = "fx"
    cls = asset_class or (base.asset_class if base else None)
    if cls is None:
        raise UnknownInstrumentError(unknown_message(symbol, also))
    check_asset_class(cls)
    cal = calendar or (base.calendar if base else _DEFAULT_CALENDAR.get(cls))
    if cal is None:
        raise ConfigError(
            f"instrument {symbol}: give --calendar for asset class {cls} (24x7, fx or an exchange code "
            "such as XNYS or CMES); volrisk does not guess it"
        )
    check_calendar(cal)
    if timezone is not None:
        tz = check_timezone(timezone)
    elif base is not None and base.timezone and base.calendar == cal:
        tz = base.timezone
    else:
        tz = calendar_timezone(cal)
    ccy = quote or (base.quote_currency if base else None)
    src = (base.default_source if base else None) or source
    return InstrumentInfo(symbol, cls, cal, ccy, src, tz)


def ingest_registration(
    symbol: str,
    stored: InstrumentInfo | None,
    asset_class: str | None = None,
    calendar: str | None = None,
    source: str | None = None,
) -> InstrumentInfo | None:
    """What an ingest run registers for ``symbol``: ``None`` when the stored registration stands.

    A stored registration is never overwritten by an ingest: ``asset_class``/``calendar`` that differ
    from it are refused with the command that changes it.

    Raises
    ------
    UnknownInstrumentError
        Unregistered, unknown and no ``asset_class``/``calendar`` given.
    ConfigError
        The options conflict with the stored registration, or are invalid.
    """
    if stored is not None:
        clash = [
            f"{name} {given} (registered: {have})"
            for name, given, have in (
                ("--asset-class", asset_class, stored.asset_class),
                ("--calendar", calendar, stored.calendar),
            )
            if given is not None and given != have
        ]
        if clash:
            raise ConfigError(
                f"instrument {symbol} is registered as {stored.asset_class} on calendar {stored.calendar}; "
                f"{', '.join(clash)} conflicts: change it with `volrisk instruments set {symbol} "
                f"--asset-class ... --calendar ...` first"
            )
        return None
    also = " or pass --asset-class and --calendar to this ingest"
    return resolve_instrument(symbol, asset_class=asset_class, calendar=calendar, source=source, also=also)
