"""Every real bar file in ../shared/data parses with the expected layout, size, interval and UTC span.

The expectations come from ../shared/data/MANIFEST.md (row counts, spans, time zones, stamping) and
from the files' own first and last lines, converted by hand:

* HistData stamps are New York local time (the files' weeks open Sunday 17:00 in winter and summer), bar
  start: ``20170102 020000`` -> 2017-01-02 07:00 UTC, ``20170601 000000`` -> 2017-06-01 04:00 UTC.
* NinjaTrader stamps are UTC at bar END: ``20110103 090100`` -> bar starting 09:00 UTC.
* Lean SPY hourly is US/Eastern bar start, and the 09:00 bar covers 09:30-10:00, so it is restamped
  09:30 ET: ``1998-01-02 09:00`` -> 14:30 UTC.
* Lean FX quote bars become mid prices, (bid + ask) / 2.

The data folder is not part of a fresh clone, so everything here skips when it is absent.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from repo_paths import REPO

from core.errors import DataError
from core.schema import BAR_SCHEMA
from tasks.sources.files import ParseResult, read_bars_file

SHARED_DATA = REPO.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real market data folder {SHARED_DATA} is absent (fresh clone)"
)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# (file, expected layout, interval, rows, first bar start UTC, last bar start UTC)
CASES = [
    (
        "eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201701.csv",
        "histdata",
        "1m",
        31500,
        _utc(2017, 1, 2, 7, 0),
        _utc(2017, 2, 1, 4, 58),
    ),
    (
        "eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201702.csv",
        "histdata",
        "1m",
        28779,
        _utc(2017, 2, 1, 5, 0),
        _utc(2017, 3, 1, 4, 58),
    ),
    (
        "eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201703.csv",
        "histdata",
        "1m",
        32660,
        _utc(2017, 3, 1, 5, 0),
        _utc(2017, 3, 31, 20, 58),
    ),
    (
        "eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201704.csv",
        "histdata",
        "1m",
        29161,
        _utc(2017, 4, 2, 21, 0),
        _utc(2017, 5, 1, 3, 58),
    ),
    (
        "eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201705.csv",
        "histdata",
        "1m",
        33054,
        _utc(2017, 5, 1, 4, 0),
        _utc(2017, 6, 1, 3, 58),
    ),
    (
        "eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201706.csv",
        "histdata",
        "1m",
        31194,
        _utc(2017, 6, 1, 4, 0),
        _utc(2017, 6, 30, 20, 58),
    ),
    (
        "btc_perp_1m_ftx_202201/btc-perp-20211231-20220201_1m.csv",
        "ftx",
        "1m",
        45031,
        _utc(2021, 12, 31, 23, 1),
        _utc(2022, 2, 1, 5, 31),
    ),
    (
        "spy_1m_ninjatrader_2011/nt-spy-minute-2011-01.csv",
        "ninjatrader",
        "1m",
        14180,
        _utc(2011, 1, 3, 9, 0),
        _utc(2011, 2, 1, 0, 59),
    ),
    (
        "spy_1m_ninjatrader_2011/nt-spy-minute-2011-03.csv",
        "ninjatrader",
        "1m",
        17577,
        _utc(2011, 3, 1, 9, 0),
        _utc(2011, 3, 31, 23, 58),
    ),
    (
        "btcusdt_1h_binance/BTC_USDT-1h_binance_2017_2024.csv",
        "binance",
        "1h",
        58419,
        _utc(2017, 8, 17, 4, 0),
        _utc(2024, 4, 21, 14, 0),
    ),
    (
        "lean_eurusd/eurusd_oanda_hour.csv.gz",
        "lean_fx",
        "1h",
        74439,
        _utc(2007, 1, 1, 21, 0),
        _utc(2018, 12, 31, 21, 0),
    ),
    ("lean_eurusd/eurusd_oanda_daily.csv", "lean_fx", "1d", 3738, _utc(2007, 1, 1), _utc(2018, 12, 31)),
    (
        "lean_spy/spy_hour_1998_2021.csv",
        "lean_equity",
        "1h",
        40832,
        _utc(1998, 1, 2, 14, 30),
        _utc(2021, 3, 31, 19, 0),
    ),
    ("lean_spy/spy_daily_1998_2021.csv", "lean_daily", "1d", 5849, _utc(1998, 1, 2), _utc(2021, 3, 31)),
    ("arch_daily/sp500.csv.gz", "yahoo_csv", "1d", 5031, _utc(1999, 1, 4), _utc(2018, 12, 31)),
    ("arch_daily/nasdaq.csv.gz", "yahoo_csv", "1d", 5031, _utc(1999, 1, 4), _utc(2018, 12, 31)),
    (
        "btc_daily_mathaszip/BTCUSD_1d_candles_full.csv",
        "candles_daily",
        "1d",
        5152,
        _utc(2011, 8, 18),
        _utc(2025, 9, 24),
    ),
]

_cache: dict[str, ParseResult] = {}


def _read(rel: str) -> ParseResult:
    """Parse a shared file once per session (detection on, as `volrisk ingest` runs it)."""
    if rel not in _cache:
        _cache[rel] = read_bars_file(SHARED_DATA / rel, symbol="TEST")
    return _cache[rel]


def _first_data_line(rel: str) -> str:
    path = SHARED_DATA / rel
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as fh:
        lines = [fh.readline(), fh.readline()]
    return lines[1] if lines[0][:1].isalpha() else lines[0]


@pytest.mark.parametrize(
    ("rel", "layout", "interval", "rows", "first", "last"), CASES, ids=[c[0].split("/")[-1] for c in CASES]
)
def test_real_file_parses_as_documented(
    rel: str, layout: str, interval: str, rows: int, first: datetime, last: datetime
) -> None:
    result = _read(rel)
    bars = result.bars
    assert result.layout == layout
    assert result.interval == interval
    assert bars.schema == pl.Schema(BAR_SCHEMA)
    assert bars.height == rows
    assert result.quarantine.height == 0, result.quarantine.head(5)
    assert bars["ts"][0] == first
    assert bars["ts"][-1] == last
    assert bars["ts"].is_sorted() and bars["ts"].n_unique() == rows
    assert set(bars["interval"]) == {interval} and set(bars["symbol"]) == {"TEST"}
    assert result.checksum and len(result.checksum) == 64


def test_manifest_totals() -> None:
    histdata = sum(_read(c[0]).bars.height for c in CASES if c[1] == "histdata")
    ninja = sum(_read(c[0]).bars.height for c in CASES if c[1] == "ninjatrader")
    assert histdata == 186_348
    assert ninja == 31_757


def test_histdata_follows_new_york_local_time() -> None:
    # The FX week opens Sunday 17:00 and closes Friday 17:00 New York time, winter and summer.
    # In the files it opens at 17:00 and closes at 16:59 in both seasons, so the stamps are New
    # York local time (EST in January, EDT in June), not fixed EST as HistData's docs say.
    jan = _read("eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201701.csv")
    assert "20170102 020000" in _first_data_line("eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201701.csv")
    assert jan.bars["ts"][0] == _utc(2017, 1, 2, 7, 0)
    jun = _read("eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201706.csv")
    assert _first_data_line("eurusd_m1_histdata_2017h1/DAT_ASCII_EURUSD_M1_201706.csv").startswith(
        "20170601 000000"
    )
    assert jun.bars["ts"][0] == _utc(2017, 6, 1, 4, 0)
    assert set(jun.bars["volume"]) == {0.0}
    for frame in (jan.bars, jun.bars):
        local = frame["ts"].dt.convert_time_zone("America/New_York")
        gaps = frame.with_columns(local.alias("local")).filter(frame["ts"].diff() > pl.duration(days=1))
        # Every weekend gap ends at the Sunday 17:00 New York open.
        assert gaps.height >= 3
        assert set(gaps["local"].dt.strftime("%a %H:%M").to_list()) == {"Sun 17:00"}


def test_ninjatrader_bar_end_becomes_bar_start() -> None:
    rel = "spy_1m_ninjatrader_2011/nt-spy-minute-2011-01.csv"
    line = _first_data_line(rel)
    assert line.startswith("20110103 090100;126.35;126.39;126.35;126.39;1579")
    first = _read(rel).bars.row(0, named=True)
    assert first["ts"] == _utc(2011, 1, 3, 9, 0)
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        126.35,
        126.39,
        126.35,
        126.39,
        1579.0,
    )


def test_lean_spy_first_hour_restamped_to_0930_eastern() -> None:
    bars = _read("lean_spy/spy_hour_1998_2021.csv").bars
    local = bars["ts"].dt.convert_time_zone("America/New_York")
    minutes = local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32)
    # no bar starts 09:00 ET any more; the day opens 09:30 in winter and summer alike
    assert int((minutes == 9 * 60).sum()) == 0
    assert int((minutes == 9 * 60 + 30).sum()) > 5000
    summer = bars.filter(pl.col("ts").dt.date() == datetime(2020, 7, 1).date())["ts"]
    assert summer[0] == _utc(2020, 7, 1, 13, 30)  # 09:30 EDT
    winter = bars.filter(pl.col("ts").dt.date() == datetime(2020, 1, 2).date())["ts"]
    assert winter[0] == _utc(2020, 1, 2, 14, 30)  # 09:30 EST
    assert winter[1] == _utc(2020, 1, 2, 15, 0)  # the 10:00 bar keeps its stamp


def test_lean_fx_quotes_become_mid_prices() -> None:
    rel = "lean_eurusd/eurusd_oanda_hour.csv.gz"
    fields = [float(x) for x in _first_data_line(rel).strip().split(",")[1:]]
    bid, ask = fields[:4], fields[4:]
    first = _read(rel).bars.row(0, named=True)
    for i, name in enumerate(("open", "high", "low", "close")):
        assert first[name] == pytest.approx((bid[i] + ask[i]) / 2, abs=1e-12)
    assert first["volume"] is None


def test_candles_daily_column_order_is_respected() -> None:
    # timestamp,open,close,volume,unix_timestamp,high,low -- high and low come last
    second = _read("btc_daily_mathaszip/BTCUSD_1d_candles_full.csv").bars.row(1, named=True)
    assert (second["open"], second["high"], second["low"], second["close"]) == (10.9, 11.85, 10.9, 11.69)
    zero_volume = _read("btc_daily_mathaszip/BTCUSD_1d_candles_full.csv").bars["volume"] == 0
    assert int(zero_volume.sum()) == 33


def test_binance_gaps_and_crash_hour_are_kept() -> None:
    bars = _read("btcusdt_1h_binance/BTC_USDT-1h_binance_2017_2024.csv").bars
    steps = bars.select(pl.col("ts"), pl.col("ts").diff().alias("step")).filter(
        pl.col("step") > timedelta(hours=1)
    )
    assert steps.height == 28
    longest = steps.sort("step").row(-1, named=True)
    assert longest["step"] == timedelta(hours=34)
    assert longest["ts"].date() == datetime(2018, 2, 9).date()
    worst = bars.with_columns((pl.col("close") / pl.col("open") - 1).alias("r")).sort("r").row(0, named=True)
    assert worst["ts"].date() == datetime(2020, 3, 12).date() and worst["r"] < -0.15


def test_ftx_minutes_have_no_gaps() -> None:
    bars = _read("btc_perp_1m_ftx_202201/btc-perp-20211231-20220201_1m.csv").bars
    assert set(bars["ts"].diff().drop_nulls().to_list()) == {timedelta(minutes=1)}


def test_single_series_file_is_not_a_bar_file() -> None:
    # arch's vix.csv.gz is `Date,vix`: a close-only series. Detection refuses it by name.
    path = SHARED_DATA / "arch_daily" / "vix.csv.gz"
    with pytest.raises(DataError, match="cannot recognise the format") as info:
        read_bars_file(path, symbol="VIX")
    assert str(path) in str(info.value)


def test_explicit_wrong_format_on_a_real_file_names_the_missing_columns() -> None:
    path = SHARED_DATA / "lean_spy" / "spy_daily_1998_2021.csv"
    with pytest.raises(DataError, match=r"lacks column\(s\) \['time_utc'\] required by format 'binance'"):
        read_bars_file(path, symbol="SPY", fmt="binance")
