"""Vendor file layouts: how each format's columns, timestamps and time zone map to volrisk bars.

A layout is data, not code: one reader (:mod:`tasks.sources.files`) serves every format. Add a
vendor by adding a :class:`Layout` here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ConfigError, DataError

Stamp = Literal["start", "end"]
Prices = Literal["ohlc", "bidask_mid"]


@dataclass(frozen=True)
class Layout:
    """One CSV-like vendor format.

    Parameters
    ----------
    name : str
        Format name used on the command line (``--format``).
    delimiter : str
        Field separator.
    header : bool
        Whether the first line names the columns.
    columns : tuple[str, ...]
        Column names: positional names for headerless files, the required header names otherwise.
    ts_columns : tuple[str, ...]
        Columns joined with a space to form the timestamp text.
    ts_format : str | None
        ``strptime`` format; ``None`` lets polars parse ISO-8601.
    tz : str
        IANA time zone of the stamps (``Etc/GMT+5`` is EST without DST).
    stamp : {"start", "end"}
        Whether a stamp marks the bar's start or its end.
    prices : {"ohlc", "bidask_mid"}
        ``bidask_mid`` averages ``bid_*`` and ``ask_*`` columns into mid OHLC.
    interval : str | None
        Fixed bar interval, or ``None`` to infer it from the stamps.
    rename : dict[str, str]
        Source column → canonical column (open, high, low, close, volume).
    positional : bool
        A headerless generic file: its fields are named ``col1``, ``col2``, ... (1-based) and the
        field count is read from the file.
    """

    name: str
    delimiter: str
    header: bool
    columns: tuple[str, ...]
    ts_columns: tuple[str, ...]
    ts_format: str | None
    tz: str
    stamp: Stamp = "start"
    prices: Prices = "ohlc"
    interval: str | None = None
    rename: dict[str, str] = field(default_factory=dict)
    description: str = ""
    positional: bool = False  # headerless generic CSV: columns are named col1, col2, ... by position


_MINUTE_NO_HEADER = ("date_time", "open", "high", "low", "close", "volume")

LAYOUTS: dict[str, Layout] = {
    "histdata": Layout(
        name="histdata",
        delimiter=";",
        header=False,
        columns=_MINUTE_NO_HEADER,
        ts_columns=("date_time",),
        ts_format="%Y%m%d %H%M%S",
        # HistData documents "EST without DST", but its files follow New York local time: in winter
        # and in summer alike every week opens Sunday 17:00 and closes Friday 16:59 in the file's
        # clock, and NFP/CPI spikes sit at 08:30 local. Read as fixed UTC-5, summer Fridays would fall
        # after the 17:00 New York FX close. DST switches fall on Sunday 02:00, when FX is closed.
        tz="America/New_York",
        interval="1m",
        description="HistData ASCII M1: YYYYMMDD HHMMSS;O;H;L;C;V, New York local time, bar start",
    ),
    "ninjatrader": Layout(
        name="ninjatrader",
        delimiter=";",
        header=False,
        columns=_MINUTE_NO_HEADER,
        ts_columns=("date_time",),
        ts_format="%Y%m%d %H%M%S",
        tz="UTC",
        stamp="end",
        interval="1m",
        description="NinjaTrader minute export: YYYYMMDD HHMMSS;O;H;L;C;V, UTC, bar END",
    ),
    "binance": Layout(
        name="binance",
        delimiter=",",
        header=True,
        columns=("time_utc", "open", "high", "low", "close", "volume"),
        ts_columns=("time_utc",),
        ts_format="%Y-%m-%d %H:%M:%S",
        tz="UTC",
        description="Binance-style candles: time_utc,open,high,low,close,volume, UTC, bar start",
    ),
    "ftx": Layout(
        name="ftx",
        delimiter=",",
        header=True,
        columns=("timestamp", "open", "high", "low", "close", "volume"),
        ts_columns=("timestamp",),
        ts_format=None,
        tz="UTC",
        description="FTX/Nautilus candles: timestamp,open,high,low,close,volume, UTC, bar start",
    ),
    "lean_fx": Layout(
        name="lean_fx",
        delimiter=",",
        header=True,
        columns=(
            "time_utc",
            "bid_open",
            "bid_high",
            "bid_low",
            "bid_close",
            "ask_open",
            "ask_high",
            "ask_low",
            "ask_close",
        ),
        ts_columns=("time_utc",),
        ts_format="%Y-%m-%d %H:%M",
        tz="UTC",
        prices="bidask_mid",
        description="QuantConnect Lean quote bars (bid/ask OHLC, UTC, bar start) -> mid",
    ),
    "lean_equity": Layout(
        name="lean_equity",
        delimiter=",",
        header=True,
        columns=("time_et_barstart", "open", "high", "low", "close", "volume"),
        ts_columns=("time_et_barstart",),
        ts_format="%Y-%m-%d %H:%M",
        tz="America/New_York",
        description=(
            "QuantConnect Lean equity trade bars, US/Eastern bar start; the 09:00 hourly bar covers "
            "09:30-10:00 and is stamped 09:30"
        ),
    ),
    "lean_daily": Layout(
        name="lean_daily",
        delimiter=",",
        header=True,
        columns=("date", "open", "high", "low", "close", "volume"),
        ts_columns=("date",),
        ts_format="%Y-%m-%d",
        tz="UTC",
        interval="1d",
        description="Lean-style daily bars: date,open,high,low,close,volume; stamped 00:00 UTC of the date",
    ),
    "yahoo_csv": Layout(
        name="yahoo_csv",
        delimiter=",",
        header=True,
        columns=("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"),
        ts_columns=("Date",),
        ts_format="%m/%d/%Y",
        tz="UTC",
        interval="1d",
        rename={"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"},
        description="Yahoo daily download (as shipped with arch): Date (M/D/YYYY),Open,High,Low,Close,...",
    ),
    "candles_daily": Layout(
        name="candles_daily",
        delimiter=",",
        header=True,
        columns=("timestamp", "open", "close", "volume", "unix_timestamp", "high", "low"),
        ts_columns=("timestamp",),
        ts_format="%Y-%m-%d %H:%M:%S",
        tz="UTC",
        interval="1d",
        description="Daily candles with columns timestamp,open,close,volume,unix_timestamp,high,low",
    ),
}


def generic_layout(
    *,
    ts_column: str,
    tz: str,
    delimiter: str = ",",
    column_map: dict[str, str] | None = None,
    ts_format: str | None = None,
    stamp: Stamp = "start",
    interval: str | None = None,
    header: bool = True,
) -> Layout:
    """A layout for any CSV, given which column is which (by header name, or by position).

    Parameters
    ----------
    ts_column : str
        Header of the timestamp column.
    tz : str
        IANA time zone of naive stamps (stamps carrying an offset are converted from it).
    delimiter : str
        Field separator.
    column_map : dict[str, str] | None
        Canonical name → header name for open, high, low, close and (optional) volume; omitted
        names are expected verbatim.
    ts_format : str | None
        ``strptime`` format, or ``None`` for ISO-8601.
    stamp : {"start", "end"}
        Bar-start or bar-end stamps.
    interval : str | None
        Fixed interval, or ``None`` to infer.
    header : bool
        ``False`` for a file without a header line: ``ts_column`` and every ``column_map`` value are
        then 1-based column positions (``"1"``, ``"2"``, ...), and open/high/low/close must all be given.
    """
    if not header:
        ts_column, column_map = _positional(ts_column, column_map)
    mapping = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}
    mapping.update(column_map or {})
    unknown = set(mapping) - {"open", "high", "low", "close", "volume"}
    if unknown:
        raise ConfigError(f"column_map keys must be open/high/low/close/volume; got {sorted(unknown)}")
    if not header and "volume" not in (column_map or {}):
        del mapping["volume"]
    required = (ts_column, mapping["open"], mapping["high"], mapping["low"], mapping["close"])
    return Layout(
        name="generic",
        delimiter=delimiter,
        header=True,
        columns=required,
        ts_columns=(ts_column,),
        ts_format=ts_format,
        tz=tz,
        stamp=stamp,
        interval=interval,
        rename={v: k for k, v in mapping.items()},
        description="generic CSV with a column mapping" + ("" if header else " by position"),
        positional=not header,
    )


def _positional(ts_column: str, column_map: dict[str, str] | None) -> tuple[str, dict[str, str]]:
    """1-based positions -> ``colN`` names; every price column must be given."""
    given = {
        "timestamp (--ts-column)": ts_column,
        **{f"{k} (--column {k}=N)": v for k, v in (column_map or {}).items()},
    }
    for what, value in given.items():
        if not str(value).isdigit() or int(value) < 1:
            raise ConfigError(f"--no-header: {what} must be a column position 1, 2, ...; got {value!r}")
    missing = sorted({"open", "high", "low", "close"} - set(column_map or {}))
    if missing:
        raise ConfigError(
            f"--no-header: give the position of {', '.join(missing)} too, e.g. --column open=2 "
            "--column high=3"
        )
    return f"col{int(ts_column)}", {k: f"col{int(v)}" for k, v in (column_map or {}).items()}


_GENERIC_KEYS = {"ts_column", "tz", "delimiter", "column_map", "ts_format", "stamp", "interval", "header"}


def generic_from_params(params: dict[str, object] | None) -> Layout:
    """:func:`generic_layout` from plain parameters (CLI, deployments), with clear errors.

    Parameters
    ----------
    params : dict | None
        ``ts_column`` and ``tz`` (required), and optionally ``column_map``, ``ts_format``, ``stamp``,
        ``delimiter``, ``interval``, ``header`` (``False``: columns by 1-based position).
    """
    params = dict(params or {})
    unknown = sorted(set(params) - _GENERIC_KEYS)
    if unknown:
        raise ConfigError(f"generic format: unknown parameter(s) {unknown}; expected {sorted(_GENERIC_KEYS)}")
    for key in ("ts_column", "tz"):
        if not params.get(key):
            raise ConfigError(f"generic format needs {key!r} (CLI: --ts-column / --tz)")
    try:
        ZoneInfo(str(params["tz"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"generic format: tz {params['tz']!r} is not an IANA time zone (e.g. UTC, America/New_York)"
        ) from None
    if params.get("stamp", "start") not in ("start", "end"):
        raise ConfigError(f"generic format: stamp must be 'start' or 'end', got {params['stamp']!r}")
    return generic_layout(**params)  # type: ignore[arg-type]


_HEADER_SIGNATURES: list[tuple[str, tuple[str, ...]]] = [
    ("lean_fx", LAYOUTS["lean_fx"].columns),
    ("lean_equity", LAYOUTS["lean_equity"].columns),
    ("binance", LAYOUTS["binance"].columns),
    ("candles_daily", LAYOUTS["candles_daily"].columns),
    ("ftx", LAYOUTS["ftx"].columns),
    ("yahoo_csv", ("Date", "Open", "High", "Low", "Close")),
    ("lean_daily", LAYOUTS["lean_daily"].columns),
    ("lean_daily_utc", ("date_utc", "open", "high", "low", "close")),
]
_NO_HEADER_MINUTE = re.compile(r"^\d{8} \d{6};[^;]*;[^;]*;[^;]*;[^;]*;[^;]*$")


def detect_layout(path: Path, first_lines: list[str]) -> Layout:
    """Pick a layout from the file name and its first lines, or say why none fits.

    HistData and NinjaTrader share one text layout; the file name (``DAT_ASCII_``) or volume
    (HistData's is always 0) tells them apart.
    """
    lines = [ln for ln in first_lines if ln.strip()]
    if not lines:
        raise DataError("file is empty", location=str(path))
    head = lines[0].lstrip("\ufeff").strip()
    if _NO_HEADER_MINUTE.match(head):
        if path.name.upper().startswith("DAT_ASCII_"):
            return LAYOUTS["histdata"]
        volumes = [ln.rsplit(";", 1)[-1].strip() for ln in lines[:200] if ln.count(";") == 5]
        if volumes and all(v in {"0", "0.0"} for v in volumes):
            return LAYOUTS["histdata"]
        return LAYOUTS["ninjatrader"]
    header = tuple(h.strip() for h in head.split(","))
    for name, signature in _HEADER_SIGNATURES:
        if header[: len(signature)] == signature or set(signature) <= set(header):
            return lean_daily_utc() if name == "lean_daily_utc" else LAYOUTS[name]
    raise DataError(
        f"cannot recognise the format from the first line {head[:120]!r}. Known formats: "
        f"{', '.join(sorted(LAYOUTS))}; pass --format, or use the generic reader with a column "
        "mapping (--ts-column, --tz)",
        location=str(path),
    )


def lean_daily_utc() -> Layout:
    """``lean_daily`` for exports whose date column is called ``date_utc``."""
    base = LAYOUTS["lean_daily"]
    return replace(base, columns=("date_utc", *base.columns[1:]), ts_columns=("date_utc",))


def header_variant(layout: Layout, header: list[str]) -> Layout:
    """The layout adjusted to a known spelling of its header (``lean_daily`` with ``date_utc``)."""
    if layout.name == "lean_daily" and "date" not in header and "date_utc" in header:
        return lean_daily_utc()
    return layout


def with_interval(layout: Layout, interval: str | None) -> Layout:
    """Return ``layout`` with its interval fixed to ``interval`` (when given)."""
    return replace(layout, interval=interval) if interval else layout
