"""Daily realized measures of every intraday bar file shipped with volrisk, as one realized panel.

Each series below is read with the project's own readers (:func:`tasks.sources.files.read_bars_file`)
and turned into daily measures by the project's own features code
(:func:`tasks.features.build_daily_features`, on the instrument's session calendar); sessions with
low bar coverage or zero RV are left out, like a vendor that drops half days. The rows are in the
generic realized layout ``date,symbol,rv,bv,rq,rs_pos,rs_neg,ret`` (plus ``ret_oc``, ``close_price``
and ``nobs``), in the units ``volrisk ingest realized`` expects: decimal variances of daily log returns
and decimal log returns; ``date`` is the local session date.

Symbols end in ``_RV`` (hourly bars), ``_RV5M`` (1-minute bars sampled every 5 minutes) or ``_GK``
(daily bars: the Garman-Klass range variance, :mod:`tasks.range_realized`), so they never collide with
the bar symbols of a warehouse (``SPY``, ``EURUSD``, ``BTC-USDT``). Hourly measures are noisier than
5-minute ones and miss the overnight of an equity session; range variances are noisier still; that is
fine for development, and it is why the kinds are separate symbols.

Not in the panel: the daily bar files of assets that already have an intraday series (SPY, EUR/USD)
and the Oxford-Man realized library, which is kept for acceptance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import polars as pl

from core.errors import ConfigError
from tasks.features import build_daily_features
from tasks.range_realized import daily_bars_to_realized
from tasks.sources.files import read_bars_file

Root = Literal["samples", "shared"]
#: Extra columns written after the generic layout's eight (the importer reads them too).
EXTRA_COLUMNS = ("ret_oc", "close_price", "nobs")


class ShippedSeries(NamedTuple):
    """One realized series built from shipped bars.

    Attributes
    ----------
    symbol : str
        The panel's symbol.
    asset_class, calendar : str
        Its registration (``volrisk instruments set`` fields).
    root : {"samples", "shared"}
        ``data/samples`` (bundled, permissive licences) or ``../shared/data`` (may be absent).
    files : tuple[str, ...]
        Bar files under ``root``, read as one series.
    fmt : str
        The bar files' format (:data:`tasks.sources.layouts.LAYOUTS`).
    bar_symbol : str
        The symbol the bars are read under.
    resample : str | None
        Sampling grid of the realized measures (``"5m"`` for 1-minute bars; ``None``: every bar).
    """

    symbol: str
    asset_class: str
    calendar: str
    root: Root
    files: tuple[str, ...]
    fmt: str
    bar_symbol: str
    resample: str | None = None


_HISTDATA = tuple(f"eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_2017{m:02d}.csv" for m in range(1, 7))
#: Every intraday bar file shipped with volrisk or beside it, once (``../shared/data`` repeats the
#: bundled hourly files; the bundled copies are used).
SHIPPED_SERIES: tuple[ShippedSeries, ...] = (
    ShippedSeries(
        "SPY_RV", "equity_index", "XNYS", "samples", ("spy_hour_1998_2021.csv",), "lean_equity", "SPY"
    ),
    ShippedSeries("EURUSD_RV", "fx", "fx", "samples", ("eurusd_oanda_hour.csv.gz",), "lean_fx", "EURUSD"),
    ShippedSeries(
        "BTC_RV", "crypto", "24x7", "samples", ("BTC_USDT-1h_binance_2017_2024.csv",), "binance", "BTC-USDT"
    ),
    ShippedSeries(
        "SPY_RV5M", "equity_index", "XNYS", "samples",
        ("nt-spy-minute-2011-01.csv", "nt-spy-minute-2011-03.csv"), "ninjatrader", "SPY", "5m",
    ),
    ShippedSeries("EURUSD_RV5M", "fx", "fx", "shared", _HISTDATA, "histdata", "EURUSD", "5m"),
    ShippedSeries(
        "BTCPERP_RV5M", "crypto", "24x7", "shared",
        ("btc_perp_1m_ftx_202201/btc-perp-20211231-20220201_1m.csv",), "ftx", "BTC-PERP", "5m",
    ),
    ShippedSeries(
        "GSPC_GK", "equity_index", "XNYS", "shared", ("arch_daily/sp500.csv.gz",), "yahoo_csv", "GSPC"
    ),
    ShippedSeries(
        "IXIC_GK", "equity_index", "XNYS", "shared", ("arch_daily/nasdaq.csv.gz",), "yahoo_csv", "IXIC"
    ),
    ShippedSeries(
        "BTC_GK", "crypto", "24x7", "shared",
        ("btc_daily_mathaszip/BTCUSD_1d_candles_full.csv",), "candles_daily", "BTCUSD",
    ),
)  # fmt: skip


def series_paths(series: ShippedSeries, roots: dict[Root, Path | None]) -> list[Path] | None:
    """The series' files under its root, or ``None`` when the root or a file is absent."""
    root = roots.get(series.root)
    if root is None:
        return None
    paths = [root / name for name in series.files]
    return paths if all(p.is_file() for p in paths) else None


def daily_to_realized(daily: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """Daily feature rows (:data:`~core.schema.DAILY_FEATURES_SCHEMA`) as generic realized-layout rows.

    Sessions with ``low_coverage`` or a zero RV are dropped; ``ret`` is the close-to-close return
    ``ret_cc`` (null after a session without bars) and ``nobs`` the number of intraday returns.
    """
    return (
        daily.filter(~pl.col("low_coverage") & (pl.col("rv") > 0))
        .sort("session_date")
        .select(
            pl.col("session_date").alias("date"),
            pl.lit(symbol).alias("symbol"),
            "rv", "bv", "rq", "rs_pos", "rs_neg",
            pl.col("ret_cc").alias("ret"),
            "ret_oc",
            pl.col("close").alias("close_price"),
            pl.col("n_returns").alias("nobs"),
        )
    )  # fmt: skip


def build_series(series: ShippedSeries, paths: Sequence[Path]) -> tuple[pl.DataFrame, list[str]]:
    """Read one series' bar files and compute its daily realized rows, with a note on days left out.

    Intraday bars go through :func:`daily_to_realized`; daily bars through
    :func:`tasks.range_realized.daily_bars_to_realized`, whose dropped days (no trading) the note
    counts and whose bad prints (variance imputed) it names.
    """
    parsed = [read_bars_file(p, symbol=series.bar_symbol, fmt=series.fmt) for p in paths]
    intervals = {p.interval for p in parsed}
    if len(intervals) != 1:
        raise ConfigError(f"{series.symbol}: its files have several bar intervals {sorted(intervals)}")
    interval = intervals.pop()
    bars = pl.concat([p.bars for p in parsed]).unique(["symbol", "ts"], keep="last").sort("ts")
    if interval != "1d":
        daily = build_daily_features(bars, series.calendar, interval, resample=series.resample)
        return daily_to_realized(daily, series.symbol), []
    rows, notes = daily_bars_to_realized(bars, series.calendar, series.symbol)
    if notes.is_empty():
        return rows, []
    dropped = notes.filter(pl.col("action") == "dropped").height
    named = "; ".join(
        f"{d:%Y-%m-%d} {r}" for d, r in notes.filter(pl.col("action") == "imputed").drop("action").iter_rows()
    )
    text = f"{series.symbol}: {dropped} day(s) without a range left out" + (f"; {named}" if named else "")
    return rows, [text]


def shipped_realized_panel(
    roots: dict[Root, Path | None], series: Sequence[ShippedSeries] = SHIPPED_SERIES
) -> tuple[pl.DataFrame, list[ShippedSeries], list[str]]:
    """Every shipped series whose files are present, as one realized panel.

    Parameters
    ----------
    roots : dict
        ``{"samples": data/samples, "shared": ../shared/data or None}``.
    series : Sequence[ShippedSeries]
        The series to build (default: all of :data:`SHIPPED_SERIES`).

    Returns
    -------
    tuple[pl.DataFrame, list[ShippedSeries], list[str]]
        The rows (generic layout plus :data:`EXTRA_COLUMNS`, sorted by symbol and date), the series
        built, and notes: a series left out because its files are absent, days left out of a series.
    """
    frames, built, notes = [], [], []
    for s in series:
        paths = series_paths(s, roots)
        if paths is None:
            notes.append(f"{s.symbol}: left out, its files are absent under {roots.get(s.root) or s.root}")
            continue
        rows, series_notes = build_series(s, paths)
        frames.append(rows)
        notes += series_notes
        built.append(s)
    if not frames:
        raise ConfigError(f"no shipped bar file found under {[str(r) for r in roots.values() if r]}")
    return pl.concat(frames).sort("symbol", "date"), built, notes


def panel_csv(panel: pl.DataFrame) -> str:
    """The panel's generic-layout CSV text (10 significant digits)."""
    return panel.write_csv(float_scientific=True, float_precision=9)
