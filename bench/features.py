"""Benchmark: daily features from 5,000,000 one-minute bars, polars (tasks.features) vs pandas.

Ten synthetic 24x7 symbols over 347 days (4,996,800 bars). Both implementations run in this process on
the same bars and must agree. Prints the polars median of 5 runs, the pandas time (median of
``BENCH_PANDAS_REPEATS``, default 3; its first run is slower, cold), wall and CPU seconds, the ratio and the
peak resident memory of each phase (sampled with psutil, since tracemalloc does not see polars' Rust
allocations) and of the whole process (``ru_maxrss``).

Run: ``.venv/bin/python bench/features.py`` (or ``make bench``).
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _pandas_features import pandas_daily_features  # noqa: E402

from tasks.features import build_daily_features  # noqa: E402

SYMBOLS = [f"SYN{i:02d}" for i in range(10)]
START, END = date(2021, 1, 1), date(2021, 12, 14)  # 347 days x 1440 minutes x 10 = 4,996,800 bars
TARGET_RATIO = 10.0
PL_REPEATS = 5
PD_REPEATS = int(os.environ.get("BENCH_PANDAS_REPEATS", "3"))
MEMORY_LIMIT_GB = 4.0


def make_bars() -> pl.DataFrame:
    try:
        from tasks.sources.synthetic import generate_bars
    except ImportError:  # fallback: seeded GBM with stochastic volatility
        return _gbm_bars()
    return pl.concat([generate_bars(s, START, END, "1m", seed=42).bars for s in SYMBOLS])


def _gbm_bars() -> pl.DataFrame:
    rng = np.random.default_rng(42)
    n = (END - START).days * 1440
    ts = pl.datetime_range(pl.datetime(START.year, START.month, START.day, time_zone="UTC"),
                           pl.datetime(END.year, END.month, END.day, time_zone="UTC"),
                           "1m", closed="left", eager=True)
    frames = []
    for s in SYMBOLS:
        logvol = np.log(0.6 / np.sqrt(365 * 1440)) + np.cumsum(0.01 * rng.standard_normal(n)) * 0.1
        r = np.exp(logvol) * rng.standard_normal(n)
        close = 100 * np.exp(np.cumsum(r))
        open_ = np.concatenate([[100.0], close[:-1]])
        frames.append(pl.DataFrame({
            "symbol": s, "interval": "1m", "ts": ts, "open": open_,
            "high": np.maximum(open_, close) * 1.0002, "low": np.minimum(open_, close) / 1.0002,
            "close": close, "volume": rng.gamma(2.0, 500.0, n), "source": "bench",
        }))
    return pl.concat(frames)


@contextmanager
def peak_rss() -> Iterator[dict[str, float]]:
    """Sample this process's RSS every 5 ms; yields a dict whose 'peak_gb' is filled on exit."""
    proc = psutil.Process()
    out = {"peak_gb": 0.0}
    stop = threading.Event()
    peak = [proc.memory_info().rss]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["peak_gb"] = max(peak[0], proc.memory_info().rss) / 1e9


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], list[float], Any]:
    """Wall times, CPU times (user + sys of the whole process, all threads) and the last result."""
    times, cpus, result = [], [], None
    for _ in range(repeats):
        gc.collect()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return times, cpus, result


def compare(ours: pl.DataFrame, theirs: pd.DataFrame) -> None:
    theirs = theirs.sort_values(["symbol", "session_date"]).reset_index(drop=True)
    assert ours["symbol"].to_list() == theirs["symbol"].tolist()
    assert ours["session_date"].to_list() == theirs["session_date"].tolist()
    exact = ["n_bars", "n_returns", "expected_bars", "jump_count", "low_coverage"]
    for col in exact:
        mismatch = int(np.sum(ours[col].to_numpy() != theirs[col].to_numpy()))
        assert mismatch == 0, f"{col}: {mismatch} sessions differ"
    rv = ours["rv"].to_numpy()
    for col in ["open", "high", "low", "close", "volume", "ret_cc", "ret_oc", "ret_overnight", "coverage",
                "rv", "bv", "rq", "tq", "rs_pos", "rs_neg", "rv_d", "rv_w", "rv_m", "jv", "bns_z", "bns_p"]:
        a = ours[col].to_numpy().astype(float)
        b = theirs[col].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"{col}: null pattern differs"
        # jv and bns_z come from RV - BV, which cancels; judge them on the scale of their inputs.
        scale = {"jv": rv, "bns_z": np.ones_like(rv), "bns_p": np.ones_like(rv)}.get(col, np.zeros_like(rv))
        ok = np.isnan(a) | (np.abs(a - b) <= 1e-10 * np.abs(b) + 1e-10 * scale)
        assert ok.all(), f"{col}: {int((~ok).sum())} sessions differ, e.g. {a[~ok][:3]} vs {b[~ok][:3]}"


def main() -> None:
    t0 = time.perf_counter()
    bars = make_bars()
    print(f"bars: {bars.height:,} ({len(SYMBOLS)} symbols x {(END - START).days} days of 24x7 1m), "
          f"generated in {time.perf_counter() - t0:.1f}s; polars {pl.__version__}, pandas {pd.__version__}, "
          f"{os.cpu_count()} cpus")
    pdf = bars.select("symbol", "ts", "open", "high", "low", "close", "volume").to_pandas()
    gc.collect()
    baseline_gb = psutil.Process().memory_info().rss / 1e9  # both copies of the bars are resident

    with peak_rss() as mem_pl:
        pl_times, pl_cpu, ours = timed(lambda: build_daily_features(bars, "24x7", "1m"), repeats=PL_REPEATS)
    with peak_rss() as mem_pd:
        pd_times, pd_cpu, theirs = timed(lambda: pandas_daily_features(pdf), repeats=PD_REPEATS)
    compare(ours, theirs)

    pl_med, pd_t = statistics.median(pl_times), statistics.median(pd_times)
    pl_cpu_med, pd_cpu_med = statistics.median(pl_cpu), statistics.median(pd_cpu)
    ratio = pd_t / pl_med
    max_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.1f} on {os.cpu_count()} cpus (wall times suffer when other "
          "processes share the cores; CPU seconds less so)")
    print(f"polars build_daily_features: {pl_med:.3f}s wall, median of {PL_REPEATS} "
          f"{[round(t, 3) for t in pl_times]}; {pl_cpu_med:.3f} CPU-s; "
          f"{bars.height / pl_med / 1e6:.1f}M bars/s; {ours.height} daily rows")
    print(f"pandas reference:            {pd_t:.3f}s wall, median of {PD_REPEATS}; {pd_cpu_med:.3f} CPU-s")
    print(f"ratio pandas/polars:         {ratio:.1f}x wall (target >= {TARGET_RATIO:.0f}x), "
          f"{pd_cpu_med / pl_cpu_med:.1f}x CPU-s")
    print(f"RSS with both copies of the bars loaded: {baseline_gb:.2f} GB; peak during polars runs: "
          f"{mem_pl['peak_gb']:.2f} GB; during pandas: {mem_pd['peak_gb']:.2f} GB")
    print(f"process ru_maxrss: {max_rss_gb:.2f} GB (limit {MEMORY_LIMIT_GB:.0f} GB)")
    print("results agree: yes (rtol 1e-10; jump counts and bar counts exact)")
    if ratio < TARGET_RATIO:
        print(f"WARNING: ratio {ratio:.1f}x below the {TARGET_RATIO:.0f}x target")
    if max_rss_gb > MEMORY_LIMIT_GB:
        print(f"WARNING: peak memory above {MEMORY_LIMIT_GB} GB")


if __name__ == "__main__":
    main()
