"""Shared benchmark helpers: medians, peak memory, a fixed synthetic data set."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import polars as pl

T = TypeVar("T")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall time of one call and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(values: list[float]) -> float:
    return statistics.median(values)


def synthetic_minute_bars(n_symbols: int = 10, n_bars: int = 5_000_000, seed: int = 42) -> list[pl.DataFrame]:
    """``n_bars`` seeded 1-minute bars split over ``n_symbols`` symbols, one frame per symbol."""
    from tasks.sources.synthetic import generate_bars

    per_symbol = n_bars // n_symbols
    start = datetime(2023, 1, 1, tzinfo=UTC)
    end = start + timedelta(minutes=per_symbol)
    return [generate_bars(f"SYN{i:02d}", start, end, "1m", seed=seed).bars for i in range(n_symbols)]
