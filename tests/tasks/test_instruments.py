"""The instrument registry's pure part: known codes, strict patterns, no guessing (issue 11)."""

from __future__ import annotations

from typing import Any

import exchange_calendars as xcals
import pytest

from core.errors import ConfigError
from tasks.instruments import (
    OXFORD_MAN_CODES,
    InstrumentInfo,
    UnknownInstrumentError,
    calendar_timezone,
    ingest_registration,
    known_instrument,
    resolve_instrument,
)

ISSUE_CODES = {
    ".SPX": "XNYS", ".DJI": "XNYS", ".RUT": "XNYS", ".IXIC": "XNAS", ".FTSE": "XLON", ".GDAXI": "XFRA",
    ".FCHI": "XPAR", ".STOXX50E": "XFRA", ".AEX": "XAMS", ".BFX": "XBRU", ".IBEX": "XMAD", ".SMSI": "XMAD",
    ".SSMI": "XSWX", ".FTMIB": "XMIL", ".OMXC20": "XCSE", ".OMXHPI": "XHEL", ".OMXSPI": "XSTO",
    ".OSEAX": "XOSL", ".BVLG": "XLIS", ".N225": "XTKS", ".HSI": "XHKG", ".KS11": "XKRX", ".KSE": "XKAR",
    ".AORD": "XASX", ".BVSP": "BVMF", ".MXX": "XMEX", ".GSPTSE": "XTSE", ".NSEI": "XBOM", ".BSESN": "XBOM",
    ".SSEC": "XSHG", ".STI": "XSES",
}  # fmt: skip


@pytest.mark.parametrize(("code", "calendar"), sorted(ISSUE_CODES.items()))
def test_oxford_man_codes_map_to_their_exchange_calendar(code: str, calendar: str) -> None:
    info = known_instrument(code)
    assert info is not None and (info.asset_class, info.calendar) == ("equity_index", calendar)
    assert calendar in xcals.get_calendar_names(include_aliases=True)


def test_every_known_code_is_listed_in_the_issue() -> None:
    assert {c: cal for c, (cal, _) in OXFORD_MAN_CODES.items()} == ISSUE_CODES


@pytest.mark.parametrize(
    ("symbol", "asset_class", "calendar"),
    [("BTC-USDT", "crypto", "24x7"), ("EURUSD", "fx", "fx"), ("SPY", "equity_index", "XNYS"),
     ("BTC-USD", "crypto", "24x7"), ("EURUSD=X", "fx", "fx"), ("^GSPC", "equity_index", "XNYS"),
     ("GC=F", "commodity", "24x7"), ("GBPJPY", "fx", "fx"), ("AUDUSD=X", "fx", "fx"),
     ("ETH-USDT", "crypto", "24x7"), ("SOL_USDC", "crypto", "24x7")],
)  # fmt: skip
def test_bundled_symbols_and_strict_patterns_resolve(symbol: str, asset_class: str, calendar: str) -> None:
    info = resolve_instrument(symbol)
    assert (info.asset_class, info.calendar) == (asset_class, calendar)


@pytest.mark.parametrize("symbol", ["6EH4", "EURUSD-HD", "AAPL", "EURUSDX", ".spx", "USDUSD", "ESZ4"])
def test_an_unknown_symbol_is_not_guessed(symbol: str) -> None:
    assert known_instrument(symbol) is None
    with pytest.raises(UnknownInstrumentError) as err:
        resolve_instrument(symbol)
    message = str(err.value)
    assert f"unknown instrument {symbol}" in message
    assert f"volrisk instruments set {symbol} --asset-class" in message and "equity_index" in message
    assert "\n" not in message


def test_given_fields_register_an_unknown_symbol() -> None:
    info = resolve_instrument("6EH4", asset_class="fx", calendar="CMES")
    assert info == InstrumentInfo("6EH4", "fx", "CMES", None, None, "America/Chicago")
    assert resolve_instrument("EURUSD-HD", calendar="fx").asset_class == "fx"
    with pytest.raises(ConfigError, match="give --calendar for asset class equity_index"):
        resolve_instrument("ACME", asset_class="equity_index")


def test_set_keeps_stored_fields_and_rederives_the_zone_of_a_new_calendar() -> None:
    stored = InstrumentInfo("6EH4", "fx", "CMES", "USD", "file", "America/Chicago")
    assert resolve_instrument("6EH4", stored=stored, quote="EUR") == stored._replace(quote_currency="EUR")
    moved = resolve_instrument("6EH4", stored=stored, calendar="XLON")
    assert (moved.calendar, moved.timezone, moved.quote_currency) == ("XLON", "Europe/London", "USD")
    assert resolve_instrument("6EH4", stored=stored, timezone="UTC").timezone == "UTC"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"asset_class": "stock"}, "--asset-class 'stock'"), ({"calendar": "NYSEX"}, "unknown calendar 'NYSEX'"),
     ({"timezone": "Mars/Olympus"}, "not an IANA time zone")],
)  # fmt: skip
def test_bad_fields_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_instrument("SPY", **kwargs)


def test_calendar_time_zones() -> None:
    assert [calendar_timezone(c) for c in ("24x7", "fx", "XNYS", "XTKS", "XBOM")] == [
        "UTC", "America/New_York", "America/New_York", "Asia/Tokyo", "Asia/Kolkata",
    ]  # fmt: skip


def test_an_ingest_never_overrides_a_registration() -> None:
    stored = InstrumentInfo("6EH4", "fx", "CMES", None, None, "America/Chicago")
    assert ingest_registration("6EH4", stored) is None
    assert ingest_registration("6EH4", stored, "fx", "CMES") is None
    with pytest.raises(
        ConfigError, match=r"--calendar fx \(registered: CMES\).*volrisk instruments set 6EH4"
    ):
        ingest_registration("6EH4", stored, "fx", "fx")
    with pytest.raises(UnknownInstrumentError, match="or pass --asset-class and --calendar to this ingest"):
        ingest_registration("6EH4", None)
    assert ingest_registration("SPY", None) == resolve_instrument("SPY")
