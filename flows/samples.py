"""The bundled real data under ``data/samples``: which file holds which symbol, in which format."""

from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "samples"
#: The bundled real data: crypto, FX and an equity index, the research's cross-asset trio.
SAMPLE_FILES: list[tuple[str, str, str]] = [
    ("BTC_USDT-1h_binance_2017_2024.csv", "BTC-USDT", "binance"),
    ("eurusd_oanda_hour.csv.gz", "EURUSD", "lean_fx"),
    ("spy_hour_1998_2021.csv", "SPY", "lean_equity"),
    ("nt-spy-minute-2011-01.csv", "SPY", "ninjatrader"),
    ("nt-spy-minute-2011-03.csv", "SPY", "ninjatrader"),
]


def sample_symbols() -> set[str]:
    """Every symbol the bundled samples hold."""
    return {sym for _, sym, _ in SAMPLE_FILES}


def sample_inputs(symbols: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(symbol, path, format) of every bundled file of ``symbols``, as three parallel lists.

    Raises
    ------
    ConfigError
        A bundled file is missing from :data:`SAMPLES_DIR`.
    """
    chosen = [(name, sym, fmt) for name, sym, fmt in SAMPLE_FILES if sym in symbols]
    missing = [name for name, _, _ in chosen if not (SAMPLES_DIR / name).is_file()]
    if missing:
        raise ConfigError(f"bundled sample files missing from {SAMPLES_DIR}: {missing}")
    return (
        [sym for _, sym, _ in chosen],
        [str(SAMPLES_DIR / name) for name, _, _ in chosen],
        [fmt for _, _, fmt in chosen],
    )
