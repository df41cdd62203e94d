"""Yahoo Finance bars through ``yfinance``, normalized to the warehouse bar schema.

Pure functions with injectable I/O: :func:`fetch_yfinance` plans request windows, calls a *downloader*
(by default :func:`yfinance_downloader`, which talks to Yahoo), normalizes what comes back, quarantines
unusable rows and hashes the result. Nothing here imports Prefect; the ingest task wraps it.

Facts about the installed yfinance 1.7.0 this module relies on (read in its source, site-packages/yfinance):

* **Horizons.** ``scrapers/history.py`` (price repair, ``_reconstruct_intervals_batch``) encodes Yahoo's
  look-back limits as ``min_lookbacks``: 1m -> 30 days; 2m/5m/15m/30m -> 60 days; 1h -> 730 days;
  1d and longer -> none. Its ``period="max"`` branch requests at most 8 days of 1m data
  (``start = end - 691200``), 60 days of 2m-90m and 730 days of 1h/60m. Yahoo rejects a 1m request
  spanning more than 8 days ("Only 8 days worth of 1m granularity data are allowed to be fetched per
  request"); we use 7-day windows, as DESIGN.md says, to stay clear of that edge.
* **Bar start.** ``utils.parse_quotes`` builds the index straight from Yahoo's ``timestamp`` array
  (``pd.to_datetime(timestamps, unit="s")``) with no shift, and
  ``utils.fix_Yahoo_returning_prepost_unrequested`` keeps a bar when ``index < session end`` and
  ``index + interval > session start``: the stamp is the bar's start (the 09:30 bar covers 09:30-09:31).
  So intraday bars need no shift; we only convert to UTC.
* **Time zones.** Intraday indexes are tz-aware in the exchange's zone (``America/New_York`` for SPY,
  ``UTC`` for BTC-USD; ``utils.set_df_tz``) and named ``Datetime``. Daily indexes are the exchange-local
  date: ``Ticker.history`` returns exchange-local midnight (tz-aware), ``yf.download`` strips the zone
  (``ignore_tz`` defaults to True for non-intraday intervals) and names the index ``Date``. We store a
  daily bar at **midnight UTC of that date** (its session date), whatever the exchange.
* **Layout.** ``yf.download`` returns MultiIndex columns; with the default ``group_by="column"`` the
  levels are named ``["Price", "Ticker"]`` (``("Close", "SPY")``), with ``group_by="ticker"`` they are
  ``["Ticker", "Price"]``; ``Ticker.history`` returns flat columns. All three are accepted.
* **Errors.** ``yf.download`` never raises: ``multi._download_one`` catches every exception, stores its
  repr in a per-call dict that is only logged, and returns an empty frame, so a rate limit looks exactly
  like a bad symbol. ``Ticker.history`` also swallows network errors unless
  ``yf.config.debug.hide_exceptions`` is False (``raise_errors=True`` is deprecated and does not cover the
  time-zone look-up). The default downloader therefore calls ``Ticker.history`` with that flag off, under
  a process-wide lock, so that rate limits and network faults surface as :class:`TransientError`.
* **NaN rows.** Yahoo emits rows with null prices (minutes without trades, halts); yfinance drops them
  unless ``keepna=True``. We ask for them and put them in the quarantine with a reason instead of
  losing them silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from core.errors import ConfigError, DataError, TransientError, VolriskError
from core.schema import QUARANTINE_SCHEMA, UTC_TS, conform_bars, empty_bars, empty_quarantine
from core.symbols import validate_symbol

__all__ = [
    "SOURCE",
    "YF_LIMITS",
    "Downloader",
    "FetchResult",
    "IntervalLimit",
    "fetch_yfinance",
    "is_transient_error",
    "normalize_yfinance_frame",
    "plan_windows",
    "yfinance_downloader",
]

SOURCE = "yfinance"
logger = logging.getLogger(__name__)

#: ``downloader(symbol, start, end, interval) -> frame``: one request for ``[start, end)`` (UTC datetimes),
#: returning a frame shaped like ``yf.download(..., multi_level_index=True)`` or ``Ticker.history``.
#: Raise for failures (a transient one as :class:`TransientError`, a network error or an HTTP 429/5xx);
#: return an empty frame when Yahoo has no data (optionally with ``frame.attrs["note"]`` saying why).
Downloader = Callable[[str, datetime, datetime, str], pd.DataFrame]


@dataclass(frozen=True)
class IntervalLimit:
    """Yahoo's limits for one interval.

    Attributes
    ----------
    lookback : timedelta | None
        How far back Yahoo serves this interval (``None``: no limit).
    max_span : timedelta | None
        The longest range one request may cover (``None``: no limit).
    """

    lookback: timedelta | None
    max_span: timedelta | None


#: Per-interval limits (see the module docstring for where in yfinance each number comes from).
YF_LIMITS: dict[str, IntervalLimit] = {
    "1m": IntervalLimit(lookback=timedelta(days=30), max_span=timedelta(days=7)),
    "5m": IntervalLimit(lookback=timedelta(days=60), max_span=timedelta(days=60)),
    "15m": IntervalLimit(lookback=timedelta(days=60), max_span=timedelta(days=60)),
    "30m": IntervalLimit(lookback=timedelta(days=60), max_span=timedelta(days=60)),
    "1h": IntervalLimit(lookback=timedelta(days=730), max_span=timedelta(days=730)),
    "1d": IntervalLimit(lookback=None, max_span=None),
}

_PRICE_COLUMNS = ("Open", "High", "Low", "Close")
_VALUE_COLUMNS = (*_PRICE_COLUMNS, "Volume")
_YF_LOCK = threading.Lock()


@dataclass(frozen=True)
class FetchResult:
    """What one :func:`fetch_yfinance` call produced.

    Attributes
    ----------
    bars : pl.DataFrame
        Usable bars in :data:`core.schema.BAR_SCHEMA` (``source="yfinance"``), sorted by ``ts``,
        unique per ``ts``, stamped at bar start in UTC.
    quarantine : pl.DataFrame
        Rows set aside, :data:`core.schema.QUARANTINE_SCHEMA` (location, reason, raw JSON).
    windows : list[tuple[datetime, datetime]]
        The ``[start, end)`` request windows, in UTC, contiguous and in order.
    checksum : str
        sha256 (hex) of the normalized response (symbol, interval and every row, quarantined ones too):
        equal responses give equal checksums, so it can key a cache.
    notes : list[str]
        Human-readable remarks: empty windows, rows outside the window, a clipped end.
    """

    bars: pl.DataFrame
    quarantine: pl.DataFrame
    windows: list[tuple[datetime, datetime]]
    checksum: str
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# planning


def plan_windows(
    start: datetime | date,
    end: datetime | date,
    interval: str,
    *,
    now: datetime | None = None,
) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into the request windows Yahoo accepts for ``interval``.

    Parameters
    ----------
    start, end : datetime or date
        Half-open range. A ``date`` means midnight UTC; a naive ``datetime`` is read as UTC. An ``end``
        after ``now`` is clipped to ``now``. For ``1d`` both ends are widened to whole UTC days.
    interval : str
        ``1m``, ``5m``, ``15m``, ``30m``, ``1h`` or ``1d``.
    now : datetime, optional
        The current time (injectable for tests); defaults to ``datetime.now(UTC)``.

    Returns
    -------
    list[tuple[datetime, datetime]]
        Contiguous, non-overlapping UTC windows, each no longer than the interval's ``max_span``.

    Raises
    ------
    ConfigError
        If the interval is unsupported, the range is empty, or ``start`` is older than Yahoo's horizon
        for the interval (30 days for 1m, 60 days for 5m/15m/30m, 730 days for 1h).
    """
    limit = _limit(interval)
    now_utc = _to_utc(now, "now") if now is not None else datetime.now(UTC)
    lo, hi = _to_utc(start, "start"), min(_to_utc(end, "end"), now_utc)
    if interval == "1d":
        lo = _floor_day(lo)
        hi = _ceil_day(hi)
    if hi <= lo:
        raise ConfigError(
            f"empty range: start={_iso(lo)} must be before end={_iso(_to_utc(end, 'end'))} "
            f"and before now={_iso(now_utc)}"
        )
    if limit.lookback is not None and lo < now_utc - limit.lookback:
        days = limit.lookback.days
        raise ConfigError(
            f"start={_iso(lo)} is older than Yahoo's {days}-day limit for {interval} bars "
            f"(earliest allowed start is {_iso(now_utc - limit.lookback)} for now={_iso(now_utc)}); "
            "use a coarser interval (5m/15m/30m: 60 days, 1h: 730 days, 1d: no limit) or a file source"
        )
    if limit.max_span is None:
        return [(lo, hi)]
    windows: list[tuple[datetime, datetime]] = []
    cursor = lo
    while cursor < hi:
        stop = min(cursor + limit.max_span, hi)
        windows.append((cursor, stop))
        cursor = stop
    return windows


# --------------------------------------------------------------------------------------------------
# normalization


def normalize_yfinance_frame(raw: pd.DataFrame, symbol: str, interval: str) -> pl.DataFrame:
    """Turn one yfinance frame into bar-schema rows, keeping rows with NaN (the caller quarantines them).

    Parameters
    ----------
    raw : pd.DataFrame
        As returned by ``yf.download`` (MultiIndex columns, levels ``Price``/``Ticker`` in either
        order) or by ``Ticker.history`` (flat columns). ``Adj Close`` and action columns are ignored:
        bars are stored unadjusted.
    symbol : str
        The requested symbol; selects the ticker level of a MultiIndex (case-insensitively, as yfinance
        upper-cases tickers) and is written to ``symbol``.
    interval : str
        The requested interval, written to ``interval``; ``1d`` maps the date index to midnight UTC.

    Returns
    -------
    pl.DataFrame
        :data:`~core.schema.BAR_SCHEMA` rows in the input's order, ``ts`` in UTC at bar start.

    Raises
    ------
    DataError
        If a needed column or the ticker is missing, the index is not a DatetimeIndex, or an intraday
        index has no time zone (its instants would be ambiguous).
    """
    _limit(interval)
    if raw.shape[0] == 0:
        return empty_bars()
    where = f"yfinance {symbol} {interval}"
    frame = _select_ticker(raw, symbol, where)
    columns = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in _VALUE_COLUMNS if c.lower() not in columns]
    if missing:
        raise DataError(
            f"response lacks columns {missing}; expected {list(_VALUE_COLUMNS)}, "
            f"got {list(map(str, frame.columns))}",
            location=where,
        )
    utc = _utc_index(frame.index, interval, where)
    ts_us = np.asarray(utc.as_unit("us").asi8, dtype=np.int64)
    data: dict[str, Any] = {"ts": pl.Series("ts", ts_us, dtype=pl.Int64).cast(UTC_TS)}
    for name in _VALUE_COLUMNS:
        values = pd.to_numeric(frame[columns[name.lower()]], errors="coerce").to_numpy(dtype=np.float64)
        data[name.lower()] = pl.Series(name.lower(), values, dtype=pl.Float64, nan_to_null=False)
    out = pl.DataFrame(data).with_columns(
        symbol=pl.lit(symbol), interval=pl.lit(interval), source=pl.lit(SOURCE)
    )
    return conform_bars(out)


def _utc_index(index: pd.Index, interval: str, where: str) -> pd.DatetimeIndex:
    """The bar starts in UTC; a ``1d`` index maps each session date to midnight UTC."""
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"expected a DatetimeIndex, got {type(index).__name__}", location=where)
    if interval == "1d":
        # The exchange-local session date -> midnight UTC of that date.
        local = index.tz_localize(None) if index.tz is not None else index
        return local.normalize().tz_localize("UTC")
    if index.tz is None:
        raise DataError(
            "intraday index has no time zone, so its instants are ambiguous; expected a tz-aware "
            "DatetimeIndex (yfinance returns the exchange's zone)",
            location=where,
        )
    return index.tz_convert("UTC")


def _select_ticker(raw: pd.DataFrame, symbol: str, where: str) -> pd.DataFrame:
    columns = raw.columns
    if not isinstance(columns, pd.MultiIndex):
        return raw
    if columns.nlevels != 2:
        raise DataError(f"expected 2 column levels (Price, Ticker), got {columns.nlevels}", location=where)
    fields = {c.lower() for c in _VALUE_COLUMNS}
    price_levels = [
        lvl for lvl in range(2) if fields & {str(v).strip().lower() for v in columns.get_level_values(lvl)}
    ]
    if len(price_levels) != 1:
        raise DataError(
            f"cannot tell the price level from the ticker level in columns {list(columns)[:8]}",
            location=where,
        )
    ticker_level = 1 - price_levels[0]
    tickers = list(dict.fromkeys(str(t) for t in columns.get_level_values(ticker_level)))
    match = [t for t in tickers if t.upper() == symbol.upper()]
    if match:
        chosen = match[0]
    elif len(tickers) == 1:
        chosen = tickers[0]
    else:
        raise DataError(f"response has tickers {tickers} but not {symbol!r}", location=where)
    picked = raw.xs(chosen, axis=1, level=ticker_level)
    if not isinstance(picked, pd.DataFrame):  # pragma: no cover - xs on a column level gives a frame
        raise DataError(f"ticker {chosen!r} is not a column block of the response", location=where)
    return picked


# --------------------------------------------------------------------------------------------------
# fetching


def fetch_yfinance(
    symbol: str,
    start: datetime | date,
    end: datetime | date,
    interval: str = "1d",
    *,
    downloader: Downloader | None = None,
    now: datetime | None = None,
    attempts: int = 3,
    backoff_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """Fetch ``[start, end)`` of ``symbol`` bars from Yahoo, window by window, normalized to UTC.

    Parameters
    ----------
    symbol : str
        Yahoo symbol (``SPY``, ``BTC-USD``, ``EURUSD=X``, ``^GSPC``); validated first.
    start, end : datetime or date
        Half-open range; see :func:`plan_windows` (dates are midnight UTC, naive datetimes UTC).
    interval : str
        ``1m``, ``5m``, ``15m``, ``30m``, ``1h`` or ``1d``.
    downloader : Downloader, optional
        Performs one request; defaults to :func:`yfinance_downloader` (the network). Tests inject a fake.
    now : datetime, optional
        The current time, for the horizon check and clipping; defaults to ``datetime.now(UTC)``.
    attempts, backoff_s, sleep : int, float, callable
        Tries per window for transient failures (>= 1; Prefect tasks that retry themselves pass 1), the
        sleep before retry ``k`` (1-based: ``backoff_s * 2 ** (k - 1)`` s) and the sleep function.

    Returns
    -------
    FetchResult
        Bars, quarantined rows, the windows requested, a checksum and notes (no rows is not an error).

    Raises
    ------
    ConfigError
        Invalid symbol, interval, range or retry parameters, or a start beyond Yahoo's horizon.
    TransientError
        A window still failed transiently (network error, HTTP 429/5xx) after ``attempts`` tries.
    DataError
        The response cannot be interpreted (missing columns or ticker, naive intraday index).
    """
    validate_symbol(symbol)
    _check_retry(attempts, backoff_s)
    now_utc = _to_utc(now, "now") if now is not None else datetime.now(UTC)
    windows = plan_windows(start, end, interval, now=now_utc)
    notes = [f"end clipped to now={_iso(now_utc)}"] if _to_utc(end, "end") > now_utc else []

    def download(lo: datetime, hi: datetime) -> pd.DataFrame | None:
        get = downloader or yfinance_downloader
        return _download_with_retry(get, symbol, lo, hi, interval, attempts, backoff_s, sleep)

    rows = _fetch_rows(symbol, interval, windows, notes, download)
    bars, quarantine = _split_bad(rows, symbol, interval)
    if quarantine.height:
        notes.append(f"quarantined {quarantine.height} row(s) with missing or invalid values")
    checksum = _checksum(symbol, interval, rows)
    return FetchResult(bars=bars, quarantine=quarantine, windows=windows, checksum=checksum, notes=notes)


def _check_retry(attempts: int, backoff_s: float) -> None:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigError(f"attempts={attempts!r} must be an integer >= 1")
    if not (isinstance(backoff_s, int | float) and math.isfinite(backoff_s) and backoff_s >= 0):
        raise ConfigError(f"backoff_s={backoff_s!r} must be a finite number >= 0")


def _fetch_window(
    symbol: str,
    interval: str,
    window: tuple[datetime, datetime],
    notes: list[str],
    download: Callable[[datetime, datetime], pd.DataFrame | None],
) -> pl.DataFrame | None:
    """One window's rows inside ``[start, end)``, or None when Yahoo has none (``notes`` say why)."""
    w_start, w_end = window
    label = f"{symbol} {interval} [{_iso(w_start)}, {_iso(w_end)})"
    raw = download(w_start, w_end)
    if raw is None or raw.shape[0] == 0:
        why = raw.attrs.get("note") if raw is not None else None
        notes.append(f"no rows for {label}" + (f": {why}" if why else ""))
        return None
    part = normalize_yfinance_frame(raw, symbol, interval)
    inside = part.filter((pl.col("ts") >= w_start) & (pl.col("ts") < w_end))
    if inside.height < part.height:
        notes.append(f"dropped {part.height - inside.height} row(s) outside {label}")
    return inside


def _fetch_rows(
    symbol: str,
    interval: str,
    windows: list[tuple[datetime, datetime]],
    notes: list[str],
    download: Callable[[datetime, datetime], pd.DataFrame | None],
) -> pl.DataFrame:
    """Every window's rows, deduplicated on ``ts`` (the last wins) and sorted."""
    parts = [
        part
        for window in windows
        if (part := _fetch_window(symbol, interval, window, notes, download)) is not None
    ]
    rows = pl.concat(parts) if parts else empty_bars()
    return rows.unique(subset="ts", keep="last", maintain_order=True).sort("ts")


def _split_bad(rows: pl.DataFrame, symbol: str, interval: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bars with valid values, and the other rows as quarantine."""
    flagged = rows.with_columns(_reason=_bad_row_reason(rows))
    bars = conform_bars(flagged.filter(pl.col("_reason").is_null()))
    quarantine = _quarantine(flagged.filter(pl.col("_reason").is_not_null()), symbol, interval)
    return bars, quarantine


def _download_with_retry(
    download: Downloader,
    symbol: str,
    start: datetime,
    end: datetime,
    interval: str,
    attempts: int,
    backoff_s: float,
    sleep: Callable[[float], None],
) -> pd.DataFrame | None:
    for attempt in range(1, attempts + 1):
        try:
            return download(symbol, start, end, interval)
        except Exception as exc:
            if isinstance(exc, VolriskError) and not isinstance(exc, TransientError):
                raise
            if not is_transient_error(exc):
                raise
            where = f"yfinance {symbol} {interval} [{_iso(start)}, {_iso(end)})"
            if attempt == attempts:
                raise TransientError(f"{where}: failed after {attempts} attempt(s): {exc!r}") from exc
            delay = backoff_s * 2 ** (attempt - 1)
            logger.warning(
                "%s: transient failure (%r), retry %d/%d in %.1fs", where, exc, attempt, attempts - 1, delay
            )
            sleep(delay)
    return None  # unreachable: the loop returns or raises


_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_TRANSIENT_TYPES = frozenset(
    {
        "TransientError",
        "YFRateLimitError",
        "ConnectionError",
        "Timeout",
        "TimeoutError",
        "ReadTimeout",
        "ConnectTimeout",
        "ChunkedEncodingError",
        "RemoteDisconnected",
        "ProxyError",
        "DNSError",
        "IncompleteRead",
        "JSONDecodeError",
    }
)
_TRANSIENT_TEXT = re.compile(
    r"too many requests|rate limit|currently down|connection (reset|aborted|refused)|timed out|"
    r"temporarily unavailable|\b(429|50[0234]) (server error|client error|too many)",
    re.IGNORECASE,
)


def is_transient_error(exc: BaseException) -> bool:
    """True for failures worth retrying: network faults, time-outs, HTTP 429/5xx, Yahoo rate limits.

    Mirrors :func:`flows.orchestration.is_transient` (which imports Prefect, so it is not used here) and
    adds the yfinance and requests/curl_cffi exception names. ``JSONDecodeError`` counts as transient:
    Yahoo answers an outage with an HTML error page instead of JSON.

    Parameters
    ----------
    exc : BaseException
        The exception to classify.

    Returns
    -------
    bool
        Whether retrying may succeed.
    """
    if isinstance(exc, TransientError | ConnectionError | TimeoutError):
        return True
    if any(cls.__name__ in _TRANSIENT_TYPES for cls in type(exc).__mro__):
        return True
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int) and status in _TRANSIENT_STATUS:
        return True
    return bool(_TRANSIENT_TEXT.search(str(exc)))


def _is_missing_data(exc: BaseException) -> bool:
    """True when Yahoo says it has no data (bad or delisted symbol, nothing in range): not an error."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"YFPricesMissingError", "YFTzMissingError", "YFTickerMissingError"}:
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status == 404


def yfinance_downloader(
    symbol: str, start: datetime, end: datetime, interval: str, *, timeout: float = 10.0
) -> pd.DataFrame:
    """Request one window from Yahoo through ``yfinance`` (the network call; the default downloader).

    Calls ``yf.Ticker(symbol).history(start, end, interval, auto_adjust=False, actions=False,
    prepost=False, keepna=True, repair=False)`` with ``yf.config.debug.hide_exceptions`` set to False
    (restored afterwards) under a process-wide lock, so that failures raise instead of being logged:
    ``yf.download`` cannot be used for that, because it swallows every exception (module docstring).

    Parameters
    ----------
    symbol : str
        Yahoo symbol.
    start, end : datetime
        UTC window ``[start, end)``. For ``1d`` the dates are passed, which yfinance reads as
        exchange-local midnights.
    interval : str
        Yahoo interval.
    timeout : float
        Seconds per HTTP request.

    Returns
    -------
    pd.DataFrame
        The frame yfinance returns (flat columns, tz-aware index). When Yahoo has no data for the
        symbol or range, an empty frame whose ``attrs["note"]`` holds Yahoo's reason.

    Raises
    ------
    TransientError
        Network errors, time-outs, HTTP 429 (``YFRateLimitError``) and 5xx.
    Exception
        Anything else yfinance raises, unchanged (not retried).
    """
    import yfinance as yf

    begin: datetime | date = start.date() if interval == "1d" else start
    finish: datetime | date = _ceil_day(end).date() if interval == "1d" else end
    with _YF_LOCK:
        debug = yf.config.debug
        previous = debug.hide_exceptions
        debug.hide_exceptions = False
        try:
            frame = _history(yf.Ticker(symbol), begin, finish, interval, timeout)
        except Exception as exc:
            if _is_missing_data(exc):
                empty = pd.DataFrame()
                empty.attrs["note"] = str(exc)
                return empty
            if is_transient_error(exc):
                raise TransientError(f"yfinance {symbol} {interval}: {exc!r}") from exc
            raise
        finally:
            debug.hide_exceptions = previous
    return frame


def _history(
    ticker: Any, begin: datetime | date, finish: datetime | date, interval: str, timeout: float
) -> Any:
    """``Ticker.history`` for one window: unadjusted, no actions, regular hours, NaN rows kept."""
    return ticker.history(
        start=begin,
        end=finish,
        interval=interval,
        auto_adjust=False,
        actions=False,
        prepost=False,
        keepna=True,
        repair=False,
        timeout=timeout,
    )


# --------------------------------------------------------------------------------------------------
# helpers


def _limit(interval: str) -> IntervalLimit:
    if interval not in YF_LIMITS:
        raise ConfigError(
            f"interval={interval!r} is not supported by yfinance_source; expected one of {list(YF_LIMITS)}"
        )
    return YF_LIMITS[interval]


def _to_utc(value: datetime | date, name: str) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ConfigError(f"{name}={value!r} must be a datetime or a date")


def _floor_day(dt: datetime) -> datetime:
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(dt: datetime) -> datetime:
    floor = _floor_day(dt)
    return floor if floor == dt else floor + timedelta(days=1)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _bad_row_reason(rows: pl.DataFrame) -> pl.Expr:
    """An expression giving why a row is unusable (NaN/null/inf value, non-positive price), else null."""
    cols = [c.lower() for c in _VALUE_COLUMNS]
    missing = [
        pl.when(pl.col(c).is_null() | pl.col(c).is_nan() | pl.col(c).is_infinite()).then(pl.lit(c))
        for c in cols
    ]
    nonpositive = [pl.when(pl.col(c) <= 0).then(pl.lit(c)) for c in cols[:4]]
    missing_list = pl.concat_list(missing).list.drop_nulls()
    nonpos_list = pl.concat_list(nonpositive).list.drop_nulls()
    return (
        pl.when(missing_list.list.len() > 0)
        .then(pl.lit("missing or non-finite value in ") + missing_list.list.join(", "))
        .when(nonpos_list.list.len() > 0)
        .then(pl.lit("non-positive price in ") + nonpos_list.list.join(", "))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _quarantine(rows: pl.DataFrame, symbol: str, interval: str) -> pl.DataFrame:
    if rows.height == 0:
        return empty_quarantine()
    records = []
    for row in rows.iter_rows(named=True):
        stamp = row["ts"].isoformat().replace("+00:00", "Z")
        raw = {k: row[k] for k in ("open", "high", "low", "close", "volume")}
        raw_json = json.dumps(
            {"ts": stamp, **{k: (None if v is None or not math.isfinite(v) else v) for k, v in raw.items()}},
            sort_keys=True,
        )
        records.append(
            {"location": f"yfinance {symbol} {interval} {stamp}", "reason": row["_reason"], "raw": raw_json}
        )
    return pl.DataFrame(records, schema=QUARANTINE_SCHEMA)


def _checksum(symbol: str, interval: str, rows: pl.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"source": SOURCE, "symbol": symbol, "interval": interval}).encode())
    digest.update(rows["ts"].dt.epoch("us").to_numpy().astype("<i8").tobytes())
    for col in ("open", "high", "low", "close", "volume"):
        values = rows[col].fill_null(float("nan")).to_numpy().astype("<f8")
        values = np.where(np.isnan(values), np.nan, values)  # one canonical NaN bit pattern
        digest.update(values.tobytes())
    return digest.hexdigest()
