"""Tests for the yfinance adapter (tasks/sources/yfinance_source.py) against recorded responses.

Yahoo cannot be reached from the build machines. The fixtures in tests/data/yfinance are real market
data laid out exactly as yfinance 1.7 returns it (see the README there); :func:`load_recorded` rebuilds
the pandas frame. ``TestRealYfinanceOffline`` proves that claim by running the installed yfinance on a
Yahoo chart payload built from the same rows, with its HTTP layer replaced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from recorded_yahoo import COLUMNS, MANIFEST, load_recorded, recorded_downloader, utc  # noqa: E402
from repo_paths import REPO

from core.errors import ConfigError, DataError, TransientError
from core.schema import BAR_SCHEMA, QUARANTINE_SCHEMA
from tasks.sources.yfinance_source import (
    FetchResult,
    fetch_yfinance,
    is_transient_error,
    normalize_yfinance_frame,
    plan_windows,
    yfinance_downloader,
)


def fetch_recorded(name: str, **kwargs: Any) -> FetchResult:
    meta = MANIFEST[name]
    return fetch_yfinance(
        meta["ticker"],
        utc(meta["request"]["start"]),
        utc(meta["request"]["end"]),
        meta["interval"],
        downloader=kwargs.pop("downloader", recorded_downloader(name)),
        now=utc(meta["now"]),
        **kwargs,
    )


# ------------------------------------------------------------------------------------------------
# window planning and horizons

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)


def test_20_day_1m_request_makes_three_contiguous_calls_of_at_most_7_days() -> None:
    start, end = NOW - timedelta(days=25), NOW - timedelta(days=5)
    calls: list[tuple[datetime, datetime]] = []

    def fake(symbol: str, s: datetime, e: datetime, interval: str) -> pd.DataFrame:
        calls.append((s, e))
        return pd.DataFrame()

    result = fetch_yfinance("BTC-USD", start, end, "1m", downloader=fake, now=NOW)
    assert len(calls) == 3
    assert calls == result.windows == plan_windows(start, end, "1m", now=NOW)
    assert calls[0][0] == start and calls[-1][1] == end
    for (_, e), (s2, _) in zip(calls, calls[1:], strict=False):
        assert e == s2  # contiguous, no gap and no overlap
    assert all(timedelta(0) < e - s <= timedelta(days=7) for s, e in calls)
    assert result.bars.height == 0 and len(result.notes) == 3  # three empty windows, each noted


def test_1m_start_older_than_30_days_is_refused_naming_the_limit() -> None:
    with pytest.raises(ConfigError, match=r"30-day limit for 1m") as info:
        fetch_yfinance("SPY", NOW - timedelta(days=31), NOW - timedelta(days=20), "1m", now=NOW)
    message = str(info.value)
    assert "start=" in message and "5m/15m/30m: 60 days" in message
    # Just inside the horizon is accepted (no network: the planner alone).
    assert plan_windows(NOW - timedelta(days=29, hours=23), NOW, "1m", now=NOW)


@pytest.mark.parametrize(
    ("interval", "days", "span"),
    [("5m", 60, 60), ("15m", 60, 60), ("30m", 60, 60), ("1h", 730, 730)],
)
def test_horizons_of_other_intervals(interval: str, days: int, span: int) -> None:
    with pytest.raises(ConfigError, match=rf"{days}-day limit for {interval}"):
        plan_windows(NOW - timedelta(days=days + 1), NOW, interval, now=NOW)
    windows = plan_windows(NOW - timedelta(days=days - 1), NOW, interval, now=NOW)
    assert all(e - s <= timedelta(days=span) for s, e in windows)


def test_daily_has_no_horizon_and_whole_days() -> None:
    windows = plan_windows(date(1995, 1, 1), datetime(2025, 3, 3, 15, 0, tzinfo=UTC), "1d", now=NOW)
    assert windows == [(datetime(1995, 1, 1, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC))]


def test_end_after_now_is_clipped_and_bad_ranges_refused() -> None:
    windows = plan_windows(NOW - timedelta(days=2), NOW + timedelta(days=3), "1m", now=NOW)
    assert windows == [(NOW - timedelta(days=2), NOW)]
    with pytest.raises(ConfigError, match="empty range"):
        plan_windows(NOW, NOW - timedelta(days=1), "1m", now=NOW)
    with pytest.raises(ConfigError, match="interval='2h'"):
        plan_windows(NOW - timedelta(days=1), NOW, "2h", now=NOW)
    with pytest.raises(ConfigError, match="invalid symbol"):
        fetch_yfinance(
            "SPY;DROP", NOW - timedelta(days=1), NOW, "1m", now=NOW, downloader=lambda *a: pd.DataFrame()
        )


# ------------------------------------------------------------------------------------------------
# normalization of recorded responses


def test_recorded_spy_1m_multiindex_new_york_to_utc_bar_start() -> None:
    result = fetch_recorded("spy_1m")
    bars = result.bars
    assert dict(bars.schema) == BAR_SCHEMA
    assert bars.height == 240 - 2  # two null minutes are quarantined
    assert (
        set(bars["source"]) == {"yfinance"}
        and set(bars["symbol"]) == {"SPY"}
        and set(bars["interval"]) == {"1m"}
    )
    days = (
        bars.group_by(pl.col("ts").dt.date())
        .agg(first=pl.col("ts").min(), last=pl.col("ts").max())
        .sort("ts")
    )
    # 09:30 New York is 14:30 UTC before the DST change (Fri 2025-03-07) and 13:30 UTC after (Mon 03-10).
    assert days["first"].to_list() == [
        datetime(2025, 3, 7, 14, 30, tzinfo=UTC),
        datetime(2025, 3, 10, 13, 30, tzinfo=UTC),
    ]
    assert days["last"].to_list() == [
        datetime(2025, 3, 7, 16, 29, tzinfo=UTC),
        datetime(2025, 3, 10, 15, 29, tzinfo=UTC),
    ]
    # Values come from the Open/High/Low/Close/Volume columns, not Adj Close, and not shifted.
    first = bars.row(0, named=True)
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        132.39,
        132.48,
        132.39,
        132.45,
        1381287.0,
    )
    assert bars["ts"].is_sorted() and bars["ts"].is_unique().all()
    assert len(result.windows) == 1  # 4 days fits one 7-day window


def test_recorded_btc_1h_utc_index() -> None:
    result = fetch_recorded("btc-usd_1h")
    bars = result.bars
    assert bars.height == 48 and result.quarantine.height == 0
    assert bars["ts"][0] == datetime(2025, 3, 6, tzinfo=UTC)
    assert bars["ts"][-1] == datetime(2025, 3, 7, 23, tzinfo=UTC)
    assert bars["open"][1] == 62711.08 and bars["close"][0] == 62711.08


def test_recorded_daily_date_index_is_midnight_utc() -> None:
    result = fetch_recorded("spy_1d")
    bars = result.bars
    assert bars.height == 23
    assert bars["ts"][0] == datetime(2025, 2, 3, tzinfo=UTC)
    assert (bars["ts"].dt.hour() == 0).all() and (bars["ts"].dt.minute() == 0).all()
    assert datetime(2025, 2, 17, tzinfo=UTC) not in bars["ts"].to_list()  # Presidents' Day


def test_other_layouts_give_the_same_bars() -> None:
    raw = load_recorded("spy_1m")
    reference = normalize_yfinance_frame(raw, "SPY", "1m")
    by_ticker = raw.swaplevel(0, 1, axis=1)  # group_by="ticker": ("SPY", "Close"), names Ticker, Price
    by_ticker.columns = by_ticker.columns.set_names(["Ticker", "Price"])
    assert normalize_yfinance_frame(by_ticker, "SPY", "1m").equals(reference)
    flat = raw.droplevel("Ticker", axis=1)  # Ticker.history / multi_level_index=False
    assert normalize_yfinance_frame(flat, "SPY", "1m").equals(reference)
    as_utc = raw.tz_convert("UTC")  # same instants, another zone
    assert normalize_yfinance_frame(as_utc, "SPY", "1m").equals(reference)
    lower = raw.copy()
    lower.columns = pd.MultiIndex.from_product([COLUMNS, ["spy"]], names=["Price", "Ticker"])
    assert normalize_yfinance_frame(lower, "SPY", "1m").equals(reference)


def test_daily_from_ticker_history_tz_aware_local_midnight() -> None:
    raw = load_recorded("spy_1d").droplevel("Ticker", axis=1)
    aware = raw.copy()
    aware.index = pd.DatetimeIndex(raw.index).tz_localize("America/New_York")  # Ticker.history's daily index
    assert normalize_yfinance_frame(aware, "SPY", "1d").equals(normalize_yfinance_frame(raw, "SPY", "1d"))
    tokyo = raw.copy()
    tokyo.index = pd.DatetimeIndex(raw.index).tz_localize(
        "Asia/Tokyo"
    )  # the session date, not the UTC instant
    assert normalize_yfinance_frame(tokyo, "SPY", "1d")["ts"][0] == datetime(2025, 2, 3, tzinfo=UTC)


def test_nan_rows_are_quarantined_with_reason() -> None:
    result = fetch_recorded("spy_1m")
    q = result.quarantine
    assert dict(q.schema) == QUARANTINE_SCHEMA
    assert q.height == 2
    assert q["location"].to_list() == [
        "yfinance SPY 1m 2025-03-07T15:15:00Z",
        "yfinance SPY 1m 2025-03-10T15:02:00Z",
    ]
    assert all(r.startswith("missing or non-finite value in open, high, low, close") for r in q["reason"])
    raw = json.loads(q["raw"][0])
    assert raw["ts"] == "2025-03-07T15:15:00Z" and raw["close"] is None and raw["volume"] == 0
    assert any("quarantined 2" in n for n in result.notes)
    assert datetime(2025, 3, 7, 15, 15, tzinfo=UTC) not in result.bars["ts"].to_list()


def test_non_positive_price_is_quarantined() -> None:
    raw = load_recorded("btc-usd_1h")
    raw.loc[raw.index[5], ("Low", "BTC-USD")] = 0.0
    result = fetch_recorded("btc-usd_1h", downloader=lambda *a: raw)
    assert result.bars.height == 47
    assert result.quarantine["reason"].to_list() == ["non-positive price in low"]


def test_rows_outside_the_window_and_duplicates_are_dropped() -> None:
    raw = load_recorded("btc-usd_1h")
    result = fetch_yfinance(
        "BTC-USD",
        datetime(2025, 3, 6, 12, tzinfo=UTC),
        datetime(2025, 3, 7, tzinfo=UTC),
        "1h",
        downloader=lambda *a: pd.concat([raw, raw.iloc[[20]]]),  # Yahoo-style extra rows and a repeat
        now=NOW,
    )
    assert result.bars.height == 12
    assert result.bars["ts"].is_unique().all()
    assert any("outside" in n for n in result.notes)


def test_checksum_is_content_based() -> None:
    a = fetch_recorded("spy_1m")
    b = fetch_recorded("spy_1m")
    assert a.checksum == b.checksum and len(a.checksum) == 64
    changed = load_recorded("spy_1m")
    changed.loc[changed.index[3], ("Close", "SPY")] = float(changed[("Close", "SPY")].iloc[3]) + 0.01
    c = fetch_recorded("spy_1m", downloader=lambda *a: changed)
    assert c.checksum != a.checksum
    btc = fetch_recorded("btc-usd_1h")
    assert btc.checksum != a.checksum


def test_naive_intraday_index_and_missing_columns_are_data_errors() -> None:
    raw = load_recorded("spy_1m")
    naive = raw.tz_localize(None)
    with pytest.raises(DataError, match="no time zone"):
        normalize_yfinance_frame(naive, "SPY", "1m")
    with pytest.raises(DataError, match=r"lacks columns \['Volume'\]"):
        normalize_yfinance_frame(raw.drop(columns="Volume", level="Price"), "SPY", "1m")
    two = pd.concat([raw, raw.rename(columns={"SPY": "QQQ"}, level="Ticker")], axis=1)
    with pytest.raises(DataError, match="not 'IWM'"):
        normalize_yfinance_frame(two, "IWM", "1m")
    assert normalize_yfinance_frame(two, "QQQ", "1m").height == 240


# ------------------------------------------------------------------------------------------------
# retries


class Flaky:
    """Fails ``failures`` times with ``error``, then serves the recorded frame."""

    def __init__(self, name: str, failures: int, error: Callable[[], BaseException]) -> None:
        self.inner = recorded_downloader(name)
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, symbol: str, start: datetime, end: datetime, interval: str) -> pd.DataFrame:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        frame: pd.DataFrame = self.inner(symbol, start, end, interval)
        return frame


class HTTPStatusError(Exception):
    """Like ``requests.HTTPError``: carries ``response.status_code``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"{status} error")
        self.response = type("Response", (), {"status_code": status})()


@pytest.mark.parametrize(
    "error",
    [
        lambda: TransientError("rate limited"),
        lambda: ConnectionError("connection reset by peer"),
        lambda: TimeoutError("read timed out"),
        lambda: HTTPStatusError(429),
        lambda: HTTPStatusError(503),
    ],
)
def test_transient_errors_are_retried_then_succeed(error: Callable[[], BaseException]) -> None:
    flaky = Flaky("btc-usd_1h", failures=2, error=error)
    sleeps: list[float] = []
    result = fetch_recorded("btc-usd_1h", downloader=flaky, sleep=sleeps.append, backoff_s=0.5)
    assert flaky.calls == 3
    assert sleeps == [0.5, 1.0]
    assert result.bars.height == 48


def test_transient_errors_exhaust_attempts_then_raise_transient_error() -> None:
    flaky = Flaky("btc-usd_1h", failures=10, error=lambda: ConnectionError("connection reset"))
    sleeps: list[float] = []
    with pytest.raises(TransientError, match="after 3 attempt") as info:
        fetch_recorded("btc-usd_1h", downloader=flaky, sleep=sleeps.append)
    assert flaky.calls == 3 and sleeps == [2.0, 4.0]
    assert isinstance(info.value.__cause__, ConnectionError)
    orchestration = pytest.importorskip("flows.orchestration")  # Prefect's retry_condition_fn agrees
    assert orchestration.is_transient(info.value)


def test_attempts_one_leaves_retrying_to_prefect() -> None:
    flaky = Flaky("btc-usd_1h", failures=1, error=lambda: ConnectionError("reset"))
    with pytest.raises(TransientError):
        fetch_recorded("btc-usd_1h", downloader=flaky, attempts=1, sleep=lambda s: None)
    assert flaky.calls == 1


def test_bad_symbol_empty_response_is_not_retried() -> None:
    calls: list[tuple[datetime, datetime]] = []
    sleeps: list[float] = []
    result = fetch_recorded(
        "zzzz_1d_empty", downloader=recorded_downloader("zzzz_1d_empty", calls), sleep=sleeps.append
    )
    assert len(calls) == 1 and sleeps == []
    assert result.bars.height == 0 and dict(result.bars.schema) == BAR_SCHEMA
    assert result.quarantine.height == 0
    assert len(result.notes) == 1 and result.notes[0].startswith("no rows for ZZZZ 1d")


def test_non_transient_error_is_raised_at_once() -> None:
    flaky = Flaky("btc-usd_1h", failures=5, error=lambda: ValueError("unexpected payload"))
    with pytest.raises(ValueError, match="unexpected payload"):
        fetch_recorded("btc-usd_1h", downloader=flaky, sleep=lambda s: None)
    assert flaky.calls == 1
    data_error = Flaky("btc-usd_1h", failures=5, error=lambda: DataError("bad rows"))
    with pytest.raises(DataError):
        fetch_recorded("btc-usd_1h", downloader=data_error, sleep=lambda s: None)
    assert data_error.calls == 1
    assert not is_transient_error(HTTPStatusError(404)) and not is_transient_error(KeyError("chart"))


# ------------------------------------------------------------------------------------------------
# the installed yfinance, run offline on a Yahoo chart payload built from the fixtures


def chart_payload(name: str) -> dict[str, Any]:
    """The Yahoo v8 chart JSON that yields the recorded frame (nulls where the fixture has NaN)."""
    meta = MANIFEST[name]
    frame = load_recorded(name).droplevel("Ticker", axis=1)
    tz = meta["tz"] or "America/New_York"
    intraday = meta["interval"] != "1d"
    index = pd.DatetimeIndex(frame.index)
    if intraday:
        stamps = index.tz_convert("UTC")
    else:  # Yahoo stamps a daily bar at the session open
        stamps = (index + pd.Timedelta(hours=9, minutes=30)).tz_localize(tz).tz_convert("UTC")
    seconds = [int(s.timestamp()) for s in stamps]

    def column(name: str) -> list[float | None]:
        return [None if math.isnan(v) else float(v) for v in frame[name].to_numpy(dtype=float)]

    nan_rows = frame["Close"].isna().to_numpy()
    volume: list[int | None] = [None if n else int(v) for n, v in zip(nan_rows, frame["Volume"], strict=True)]
    periods = []
    for day in sorted({s.tz_convert(tz).date() for s in stamps}):
        if tz == "UTC":
            start, end = pd.Timestamp(day, tz="UTC"), pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
        else:
            start = pd.Timestamp(f"{day} 09:30", tz=tz)
            end = pd.Timestamp(f"{day} 16:00", tz=tz)
        off = int(start.utcoffset().total_seconds())  # type: ignore[union-attr]
        periods.append(
            [
                {
                    "timezone": "X",
                    "start": int(start.timestamp()),
                    "end": int(end.timestamp()),
                    "gmtoffset": off,
                }
            ]
        )
    result: dict[str, Any] = {
        "meta": {
            "currency": "USD",
            "symbol": meta["ticker"],
            "instrumentType": "CRYPTOCURRENCY" if tz == "UTC" else "ETF",
            "exchangeTimezoneName": tz,
            "timezone": "X",
            "gmtoffset": 0,
            "priceHint": 2,
            "dataGranularity": meta["interval"],
            "validRanges": ["1d", "5d", "1mo", "max"],
            "tradingPeriods": periods,
        },
        "timestamp": seconds,
        "indicators": {
            "quote": [{c.lower(): column(c) for c in ("Open", "High", "Low", "Close")} | {"volume": volume}],
        },
    }
    if not intraday:
        result["indicators"]["adjclose"] = [{"adjclose": column("Adj Close")}]
    return {"chart": {"result": [result], "error": None}}


class FakeResponse:
    def __init__(self, payload: dict[str, Any], status: int = 200) -> None:
        self.payload, self.status_code = payload, status
        self.text = json.dumps(payload)

    def json(self) -> dict[str, Any]:
        return json.loads(self.text)  # a fresh copy: yfinance mutates what it gets

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            import requests

            raise requests.HTTPError(f"{self.status_code} Client Error", response=self)


class FakeYahoo:
    """Stands in for ``yfinance.data.YfData.get``/``cache_get``: serves chart payloads by symbol."""

    def __init__(self) -> None:
        self.charts: dict[str, dict[str, Any]] = {}
        self.error: BaseException | None = None
        self.urls: list[str] = []

    def __call__(self, url: str, params: Any = None, timeout: Any = 30) -> FakeResponse:
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        symbol = url.rsplit("/", 1)[-1]
        if "/v8/finance/chart/" in url and symbol in self.charts:
            return FakeResponse(self.charts[symbol])
        missing = {
            "chart": {
                "result": None,
                "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
            }
        }
        return FakeResponse(missing, status=404)


@pytest.fixture()
def fake_yahoo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeYahoo]:
    data_mod = pytest.importorskip("yfinance.data")
    cache_mod = pytest.importorskip("yfinance.cache")
    if not hasattr(data_mod, "YfData") or not hasattr(cache_mod, "_TzCacheDummy"):
        pytest.skip("yfinance internals changed; the offline contract test needs YfData and _TzCacheDummy")
    fake = FakeYahoo()

    def get(self: Any, url: str, params: Any = None, timeout: Any = 30) -> FakeResponse:
        return fake(url, params, timeout)

    monkeypatch.setattr(data_mod.YfData, "get", get)
    monkeypatch.setattr(data_mod.YfData, "cache_get", get)
    monkeypatch.setattr(cache_mod, "get_tz_cache", lambda: cache_mod._TzCacheDummy())
    yield fake


@pytest.mark.parametrize("name", ["spy_1m", "btc-usd_1h", "spy_1d"])
def test_fixture_layout_is_what_installed_yfinance_download_returns(fake_yahoo: FakeYahoo, name: str) -> None:
    import yfinance as yf

    meta = MANIFEST[name]
    fake_yahoo.charts[meta["ticker"]] = chart_payload(name)
    got = yf.download(
        meta["ticker"],
        start=utc(meta["request"]["start"]),
        end=utc(meta["request"]["end"]),
        interval=meta["interval"],
        auto_adjust=False,
        keepna=True,
        progress=False,
        threads=False,
        multi_level_index=True,
    )
    assert got is not None
    pd.testing.assert_frame_equal(got, load_recorded(name), check_freq=False)
    assert list(got.columns.names) == ["Price", "Ticker"]


@pytest.mark.parametrize("name", ["spy_1m", "btc-usd_1h", "spy_1d"])
def test_default_downloader_end_to_end_offline(fake_yahoo: FakeYahoo, name: str) -> None:
    meta = MANIFEST[name]
    fake_yahoo.charts[meta["ticker"]] = chart_payload(name)
    live = fetch_recorded(name, downloader=yfinance_downloader)
    recorded = fetch_recorded(name)
    assert live.bars.equals(recorded.bars)
    assert live.quarantine.equals(recorded.quarantine)
    assert live.checksum == recorded.checksum


def test_default_downloader_network_error_is_transient(fake_yahoo: FakeYahoo) -> None:
    import requests

    fake_yahoo.error = requests.ConnectionError("Connection reset by peer")
    sleeps: list[float] = []
    with pytest.raises(TransientError, match="after 3 attempt"):
        fetch_recorded("spy_1m", downloader=yfinance_downloader, sleep=sleeps.append)
    assert sleeps == [2.0, 4.0]


def test_default_downloader_rate_limit_is_transient(fake_yahoo: FakeYahoo) -> None:
    from yfinance.exceptions import YFRateLimitError

    fake_yahoo.error = YFRateLimitError()
    with pytest.raises(TransientError, match="YFRateLimitError"):
        fetch_recorded("btc-usd_1h", downloader=yfinance_downloader, attempts=1)


def test_default_downloader_unknown_symbol_is_empty_not_error(fake_yahoo: FakeYahoo) -> None:
    sleeps: list[float] = []
    result = fetch_recorded("zzzz_1d_empty", downloader=yfinance_downloader, sleep=sleeps.append)
    assert result.bars.height == 0 and sleeps == []
    assert len(result.notes) == 1 and "ZZZZ" in result.notes[0]
    assert fake_yahoo.urls  # yfinance really asked the (fake) network
    import yfinance as yf

    assert yf.config.debug.hide_exceptions is True  # the temporary switch was restored


def test_fixture_values_are_real_data_not_made_up() -> None:
    """The SPY minute fixture matches the NinjaTrader source rows it was cut from (when present)."""
    source = REPO.parent / "shared" / "data" / "spy_1m_ninjatrader_2011"
    if not source.exists():
        pytest.skip("shared data folder not present")
    raw = pd.read_csv(source / "nt-spy-minute-2011-03.csv", sep=";", header=None)
    row = raw[raw[0] == "20110303 143100"].iloc[0]  # bar END 14:31 UTC = bar start 09:30 EST
    first = load_recorded("spy_1m").droplevel("Ticker", axis=1).iloc[0]
    assert np.allclose(
        [first["Open"], first["High"], first["Low"], first["Close"]], row[[1, 2, 3, 4]].astype(float)
    )
    assert first["Volume"] == row[5]
