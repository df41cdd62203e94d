"""Garman-Klass range variance from daily bars: the estimator, the calendar, and bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import DataError
from tasks.calendars import sessions_between
from tasks.range_realized import GK_CLOSE_WEIGHT, daily_bars_to_realized, garman_klass
from tasks.shipped_realized import SHIPPED_SERIES, shipped_realized_panel


def _bars(days: list[date], ohlc: np.ndarray) -> pl.DataFrame:
    """Daily bars stamped 00:00 UTC of their date."""
    ts = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days]
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


def test_returns_follow_the_calendar_and_bad_days_are_named() -> None:
    days = sessions_between("XNYS", date(2020, 1, 2), date(2020, 2, 28))
    ohlc = np.tile([100.0, 101.0, 99.0, 100.5], (len(days), 1))
    ohlc[:, 3] = 100.0 * np.exp(0.001 * np.arange(len(days)))  # a known close path
    ohlc[:, 1] = np.maximum(ohlc[:, 1], ohlc[:, 3])
    ohlc[5] = [100.5, 100.5, 100.5, 100.5]  # no trading: zero range
    ohlc[15, 2] = 0.01  # a stray low tick, 400x the usual range
    ohlc[25, 1] = ohlc[25, 3] * np.exp(0.4)  # a stray high: a wick 20x the usual range, range 20.5x
    missing = days[10]
    keep = [i for i, d in enumerate(days) if d != missing]
    bars = _bars([days[i] for i in keep], ohlc[keep])
    holiday = _bars([date(2020, 1, 20)], np.array([[100.0, 101.0, 99.0, 100.0]]))  # Martin Luther King Day
    rows, notes = daily_bars_to_realized(pl.concat([bars, holiday]), "XNYS", "X_GK")

    why = {d: (a, r) for d, a, r in notes.iter_rows()}
    assert why[days[5]] == ("dropped", "zero range (no trading)") and days[5] not in rows["date"]
    assert why[date(2020, 1, 20)] == ("dropped", "not a session of XNYS")
    assert why[days[15]][0] == why[days[25]][0] == "imputed" and len(why) == 4
    assert why[days[15]][1].startswith("bad print: o=100.0 h=") and " l=0.01 " in why[days[15]][1]
    rv = dict(zip(rows["date"], rows["rv"], strict=True))
    earlier = [rv[d] for d in days[:15] if d in rv]
    assert rv[days[15]] == pytest.approx(float(np.median(earlier)))  # not its own GK, 1e5 times larger
    assert rv[days[14]] == pytest.approx(0.5 * np.log(ohlc[14, 1] / 99) ** 2 - GK_CLOSE_WEIGHT * 0.014**2)
    ret = dict(zip(rows["date"], rows["ret"], strict=True))
    assert ret[days[11]] is None  # the session before it has no bar: no two-day return passed as daily
    assert ret[days[15]] == pytest.approx(0.001) == ret[days[16]]  # a bad print keeps its return and close
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
    (note,) = notes  # BTC's zero-volume days of 2011, Bitstamp's 15.00 high, Coinbase's 0.06 low
    assert note.startswith("BTC_GK: 39 day(s) without a range left out;")
    assert "2011-11-25 bad print: o=3.0 h=15.0" in note and "2017-04-15 bad print" in note
    assert "2013-04-10" not in note  # the real crash stays
