"""Garman-Klass range variance from daily bars: the estimator, the calendar, and bad input."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import DataError
from tasks.calendars import sessions_between
from tasks.range_realized import daily_bars_to_realized, garman_klass
from tasks.shipped_realized import SHIPPED_SERIES, shipped_realized_panel


def _bars(days: list[date], ohlc: np.ndarray) -> pl.DataFrame:
    """Daily bars stamped 00:00 UTC of their date."""
    ts = [datetime(d.year, d.month, d.day, tzinfo=timezone.utc) for d in days]
    return pl.DataFrame(
        {
            "symbol": "X",
            "ts": ts,
            "open": ohlc[:, 0],
            "high": ohlc[:, 1],
            "low": ohlc[:, 2],
            "close": ohlc[:, 3],
        }
    )


def _brownian_days(n_days: int, steps: int, sigma: float, seed: int) -> np.ndarray:
    """OHLC of ``n_days`` independent driftless Brownian days of ``steps`` steps, daily variance sigma^2."""
    rng = np.random.default_rng(seed)
    paths = np.cumsum(rng.normal(0.0, sigma / np.sqrt(steps), (n_days, steps)), axis=1)
    paths = np.hstack([np.zeros((n_days, 1)), paths])
    return np.exp(np.column_stack([paths[:, 0], paths.max(1), paths.min(1), paths[:, -1]]))


def test_garman_klass_is_unbiased_and_beats_the_squared_return() -> None:
    # Textbook check (Garman & Klass 1980): for a driftless Brownian day the estimator's mean is the
    # daily variance and its variance is far below that of the squared open-to-close return (the
    # paper's efficiency is 7.4 in continuous time; discrete sampling lowers it a little).
    ohlc = _brownian_days(4000, 2000, sigma=0.01, seed=5)
    frame = pl.DataFrame(ohlc, schema=["open", "high", "low", "close"], orient="row")
    gk = frame.select(garman_klass()).to_series().to_numpy()
    sq = np.log(ohlc[:, 3] / ohlc[:, 0]) ** 2
    assert gk.mean() == pytest.approx(1e-4, rel=0.05)
    assert sq.var() / gk.var() > 5.0


def test_returns_follow_the_calendar_and_bad_days_are_left_out_with_a_reason() -> None:
    days = sessions_between("XNYS", date(2020, 1, 2), date(2020, 1, 31))
    ohlc = np.tile([100.0, 101.0, 99.0, 100.5], (len(days), 1))
    ohlc[:, 3] = 100.0 * np.exp(0.001 * np.arange(len(days)))  # a known close path
    ohlc[:, 1] = np.maximum(ohlc[:, 1], ohlc[:, 3])
    ohlc[5] = [100.5, 100.5, 100.5, 100.5]  # no trading: zero range
    ohlc[15, 2] = 0.01  # a stray low tick, 400x the usual range
    missing = days[10]
    keep = [i for i, d in enumerate(days) if d != missing]
    rows, dropped = daily_bars_to_realized(_bars([days[i] for i in keep], ohlc[keep]), "XNYS", "X_GK")

    assert dict(dropped.iter_rows())[days[5]] == "zero range (no trading)"
    assert dropped.filter(pl.col("date") == days[15])["reason"].item().startswith("bad print: high")
    assert dropped.height == 2 and days[5] not in rows["date"] and days[15] not in rows["date"]
    ret = dict(zip(rows["date"], rows["ret"], strict=True))
    assert ret[days[11]] is None  # the session before it has no bar: no two-day return passed as daily
    assert ret[days[16]] == pytest.approx(0.001)  # the bad print's close still serves the next return
    assert ret[days[6]] == pytest.approx(np.log(ohlc[6, 3] / ohlc[5, 3]))
    assert ret[days[1]] == pytest.approx(0.001)
    assert (rows["nobs"] == 1).all() and rows["bv"].null_count() == rows.height


def test_a_bar_whose_range_cannot_hold_its_prices_is_named() -> None:
    days = [date(2020, 1, 2), date(2020, 1, 3)]
    ohlc = np.array([[100.0, 101.0, 99.0, 100.5], [100.0, 99.5, 99.0, 100.2]])  # high below the close
    with pytest.raises(DataError, match=r"X_GK: 1 daily bar\(s\).*2020-01-03.*h=99.5"):
        daily_bars_to_realized(_bars(days, ohlc), "XNYS", "X_GK")


def test_the_shared_daily_files_give_three_range_series(shared_data: Path) -> None:
    wanted = [s for s in SHIPPED_SERIES if s.symbol.endswith("_GK")]
    panel, built, notes = shipped_realized_panel({"samples": None, "shared": shared_data}, wanted)
    assert [s.symbol for s in built] == ["GSPC_GK", "IXIC_GK", "BTC_GK"]
    gspc = panel.filter(pl.col("symbol") == "GSPC_GK")
    assert gspc["date"].to_list() == sessions_between("XNYS", date(1999, 1, 4), date(2018, 12, 31))
    annual = float(np.sqrt(gspc["rv"].median() * 252))  # type: ignore[operator]
    assert 0.08 < annual < 0.15  # the S&P 500's typical daily range, annualised
    (note,) = notes  # BTC's zero-volume days of 2011 and Coinbase's 0.06 low of 2017-04-15
    assert note.startswith("BTC_GK:") and "2017-04-15: bad print" in note
