"""By hand (not part of ``make bench``): QLIKE of the daily neural models against ``har`` in 2023.

Walk-forward as in issue 12 (rolling 1000-session windows, refit every 22 sessions, h = 1, embargo
h + 1), targets in 2023, default configurations, seed 0, on

- ``BTC-USDT``: daily features of the bundled Binance hourly bars (``data/samples``);
- ``BTC_RV``: the realized-only case, the BTC rows of ``tests/data/realized/panel_oxfordman.csv.gz``
  (realized measures built from the same bars, read as imported measures: no high, low or volume).

``--extra`` adds the panel's other symbols on their last year (SPY_RV 2020-04..2021-03, EURUSD_RV
2018). Prints, per data set and model, the QLIKE, its ratio to HAR's on the same targets and the
Diebold-Mariano (HLN) p-value against HAR; for the residual models also the folds where early
stopping kept HAR and the inputs used. Uses only APIs that exist before and after the residual
change, so the same file measures both checkouts::

    PYTHONPATH=/path/to/checkout python bench/_neural_vs_har.py [--extra] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import tasks
from tasks.evaluate import diebold_mariano, qlike
from tasks.features import build_daily_features
from tasks.models.base import Forecaster, ModelData, get_model
from tasks.realized_features import realized_daily_features
from tasks.sources.files import read_bars_file
from tasks.sources.realized import read_realized_file
from tasks.walk_forward import cross_validate, walk_forward_folds

ROOT = Path(tasks.__file__).resolve().parents[1]
MODELS = ("har", "prob_lstm", "lstm_point", "voltransformer")
#: (label, panel symbol or None for the bars, calendar, test start, test end)
CASES = (
    ("BTC-USDT bars", None, "24x7", date(2023, 1, 1), date(2023, 12, 31)),
    ("BTC_RV realized", "BTC_RV", "24x7", date(2023, 1, 1), date(2023, 12, 31)),
)
EXTRA = (
    ("SPY_RV realized", "SPY_RV", "XNYS", date(2020, 4, 1), date(2021, 3, 31)),
    ("EURUSD_RV realized", "EURUSD_RV", "fx", date(2018, 1, 1), date(2018, 12, 31)),
)


def load(symbol: str | None, calendar: str) -> pl.DataFrame:
    """Daily features of the bundled BTC bars (``symbol`` None) or of one panel symbol."""
    if symbol is None:
        bars = read_bars_file(ROOT / "data/samples/BTC_USDT-1h_binance_2017_2024.csv", symbol="BTC-USDT")
        return build_daily_features(bars.bars, calendar, "1h")
    panel = read_realized_file(ROOT / "tests/data/realized/panel_oxfordman.csv.gz").realized
    feats, _ = realized_daily_features(panel.filter(pl.col("symbol") == symbol), calendar)
    return feats


def run_model(name: str, data: ModelData, folds: list[Any]) -> tuple[pl.DataFrame, list[Forecaster]]:
    """Out-of-fold forecasts of a fresh default ``name`` per fold, and the fitted instances."""
    made: list[Forecaster] = []

    def factory() -> Forecaster:
        made.append(get_model(name, seed=0) if name != "har" else get_model(name))
        return made[-1]

    return cross_validate(factory, data, folds), made


def score(pred: pl.DataFrame, feats: pl.DataFrame) -> pl.DataFrame:
    """Forecast joined with the realized target's RV."""
    actual = feats.select(pl.col("session_date").alias("target"), pl.col("rv").alias("actual"))
    return pred.select("symbol", "target", "rv").join(actual, on="target").drop_nulls()


def measure(label: str, symbol: str | None, calendar: str, start: date, end: date) -> dict[str, Any]:
    feats = load(symbol, calendar)
    sym = feats["symbol"][0]
    data = ModelData(feats.filter(pl.col("symbol") == sym).sort("session_date"))
    sessions = data.features["session_date"].to_list()
    folds = walk_forward_folds(
        sessions, start, end, refit_every=22, window="rolling", train_size=1000, min_train=250
    )
    scored: dict[str, pl.DataFrame] = {}
    out: dict[str, Any] = {"folds": len(folds), "models": {}}
    for name in MODELS:
        t0 = time.perf_counter()
        pred, made = run_model(name, data, folds)
        scored[name] = score(pred, data.features)
        info: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 1)}
        vals = [getattr(m, "validation", {}) for m in made]
        if vals and "kept_har" in vals[0]:
            info["kept_har_folds"] = sum(bool(v.get("kept_har")) for v in vals)
            info["inputs"] = vals[-1].get("inputs")
        out["models"][name] = info
    base = scored["har"]
    for name, frame in scored.items():
        both = frame.join(base, on="target", suffix="_har")
        lm = qlike(both["actual"].to_numpy(), both["rv"].to_numpy())
        lh = qlike(both["actual"].to_numpy(), both["rv_har"].to_numpy())
        dm = diebold_mariano(lm, lh)
        out["models"][name].update(
            n=int(lm.size),
            qlike=float(np.mean(lm)),
            ratio_to_har=float(np.mean(lm) / np.mean(lh)),
            dm_stat=dm.statistic,
            dm_p=dm.pvalue,
        )
    print(f"\n{label}: {len(folds)} folds, targets {start}..{end}")
    for name, info in out["models"].items():
        extra = ""
        if "kept_har_folds" in info:
            extra = f"  kept HAR {info['kept_har_folds']}/{len(folds)}  inputs {info['inputs']}"
        print(
            f"  {name:15s} n={info['n']:4d} QLIKE={info['qlike']:.4f} ratio={info['ratio_to_har']:.3f} "
            f"DM={info['dm_stat']:+.2f} p={info['dm_p']:.3f} ({info['seconds']} s){extra}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="store_true", help="also SPY_RV and EURUSD_RV")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    print(f"code: {ROOT}", file=sys.stderr)
    results = {c[0]: measure(*c) for c in CASES + (EXTRA if args.extra else ())}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
