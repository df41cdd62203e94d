"""Warehouse write path: upsert 5,000,000 synthetic 1-minute bars (10 symbols), then again.

Reference, measured in the same run: a plain ``INSERT`` of the same Arrow table into an empty table
with the same columns. Targets (issue 2): first upsert >= 1.5M rows/s and >= 30% of the plain rate.
Each figure is the median of ``REPEATS`` runs into fresh warehouse files.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import median, peak_rss_mb, synthetic_minute_bars, timed  # noqa: E402

from warehouse.bars import upsert_bars  # noqa: E402
from warehouse.db import connect  # noqa: E402

REPEATS = 3
TARGET_RATE = 1.5e6
TARGET_SHARE = 0.30


def run_once(frames: list[pl.DataFrame], folder: Path, i: int) -> tuple[float, float, float]:
    n = sum(f.height for f in frames)
    con = connect(folder / f"upsert{i}.duckdb")

    def upsert_all() -> int:
        total = 0
        for frame in frames:
            total += upsert_bars(con, frame, "bench").total
        con.sql("CHECKPOINT")
        return total

    t_first, written = timed(upsert_all)
    assert written == n
    t_second, _ = timed(upsert_all)
    assert con.sql("SELECT count(*) FROM bars").fetchall()[0][0] == n
    con.close()

    ref = connect(folder / f"plain{i}.duckdb")
    ref.sql("CREATE TABLE plain AS SELECT * FROM bars LIMIT 0")
    table = pl.concat(frames).with_columns(pl.lit("bench").alias("ingest_run")).to_arrow()

    def plain_insert() -> None:
        ref.register("arrow_bars", table)
        ref.sql("INSERT INTO plain SELECT * FROM arrow_bars")
        ref.sql("CHECKPOINT")

    t_plain, _ = timed(plain_insert)
    ref.close()
    return n / t_first, n / t_second, n / t_plain


def main() -> None:
    t_gen, frames = timed(lambda: synthetic_minute_bars(10, 5_000_000))
    n = sum(f.height for f in frames)
    print(f"generated {n:,} synthetic 1m bars for {len(frames)} symbols in {t_gen:.1f}s")
    first, second, plain = [], [], []
    with tempfile.TemporaryDirectory(prefix="volrisk-bench-") as tmp:
        for i in range(REPEATS):
            a, b, c = run_once(frames, Path(tmp), i)
            first.append(a)
            second.append(b)
            plain.append(c)
            print(f"  run {i + 1}: first upsert {a / 1e6:.2f}M rows/s, re-upsert {b / 1e6:.2f}M rows/s, "
                  f"plain insert {c / 1e6:.2f}M rows/s")
    f, s, p = median(first), median(second), median(plain)
    print(f"first upsert   {f / 1e6:6.2f}M rows/s (median of {REPEATS})  target >= {TARGET_RATE / 1e6:.1f}M  "
          f"{'PASS' if f >= TARGET_RATE else 'MISS'}")
    print(f"re-upsert      {s / 1e6:6.2f}M rows/s (identical data: no row changes)")
    print(f"plain INSERT   {p / 1e6:6.2f}M rows/s (reference, same Arrow table, same run)")
    print(f"ratio first/plain = {f / p:.2f}  target >= {TARGET_SHARE:.2f}  {'PASS' if f / p >= TARGET_SHARE else 'MISS'}")
    print(f"ratio re-upsert/plain = {s / p:.2f}")
    print(f"peak memory    {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
