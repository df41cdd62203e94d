"""The soak run, as a separate process so the test can measure its whole process tree's memory.

``python tests/reliability/soak_driver.py OUT_DIR`` runs, against ``OUT_DIR/warehouse.duckdb``:

1. pass 1: ``ingest_flow`` of 10 symbols of seeded synthetic 1-minute bars over 2023 (5,256,000 bars,
   one partition per symbol and month), then ``features_flow`` for the 10 symbols;
2. corrections for a random 5% of (symbol, day) pairs: that day's bars with every close moved by +0.1%
   (high raised to stay >= close), delivered as one CSV per symbol (what a vendor re-delivery looks like);
3. pass 2, a full rerun: the same synthetic ingest, the corrections files, the same features flow.

It writes ``OUT_DIR/soak.json``: wall times, per-stage counts of computed vs cached partitions, the
changed pairs and the features partitions each pass recomputed.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

SYMBOLS = [f"SOAK{i}" for i in range(10)]
START, END = date(2023, 1, 1), date(2024, 1, 1)
SEED = 11
CHANGED_FRACTION = 0.05


def changed_pairs(rng_seed: int = 2023) -> list[tuple[str, str]]:
    days = [START + timedelta(days=i) for i in range((END - START).days)]
    pairs = [(s, d.isoformat()) for s in SYMBOLS for d in days]
    rng = random.Random(rng_seed)
    return sorted(rng.sample(pairs, round(CHANGED_FRACTION * len(pairs))))


def corrected_day(symbol: str, day: str) -> pl.DataFrame:
    """The corrected bars of one (symbol, day): the synthetic bars, close +0.1%, high kept >= close."""
    from tasks.sources.synthetic import generate_bars

    lo = datetime.fromisoformat(day).replace(tzinfo=UTC)
    bars = generate_bars(symbol, lo, lo + timedelta(days=1), "1m", seed=SEED).bars
    return bars.with_columns(close=pl.col("close") * 1.001).with_columns(
        high=pl.max_horizontal("high", "close")
    )


def _tally(rows: list[dict[str, object]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[str(r["status"])] = out.get(str(r["status"]), 0) + 1
    return out


def main(out_dir: Path) -> None:
    from flows.features_flow import features_flow
    from flows.ingest_flow import ingest_flow

    wh = str(out_dir / "warehouse.duckdb")
    report: dict[str, object] = {}
    t0 = time.monotonic()

    def timed(name: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        result = fn(*args, **kwargs)
        report[f"{name}_s"] = round(time.monotonic() - started, 1)
        return result

    rows = timed(
        "pass1_ingest",
        ingest_flow,
        symbols=SYMBOLS,
        source="synthetic",
        start=START,
        end=END,
        interval="1m",
        seed=SEED,
        warehouse=wh,
    )
    report["pass1_ingest"] = _tally(rows)
    feats = timed("pass1_features", features_flow, symbols=SYMBOLS, warehouse=wh)
    report["pass1_features"] = _tally(feats["partitions"])
    report["pass1_features_failed"] = feats["failed"]

    pairs = changed_pairs()
    report["changed_pairs"] = pairs
    paths = []
    for symbol in SYMBOLS:
        days = [d for s, d in pairs if s == symbol]
        frame = pl.concat([corrected_day(symbol, d) for d in days])
        path = out_dir / f"corrections_{symbol}.csv"
        frame.select(
            timestamp=pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S"),
            open="open",
            high="high",
            low="low",
            close="close",
            volume="volume",
        ).write_csv(path)
        paths.append(str(path))

    rows = timed(
        "pass2_ingest",
        ingest_flow,
        symbols=SYMBOLS,
        source="synthetic",
        start=START,
        end=END,
        interval="1m",
        seed=SEED,
        warehouse=wh,
    )
    report["pass2_ingest"] = _tally(rows)
    rows = timed(
        "pass2_corrections", ingest_flow, symbols=SYMBOLS, paths=paths, fmt="ftx", interval="1m", warehouse=wh
    )
    report["pass2_corrections"] = _tally(rows)
    report["pass2_corrections_updated"] = sum(int(r.get("updated", 0)) for r in rows)  # type: ignore[call-overload]
    feats = timed("pass2_features", features_flow, symbols=SYMBOLS, warehouse=wh)
    report["pass2_features"] = _tally(feats["partitions"])
    report["pass2_recomputed"] = sorted(
        [r["symbol"], r["start"]] for r in feats["partitions"] if r["status"] == "success"
    )
    report["pass2_features_failed"] = feats["failed"]
    report["wall_s"] = round(time.monotonic() - t0, 1)
    (out_dir / "soak.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
