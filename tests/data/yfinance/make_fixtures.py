"""Rebuild the yfinance fixtures in this folder from the real files in ../../../../shared/data.

Run from the repository root: ``python tests/data/yfinance/make_fixtures.py [DATA_DIR]``. The output is
deterministic. See README.md for what each fixture is and where its values come from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
COLUMNS = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]  # yf.download's (sorted) order


def _write(name: str, frame: pd.DataFrame, meta: dict[str, object], manifest: dict[str, object]) -> None:
    path = HERE / f"{name}.csv"
    label = str(meta["index_name"] or "index")
    frame[COLUMNS].to_csv(path, index=True, index_label=label, float_format="%.10g")
    manifest[name] = {"file": path.name, **meta}


def spy_1m(data: Path) -> pd.DataFrame:
    """SPY 09:30-11:29 New York on 2011-03-03 and 2011-03-04, re-dated to 2025-03-07 and 2025-03-10."""
    raw = pd.read_csv(
        data / "spy_1m_ninjatrader_2011" / "nt-spy-minute-2011-03.csv",
        sep=";",
        header=None,
        names=["stamp", "Open", "High", "Low", "Close", "Volume"],
    )
    # NinjaTrader stamps are UTC at bar END; yfinance stamps bars at their START.
    start = pd.to_datetime(raw["stamp"], format="%Y%m%d %H%M%S", utc=True) - pd.Timedelta(minutes=1)
    local = start.dt.tz_convert("America/New_York")
    hhmm = local.dt.strftime("%H:%M")
    parts = []
    for src, dst in (("2011-03-03", "2025-03-07"), ("2011-03-04", "2025-03-10")):
        keep = (local.dt.strftime("%Y-%m-%d") == src) & (hhmm >= "09:30") & (hhmm < "11:30")
        day = raw.loc[keep].copy()
        # Same New York wall-clock time on the target date (2025-03-10 is after the DST change).
        wall = local[keep].dt.tz_localize(None) + (pd.Timestamp(dst) - pd.Timestamp(src))
        day.index = pd.DatetimeIndex(wall).tz_localize("America/New_York")
        parts.append(day)
    frame = pd.concat(parts)
    frame["Adj Close"] = frame["Close"]  # yfinance sets Adj Close = Close for intraday bars
    # Yahoo returns null quotes for some minutes; keepna=True keeps them as NaN prices with Volume 0.
    for stamp in ("2025-03-07 10:15", "2025-03-10 11:02"):
        at = pd.Timestamp(stamp, tz="America/New_York")
        frame.loc[at, ["Open", "High", "Low", "Close", "Adj Close"]] = np.nan
        frame.loc[at, "Volume"] = 0
    frame.index.name = "Datetime"
    return frame


def btc_1h(data: Path) -> pd.DataFrame:
    """BTC/USDT hourly 2024-04-19 00:00 .. 2024-04-20 23:00 UTC, shifted to 2025-03-06 .. 2025-03-07."""
    raw = pd.read_csv(data / "btcusdt_1h_binance" / "BTC_USDT-1h_binance_2017_2024.csv")
    raw.index = pd.to_datetime(raw["time_utc"]).dt.tz_localize("UTC")
    src = raw.loc["2024-04-19 00:00":"2024-04-20 23:00"].copy()
    assert len(src) == 48, len(src)
    src.index = src.index + (pd.Timestamp("2025-03-06", tz="UTC") - pd.Timestamp("2024-04-19", tz="UTC"))
    frame = pd.DataFrame(
        {
            "Open": src["open"],
            "High": src["high"],
            "Low": src["low"],
            "Close": src["close"],
            "Adj Close": src["close"],
            # Yahoo reports crypto volume in USD as an integer; Binance's is in BTC.
            "Volume": (src["volume"] * src["close"]).round().astype(np.int64),
        }
    )
    frame.index.name = "Datetime"
    return frame


def spy_1d(data: Path) -> pd.DataFrame:
    """SPY daily bars of March 2021 (Lean), laid on the XNYS sessions from 2025-02-03 on."""
    raw = pd.read_csv(data / "lean_spy" / "spy_daily_1998_2021.csv", parse_dates=["date"])
    src = raw[(raw["date"] >= "2021-03-01") & (raw["date"] <= "2021-03-31")].reset_index(drop=True)
    cal = xcals.get_calendar("XNYS", start="2025-01-02", end="2025-06-30")
    sessions = cal.sessions_in_range("2025-02-03", "2025-06-30")[: len(src)]
    frame = pd.DataFrame(
        {
            "Open": src["open"].to_numpy(),
            "High": src["high"].to_numpy(),
            "Low": src["low"].to_numpy(),
            "Close": src["close"].to_numpy(),
            "Adj Close": src["close"].to_numpy(),  # no dividend in the window
            "Volume": src["volume"].to_numpy().astype(np.int64),
        },
        index=pd.DatetimeIndex(sessions.tz_localize(None) if sessions.tz else sessions, name="Date"),
    )
    return frame


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "data"
    manifest: dict[str, object] = {}
    _write(
        "spy_1m",
        spy_1m(data),
        {
            "ticker": "SPY",
            "interval": "1m",
            "index_name": "Datetime",
            "tz": "America/New_York",
            "request": {"start": "2025-03-07T00:00:00Z", "end": "2025-03-11T00:00:00Z"},
            "now": "2025-03-20T00:00:00Z",
        },
        manifest,
    )
    _write(
        "btc-usd_1h",
        btc_1h(data),
        {
            "ticker": "BTC-USD",
            "interval": "1h",
            "index_name": "Datetime",
            "tz": "UTC",
            "request": {"start": "2025-03-06T00:00:00Z", "end": "2025-03-08T00:00:00Z"},
            "now": "2025-03-20T00:00:00Z",
        },
        manifest,
    )
    _write(
        "spy_1d",
        spy_1d(data),
        {
            "ticker": "SPY",
            "interval": "1d",
            "index_name": "Date",
            "tz": None,
            "request": {"start": "2025-02-03T00:00:00Z", "end": "2025-03-07T00:00:00Z"},
            "now": "2025-03-20T00:00:00Z",
        },
        manifest,
    )
    # What yf.download returns for a symbol Yahoo does not know: zero rows, the usual MultiIndex
    # columns, and a tz-naive, unnamed DatetimeIndex (observed with yfinance 1.7.0).
    empty = pd.DataFrame(columns=COLUMNS, index=pd.DatetimeIndex([], name=None))
    _write(
        "zzzz_1d_empty",
        empty,
        {
            "ticker": "ZZZZ",
            "interval": "1d",
            "index_name": None,
            "tz": None,
            "request": {"start": "2025-02-03T00:00:00Z", "end": "2025-03-07T00:00:00Z"},
            "now": "2025-03-20T00:00:00Z",
        },
        manifest,
    )
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
