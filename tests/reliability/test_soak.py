"""Soak: 10 symbols x 1 year of 1-minute synthetic bars (5.26M), features, then a full second pass in
which 5% of (symbol, day) pairs changed. Driven by ``soak_driver.py`` in a child process whose whole
process tree (flows, task threads, the ephemeral Prefect server) is sampled for resident memory.

* peak RSS of the tree stays under 4 GB;
* the second pass recomputes exactly the features partitions whose read window (the month, 40 days of
  history before it, one day after) holds a changed bar; every other partition is a cache hit, and so
  is every synthetic ingest partition;
* final bar counts and checksum equal an independent recomputation (the generator called once per
  symbol for the whole year, corrections applied in polars, hashed in a separate in-memory DuckDB); and
  the stored features of a recomputed month equal features computed directly from those bars.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import psutil
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak_driver as soak  # noqa: E402

LIMIT_BYTES = 4 * 2**30


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _month_windows() -> list[tuple[datetime, datetime]]:
    out, lo = [], datetime(2023, 1, 1, tzinfo=UTC)
    while lo < datetime(2024, 1, 1, tzinfo=UTC):
        hi = (lo + timedelta(days=32)).replace(day=1)
        out.append((lo, hi))
        lo = hi
    return out


def test_soak(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), VOLRISK_HOME=str(tmp_path / "home"))
    started = time.monotonic()
    log = tmp_path / "soak.log"  # a file, not a pipe: a full pipe would block the child
    with log.open("w") as sink:
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("soak_driver.py")), str(tmp_path)],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(proc))
            time.sleep(0.2)
    wall = time.monotonic() - started
    assert child.returncode == 0, log.read_text()[-5000:]
    report = json.loads((tmp_path / "soak.json").read_text())
    print(
        f"\nsoak: wall {wall:.0f}s, peak RSS of the process tree {peak / 2**30:.2f} GiB; "
        + json.dumps({k: v for k, v in report.items() if k not in ("changed_pairs", "pass2_recomputed")})
        + f"; features partitions recomputed in pass 2: {len(report['pass2_recomputed'])}"
    )
    assert peak < LIMIT_BYTES, f"peak RSS {peak / 2**30:.2f} GiB"
    assert report["pass1_ingest"] == {"success": 120} and report["pass1_features"] == {"success": 120}
    assert not report["pass1_features_failed"] and not report["pass2_features_failed"]
    assert report["pass2_ingest"] == {"cached": 120}, "unchanged synthetic partitions are not recomputed"
    assert report["pass2_corrections"] == {"success": 10}

    pairs = [tuple(p) for p in report["changed_pairs"]]
    assert len(pairs) == round(0.05 * 10 * 365)
    assert report["pass2_corrections_updated"] == 1440 * len(pairs)
    changed = {(s, datetime.fromisoformat(d).replace(tzinfo=UTC)) for s, d in pairs}
    expected = sorted(
        [s, lo.date().isoformat()]
        for s in soak.SYMBOLS
        for lo, hi in _month_windows()
        if any(sym == s and lo - timedelta(days=40) <= day < hi + timedelta(days=1) for sym, day in changed)
    )
    assert report["pass2_recomputed"] == expected, "exactly the partitions that read a changed bar"
    assert report["pass2_features"] == {"success": len(expected), "cached": 120 - len(expected)}

    # Independent recomputation of the final bars.
    from tasks.sources.synthetic import generate_bars
    from warehouse.bars import bars_checksum, read_bars
    from warehouse.db import session

    parts = []
    lo, hi = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    for symbol in soak.SYMBOLS:
        bars = generate_bars(symbol, lo, hi, "1m", seed=soak.SEED).bars
        fixes = pl.concat([soak.corrected_day(s, d) for s, d in pairs if s == symbol]).with_columns(
            source=pl.lit("ftx")
        )
        parts.append(pl.concat([bars.join(fixes, on="ts", how="anti"), fixes]))
    truth = pl.concat(parts).select(
        "symbol", "interval", "ts", "open", "high", "low", "close", "volume", "source"
    )
    mem = duckdb.connect()
    mem.register("truth", truth.to_arrow())
    n, h = mem.sql(
        "SELECT count(*), coalesce(sum(hash(symbol, interval, ts, open, high, low, close, volume, source)"
        "::HUGEINT), 0) FROM truth"
    ).fetchall()[0]
    independent = f"{int(n)}:{int(h) & ((1 << 64) - 1):016x}"
    wh = tmp_path / "warehouse.duckdb"
    with session(wh, read_only=True) as con:
        assert bars_checksum(con) == independent
        assert n == 10 * 365 * 1440
        n_feat = con.sql("SELECT count(*) FROM features_daily").fetchall()[0][0]
        symbol, month = report["pass2_recomputed"][len(expected) // 2]
        m_lo = datetime.fromisoformat(month).replace(tzinfo=UTC)
        m_hi = (m_lo + timedelta(days=32)).replace(day=1)
        stored = con.sql(
            "SELECT session_date, rv, n_bars FROM features_daily WHERE symbol = ? AND session_date >= ? "
            "AND session_date < ? ORDER BY 1",
            params=[symbol, m_lo.date(), m_hi.date()],
        ).pl()
        window_bars = read_bars(con, symbol, "1m", m_lo - timedelta(days=40), m_hi + timedelta(days=1))
    assert n_feat == 10 * 365
    # Features of that month, straight from the independently recomputed bars.
    from tasks.features import build_daily_features

    mine = truth.filter(
        (pl.col("symbol") == symbol) & pl.col("ts").is_between(m_lo - timedelta(days=40), m_hi, closed="left")
    ).sort("ts")
    assert mine.height == window_bars.filter(pl.col("ts") < m_hi).height
    direct = (
        build_daily_features(mine, "24x7", "1m")
        .filter(pl.col("session_date").is_between(m_lo.date(), m_hi.date() - timedelta(days=1)))
        .select("session_date", "rv", "n_bars")
        .sort("session_date")
    )
    assert direct.height == stored.height > 0
    assert direct["session_date"].to_list() == stored["session_date"].to_list()
    assert (direct["n_bars"] == stored["n_bars"]).all()
    assert ((direct["rv"] - stored["rv"]).abs() <= 1e-12 * direct["rv"].abs().max()).all()
    assert date(2023, 1, 1) <= stored["session_date"].min()
