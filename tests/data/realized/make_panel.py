"""Build ``panel_oxfordman.csv.gz``: daily realized measures of the bundled bars, in the Oxford-Man layout.

Run from the repository root: ``.venv/bin/python tests/data/realized/make_panel.py``. Deterministic.

Source bars (``data/samples``, see its README for licences): SPY hourly 1998-2021 (NYSE regular hours),
EUR/USD hourly 2007-2018 (OANDA, 17:00 New York roll), BTC/USDT hourly 2017-2024 (Binance, UTC days).
Each symbol's sessions come from ``tasks.features.build_daily_features`` on its calendar; the file then
holds, per session, what an Oxford-Man Realized Library row holds: ``rv5`` (realized variance of the
session's hourly log returns, decimal), ``bv``, ``rsv`` (downside semivariance), ``open_to_close``,
``open_price``, ``close_price`` and ``nobs``, with the date written as local midnight plus the exchange's
UTC offset, as Oxford-Man writes it. The symbols are suffixed ``_RV`` (``SPY_RV``, ``EURUSD_RV``,
``BTC_RV``) so they never collide with the bar symbols of the demo warehouse. Only sessions with full
bar coverage are written, like a vendor that drops half days. Measures come from hourly bars, so they
are noisier than Oxford-Man's 5-minute ones; that is fine for tests and the walkthrough.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tasks.features import build_daily_features  # noqa: E402
from tasks.sources.files import read_bars_file  # noqa: E402

SAMPLES = ROOT / "data" / "samples"
OUT = Path(__file__).resolve().parent / "panel_oxfordman.csv.gz"
#: (file, bar symbol, calendar, panel symbol, time zone of the local date stamp)
SOURCES = (
    ("spy_hour_1998_2021.csv", "SPY", "XNYS", "SPY_RV", "America/New_York"),
    ("eurusd_oanda_hour.csv.gz", "EURUSD", "fx", "EURUSD_RV", "America/New_York"),
    ("BTC_USDT-1h_binance_2017_2024.csv", "BTC-USDT", "24x7", "BTC_RV", "UTC"),
)
HEADER = ",Symbol,rv5,bv,rsv,open_to_close,open_price,close_price,nobs"


def _rows(file: str, symbol: str, calendar: str, label: str, tz: str) -> list[str]:
    bars = read_bars_file(SAMPLES / file, symbol=symbol).bars
    daily = build_daily_features(bars, calendar, "1h").filter(~pl.col("low_coverage") & (pl.col("rv") > 0))
    zone = ZoneInfo(tz)
    out = []
    for r in daily.iter_rows(named=True):
        offset = r["session_end"].astimezone(zone).strftime("%z")
        stamp = f"{r['session_date']} 00:00:00{offset[:3]}:{offset[3:]}"
        values = (r["rv"], r["bv"], r["rs_neg"], r["ret_oc"], r["open"], r["close"], r["n_returns"])
        out.append(",".join([stamp, label, *(f"{v:.10g}" for v in values)]))
    return out


def main() -> None:
    lines = [HEADER]
    for source in SOURCES:
        lines += _rows(*source)
    with gzip.open(OUT, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(lines) - 1} rows)")


if __name__ == "__main__":
    main()
