"""Properties of the daily features that must hold for any bars."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.schema import BAR_SCHEMA
from tasks.calendars import assign_sessions
from tasks.features import build_daily_features, session_features
from warehouse.bars import dedupe_keep_last

NY = ZoneInfo("America/New_York")
T0 = datetime(2021, 3, 10, tzinfo=UTC)  # a week holding the March 2021 DST switch
SETTINGS = settings(max_examples=40, deadline=None)
INTRADAY = [
    "n_bars",
    "n_returns",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "rv",
    "bv",
    "rq",
    "tq",
    "rs_pos",
    "rs_neg",
    "bns_z",
    "jump_count",
    "ret_oc",
    "coverage",
]


def bars_at(minutes: list[int], steps: list[float], symbol: str = "X") -> pl.DataFrame:
    """1-minute bars at ``T0 + minutes`` (sorted, unique) following the log-returns ``steps``."""
    n = len(minutes)
    log_close = np.log(100.0) + np.cumsum(steps)
    close = np.exp(log_close)
    open_ = np.exp(np.concatenate([[np.log(100.0)], log_close[:-1]]))
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "interval": ["1m"] * n,
            "ts": [T0 + timedelta(minutes=m) for m in minutes],
            "open": open_,
            "high": np.maximum(open_, close) * 1.0001,
            "low": np.minimum(open_, close) / 1.0001,
            "close": close,
            "volume": np.arange(1.0, n + 1.0),
            "source": ["test"] * n,
        },
        schema=BAR_SCHEMA,
    )


@st.composite
def random_bars(draw: st.DrawFn, span_minutes: int = 3 * 1440, max_bars: int = 300) -> pl.DataFrame:
    minutes = sorted(draw(st.sets(st.integers(0, span_minutes - 1), min_size=1, max_size=max_bars)))
    steps = draw(
        st.lists(
            st.one_of(st.just(0.0), st.floats(-0.05, 0.05, allow_nan=False, allow_infinity=False)),
            min_size=len(minutes),
            max_size=len(minutes),
        )
    )
    return bars_at(minutes, steps)


@SETTINGS
@given(bars=random_bars(), data=st.data())
def test_invariant_to_row_order_and_deduplicated_repeats(bars: pl.DataFrame, data: st.DataObject) -> None:
    base = build_daily_features(bars, "24x7", "1m")
    order = data.draw(st.permutations(list(range(bars.height))))
    shuffled = bars[order]
    assert build_daily_features(shuffled, "24x7", "1m").equals(base)
    repeat = data.draw(st.lists(st.integers(0, bars.height - 1), min_size=1, max_size=20))
    doubled = pl.concat([shuffled, bars[repeat]])
    assert build_daily_features(dedupe_keep_last(doubled), "24x7", "1m").equals(base)


@SETTINGS
@given(minutes=st.sets(st.integers(0, 1439), min_size=1, max_size=200), price=st.floats(0.01, 1e6))
def test_constant_price_day_has_zero_variation(minutes: set[int], price: float) -> None:
    mins = sorted(minutes)
    bars = bars_at(mins, [0.0] * len(mins)).with_columns(
        [pl.lit(price).alias(c) for c in ("open", "high", "low", "close")]
    )
    row = build_daily_features(bars, "24x7", "1m").row(0, named=True)
    assert row["rv"] == row["bv"] == row["jv"] == row["rq"] == row["rs_pos"] == row["rs_neg"] == 0.0
    assert row["bns_z"] is None and row["bns_p"] is None
    assert row["jump_count"] == 0
    assert row["ret_oc"] == 0.0


@SETTINGS
@given(bars=random_bars())
def test_bipower_bounded_by_realized_variance(bars: pl.DataFrame) -> None:
    daily = build_daily_features(bars, "24x7", "1m")
    rv, bv = daily["rv"].to_numpy(), daily["bv"].to_numpy()
    # Cauchy-Schwarz: sum |r_i||r_{i-1}| <= sum r_i^2, hence BV <= (pi/2) RV.
    assert np.all(bv <= math.pi / 2 * rv * (1 + 1e-12))
    np.testing.assert_allclose(daily["rs_pos"] + daily["rs_neg"], rv, rtol=1e-12)
    assert np.all(daily["jv"].to_numpy() >= 0)
    assert daily["coverage"].is_between(0, 1).all()
    assert np.all(rv >= 0)


def _oracle_session(
    ts: datetime, calendar: str, schedule: dict[date, tuple[datetime, datetime]]
) -> date | None:
    """Brute-force session of a 1-minute bar, from zoneinfo and the raw exchange schedule."""
    if calendar == "24x7":
        return ts.date()
    local = ts.astimezone(NY)
    if calendar == "fx":
        day = (local.replace(tzinfo=None) + timedelta(hours=7)).date()
        return day if day.weekday() < 5 else None
    bounds = schedule.get(local.date())
    if bounds is None:
        return None
    return local.date() if bounds[0] <= ts < bounds[1] else None


def _xnys_schedule() -> dict[date, tuple[datetime, datetime]]:
    cal = xcals.get_calendar("XNYS", start="2021-01-04", end="2021-04-30")
    sched = cal.schedule.loc["2021-03-01":"2021-03-31"]
    return {
        idx.date(): (row.open.to_pydatetime(), row.close.to_pydatetime()) for idx, row in sched.iterrows()
    }


XNYS_SCHEDULE = _xnys_schedule()


@SETTINGS
@given(
    bars=random_bars(span_minutes=7 * 1440, max_bars=400),
    calendar=st.sampled_from(["24x7", "fx", "XNYS"]),
)
def test_a_session_never_takes_bars_from_another(bars: pl.DataFrame, calendar: str) -> None:
    assigned = assign_sessions(bars, calendar, "1m")
    truth = [_oracle_session(t, calendar, XNYS_SCHEDULE) for t in bars["ts"].to_list()]
    kept = [s for s in truth if s is not None]
    assert assigned.bars["session_date"].to_list() == kept
    assert assigned.n_dropped == len(truth) - len(kept)

    full = session_features(assigned, calendar, "1m")
    for day in full["session_date"].to_list():
        own = assigned.bars.filter(pl.col("session_date") == day)
        alone = session_features(own, calendar, "1m").row(0, named=True)
        row = full.filter(pl.col("session_date") == day).row(0, named=True)
        for col in INTRADAY:
            if isinstance(row[col], float):
                # Same bars; polars may sum in another order or divide via a reciprocal (last-bit noise:
                # log(x / x) can come out as -1.1e-16).
                assert alone[col] == pytest.approx(row[col], rel=1e-12, abs=1e-15), (day, col)
            else:
                assert alone[col] == row[col], (day, col)
