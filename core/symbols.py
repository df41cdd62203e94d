"""Symbol validation: the gate every symbol passes before it reaches SQL or a path."""

from __future__ import annotations

import re

from core.errors import ConfigError

# Letters, digits and the punctuation real tickers use (BTC-USDT, EURUSD=X, ^GSPC, .SPX, BRK_B).
# No slash, backslash, quote, space, semicolon or "..": a symbol can never escape a folder or a string.
SYMBOL_PATTERN = re.compile(r"^[A-Za-z0-9^.=_-]{1,32}$")
# A leading = or - makes a spreadsheet evaluate an exported cell as a formula (CSV injection).
_FORMULA_START = frozenset("=-")


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is safe, else raise :class:`ConfigError` saying what is allowed."""
    if (
        not isinstance(symbol, str)
        or not SYMBOL_PATTERN.fullmatch(symbol)
        or ".." in symbol
        or symbol[0] in _FORMULA_START
    ):
        raise ConfigError(
            f"invalid symbol {symbol!r}: expected 1-32 characters of letters, digits and . - _ ^ = "
            "(no '..', slashes, quotes or spaces, and not starting with = - which a spreadsheet "
            "would run as a formula)"
        )
    return symbol
