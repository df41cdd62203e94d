"""Recorded Yahoo responses: rebuild the frames yfinance 1.7 returns from tests/data/yfinance.

Shared by the adapter's unit tests and the ingest-flow tests (Yahoo is unreachable from here).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

DATA = Path(__file__).resolve().parent / "data" / "yfinance"
MANIFEST: dict[str, dict[str, Any]] = json.loads((DATA / "manifest.json").read_text())
COLUMNS = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def load_recorded(name: str) -> pd.DataFrame:
    """Rebuild the frame ``yf.download(ticker, ..., auto_adjust=False, keepna=True)`` returned."""
    meta = MANIFEST[name]
    flat = pd.read_csv(DATA / meta["file"], index_col=0)
    if meta["tz"] is not None:  # intraday: tz-aware in the exchange's zone
        index = pd.DatetimeIndex(pd.to_datetime(flat.index, utc=True)).tz_convert(meta["tz"])
    else:  # daily (or empty): tz-naive dates
        index = pd.DatetimeIndex(pd.to_datetime(flat.index))
    flat.index = index.as_unit("ns").rename(meta["index_name"])
    flat = flat[COLUMNS].astype("float64")
    if len(flat):
        flat["Volume"] = flat["Volume"].astype("int64")  # yfinance fills NaN volume with 0, as int64
    flat.columns = pd.MultiIndex.from_product([COLUMNS, [meta["ticker"]]], names=["Price", "Ticker"])
    return flat


def recorded_downloader(name: str, calls: list[tuple[datetime, datetime]] | None = None) -> Any:
    """A downloader serving the recorded frame, cut to each requested window as Yahoo would."""
    full = load_recorded(name)
    daily = MANIFEST[name]["interval"] == "1d"

    def download(symbol: str, start: datetime, end: datetime, interval: str) -> pd.DataFrame:
        if calls is not None:
            calls.append((start, end))
        if full.empty:
            return full
        idx = pd.DatetimeIndex(full.index)
        stamps = idx.tz_localize("UTC") if daily else idx
        keep = (stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end))
        return full.loc[keep]

    return download
