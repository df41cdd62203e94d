"""Daily features on real 1-minute bars against an independent numpy reference.

The reference below shares no code with ``tasks.calendars`` or ``tasks.features``: it assigns sessions
with ``zoneinfo`` and the raw ``exchange_calendars`` schedule, loops over sessions in plain Python and
computes every measure with numpy. Both sides agree to 1e-12 relative error.

The data live in ``../shared/data`` (LGPL/Apache files that the repository does not ship); the tests
skip when the folder is absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np
import polars as pl
import pytest
from repo_paths import REPO
from scipy.stats import norm

from tasks.calendars import assign_sessions
from tasks.features import build_daily_features
from tasks.sources.files import read_bars_file

DATA = REPO.parent / "shared" / "data"
NY = ZoneInfo("America/New_York")
JUMP_WINDOW, JUMP_THRESHOLD, JUMP_MIN_PAIRS = 60, 4.0, 10

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real market data folder {DATA} is absent")


# --------------------------------------------------------------------------------------------------
# Loading: the production parsers when present, else a small local reader.


def load(folder: str, fmt: str, symbol: str) -> pl.DataFrame:
    paths = sorted((DATA / folder).glob("*.csv"))
    if not paths:
        pytest.skip(f"no csv files in {DATA / folder}")
    frames = [read_bars_file(p, fmt=fmt, symbol=symbol).bars for p in paths]
    return pl.concat(frames).unique(["symbol", "interval", "ts"], keep="last").sort("ts")


# --------------------------------------------------------------------------------------------------
# Independent reference: sessions from zoneinfo / the raw exchange schedule, measures in numpy.


@dataclass
class Calendar:
    session_of: Callable[[int], date | None]  # bar start (epoch us) -> session, or None when dropped
    expected: Callable[[date], int]
    previous: Callable[[date], date]
    ordinal: Callable[[date], int]


def _utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)


def crypto_calendar() -> Calendar:
    epoch = date(1970, 1, 1)
    return Calendar(
        session_of=lambda us: _utc(us).date(),
        expected=lambda d: 1440,
        previous=lambda d: d - timedelta(days=1),
        ordinal=lambda d: (d - epoch).days,
    )


def fx_calendar() -> Calendar:
    def session_of(us: int) -> date | None:
        local = _utc(us).astimezone(NY).replace(tzinfo=None)
        day = (local + timedelta(hours=7)).date()  # 17:00 New York starts the next day's session
        return day if day.weekday() < 5 else None

    def roll(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, 17, tzinfo=NY)

    def expected(d: date) -> int:
        return int((roll(d) - roll(d - timedelta(days=1))).total_seconds() // 60)

    def previous(d: date) -> date:
        d -= timedelta(days=1)
        while d.weekday() >= 5:
            d -= timedelta(days=1)
        return d

    def ordinal(d: date) -> int:
        return int(np.busday_count(np.datetime64("1970-01-01"), np.datetime64(d)))

    return Calendar(session_of, expected, previous, ordinal)


def xnys_calendar(first: date, last: date) -> Calendar:
    pad = timedelta(days=10)
    cal = xcals.get_calendar("XNYS", start=str(first - pad), end=str(last + pad))
    sched = cal.schedule
    days = [ts.date() for ts in sched.index]
    bounds = {
        d: (int(o.value // 1000), int(c.value // 1000))
        for d, o, c in zip(days, sched["open"], sched["close"], strict=True)
    }
    index = {d: i for i, d in enumerate(days)}

    def session_of(us: int) -> date | None:
        day = _utc(us).astimezone(NY).date()
        b = bounds.get(day)
        return day if b is not None and b[0] <= us < b[1] else None

    return Calendar(
        session_of=session_of,
        expected=lambda d: (bounds[d][1] - bounds[d][0]) // 60_000_000,
        previous=lambda d: days[index[d] - 1],
        ordinal=lambda d: index[d],
    )


def reference_jump_count(a: np.ndarray) -> int:
    """Returns with |r_i| > 4 sigma_i, sigma_i^2 = (pi/2) mean |r_j||r_{j-1}| over the previous window."""
    n = len(a)
    pair = a[1:] * a[:-1]  # pair[j - 1] = |r_j||r_{j-1}|, j = 1..n-1
    width = JUMP_WINDOW - 1
    sums = np.full(n, np.nan)
    counts = np.zeros(n, dtype=int)
    for i in range(2, min(n, JUMP_WINDOW)):  # short windows at the start of the session
        sums[i], counts[i] = pair[: i - 1].sum(), i - 1
    if n > JUMP_WINDOW:  # full windows: pairs j = i-59 .. i-1, i.e. pair[i-60 : i-1]
        windows = np.lib.stride_tricks.sliding_window_view(pair, width)  # windows[k] = pair[k:k+width]
        deep = np.arange(JUMP_WINDOW, n)
        sums[deep] = windows[deep - JUMP_WINDOW].sum(axis=1)
        counts[deep] = width
    jumps = 0
    for i in range(n):
        if counts[i] >= JUMP_MIN_PAIRS:
            sigma = math.sqrt(math.pi / 2 * (sums[i] / counts[i]))
            jumps += int(sigma > 0 and a[i] > JUMP_THRESHOLD * sigma)
    return jumps


def reference_features(bars: pl.DataFrame, cal: Calendar) -> dict[date, dict[str, float | int | None]]:
    ts = bars["ts"].dt.epoch("us").to_numpy()
    o, h, lo, c, v = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    # Session per bar; stamps of one UTC hour share the New York offset, so look each hour up once.
    cache: dict[int, date | None] = {}
    sessions: list[date | None] = []
    for t in ts:
        key = int(t // 60_000_000)  # cache per minute (XNYS bounds are minute-exact)
        if key not in cache:
            cache[key] = cal.session_of(int(t))
        sessions.append(cache[key])
    groups: dict[date, list[int]] = {}
    for i, s in enumerate(sessions):
        if s is not None:
            groups.setdefault(s, []).append(i)

    mu1 = math.sqrt(2 / math.pi)
    mu43 = 2 ** (2 / 3) * math.gamma(7 / 6) / math.gamma(0.5)
    theta = mu1**-4 + 2 * mu1**-2 - 5
    out: dict[date, dict[str, float | int | None]] = {}
    for day, idx_list in sorted(groups.items()):
        idx = np.array(sorted(idx_list, key=lambda i: ts[i]))
        oo, cc = o[idx], c[idx]
        n = len(idx)
        r = np.empty(n)
        r[0] = math.log(cc[0] / oo[0])
        r[1:] = np.log(cc[1:] / cc[:-1])
        a = np.abs(r)
        rv = float(np.sum(r * r))
        bv = math.pi / 2 * float(np.sum(a[1:] * a[:-1]))
        a43 = a ** (4 / 3)
        tri = float(np.sum(a43[2:] * a43[1:-1] * a43[:-2]))
        tq = n * mu43**-3 * (n / (n - 2)) * tri if n >= 3 else None
        z = None
        if n >= 3 and rv > 0 and bv > 0:
            assert tq is not None
            z = ((rv - bv) / rv) / math.sqrt(theta / n * max(1.0, tq / bv**2))
        jumps = reference_jump_count(a)
        expected = cal.expected(day)
        out[day] = {
            "open": float(oo[0]),
            "close": float(cc[-1]),
            "high": float(h[idx].max()),
            "low": float(lo[idx].min()),
            "volume": float(v[idx].sum()),
            "n_bars": n,
            "expected_bars": expected,
            "coverage": min(1.0, n / expected),
            "ret_oc": math.log(cc[-1] / oo[0]),
            "rv": rv,
            "bv": bv,
            "jv": max(rv - bv, 0.0),
            "rq": n / 3 * float(np.sum(r**4)),
            "tq": tq,
            "rs_pos": float(np.sum(r[r > 0] ** 2)),
            "rs_neg": float(np.sum(r[r < 0] ** 2)),
            "bns_z": z,
            "bns_p": None if z is None else float(norm.sf(z)),
            "jump_count": jumps,
        }
    for day, row in out.items():
        prev = out.get(cal.previous(day))
        row["ret_cc"] = None if prev is None else math.log(float(row["close"]) / float(prev["close"]))  # type: ignore[arg-type]
        row["ret_overnight"] = None if prev is None else math.log(float(row["open"]) / float(prev["close"]))  # type: ignore[arg-type]
        me = cal.ordinal(day)
        for name, window, need in (("rv_w", 5, 4), ("rv_m", 22, 18)):
            vals = [float(x["rv"]) for d, x in out.items() if me - window < cal.ordinal(d) <= me]  # type: ignore[arg-type]
            row[name] = sum(vals) / len(vals) if len(vals) >= need else None
    return out


def assert_matches(ours: pl.DataFrame, ref: dict[date, dict[str, float | int | None]]) -> None:
    assert ours["session_date"].to_list() == sorted(ref)
    columns = [c for c in next(iter(ref.values()))]
    for col in columns:
        got = ours[col].to_list()
        want = [ref[d][col] for d in sorted(ref)]
        assert [g is None for g in got] == [w is None for w in want], col
        pairs = [(g, w) for g, w in zip(got, want, strict=True) if g is not None]
        if col in ("n_bars", "expected_bars", "jump_count"):
            assert [g for g, _ in pairs] == [w for _, w in pairs], col
            continue
        g_arr = np.array([g for g, _ in pairs], dtype=float)
        w_arr = np.array([w for _, w in pairs], dtype=float)
        if col in TOLERANCE:
            # RV - BV cancels where RV ~ BV: judge these at 1e-12 of the scale of their inputs.
            allowed = TOLERANCE[col](ref, [d for d in sorted(ref) if ref[d][col] is not None])
            assert np.all(np.abs(g_arr - w_arr) <= allowed), (col, np.max(np.abs(g_arr - w_arr) / allowed))
        else:
            np.testing.assert_allclose(g_arr, w_arr, rtol=1e-12, atol=0, err_msg=col)


def _z_scale(ref: dict[date, dict[str, float | int | None]], days: list[date]) -> np.ndarray:
    return np.array([max(1.0, abs(float(ref[d]["bns_z"]))) for d in days])  # type: ignore[arg-type]


TOLERANCE: dict[str, Callable[[dict[date, dict[str, float | int | None]], list[date]], np.ndarray]] = {
    # jv = max(RV - BV, 0): absolute error 1e-12 * RV.
    "jv": lambda ref, days: 1e-12 * np.array([float(ref[d]["rv"]) for d in days]),  # type: ignore[arg-type]
    # z is a standardized statistic: absolute error 1e-12 * max(1, |z|).
    "bns_z": lambda ref, days: 1e-12 * _z_scale(ref, days),
    # p = sf(z): an error dz moves p by pdf(z) dz; allow that, or 1e-12 relative.
    "bns_p": lambda ref, days: (
        1e-12
        * np.maximum(
            np.array([float(ref[d]["bns_p"]) for d in days]),  # type: ignore[arg-type]
            norm.pdf([float(ref[d]["bns_z"]) for d in days]) * _z_scale(ref, days),  # type: ignore[arg-type]
        )
    ),
}


# --------------------------------------------------------------------------------------------------


def test_btc_perp_ftx_matches_reference() -> None:
    bars = load("btc_perp_1m_ftx_202201", "ftx", "BTC-PERP")
    ours = build_daily_features(bars, "24x7", "1m")
    ref = reference_features(bars, crypto_calendar())
    assert_matches(ours, ref)
    # 2021-12-31 starts at 23:01 and 2022-02-01 ends at 05:31: both partial and flagged.
    flagged = ours.filter(pl.col("low_coverage"))["session_date"].to_list()
    assert flagged == [date(2021, 12, 31), date(2022, 2, 1)]
    print(
        f"BTC-PERP: {ours.height} sessions, mean jumps/day {ours['jump_count'].mean():.2f}, "
        f"BNS p<1% on {(ours['bns_p'] < 0.01).sum()} days"
    )


def test_eurusd_histdata_matches_reference() -> None:
    bars = load("eurusd_m1_histdata_2017h1", "histdata", "EURUSD")
    assignment = assign_sessions(bars, "fx", "1m")
    ours = build_daily_features(bars, "fx", "1m")
    ref = reference_features(bars, fx_calendar())
    assert_matches(ours, ref)
    kept = sum(int(r["n_bars"]) for r in ref.values())  # type: ignore[arg-type]
    # Read as New York local time, every bar falls inside an FX session: none in the weekend close.
    assert assignment.dropped_weekend == bars.height - kept == 0
    assert ours["session_date"].dt.weekday().max() <= 5
    # Spans the March 2017 switch: the sessions around it are complete (HistData gaps aside).
    around = ours.filter(pl.col("session_date").is_in([date(2017, 3, 10), date(2017, 3, 13)]))
    assert around["expected_bars"].to_list() == [1440, 1440]
    print(
        f"EURUSD: {ours.height} sessions, {assignment.dropped_weekend} bars in the weekend close, "
        f"{ours['low_coverage'].sum()} low-coverage sessions"
    )


def test_spy_ninjatrader_matches_reference() -> None:
    bars = load("spy_1m_ninjatrader_2011", "ninjatrader", "SPY")
    dates = bars["ts"].dt.date()
    first, last = dates.min(), dates.max()
    assert isinstance(first, date) and isinstance(last, date)
    assignment = assign_sessions(bars, "XNYS", "1m")
    ours = build_daily_features(bars, "XNYS", "1m")
    ref = reference_features(bars, xnys_calendar(first, last))
    assert_matches(ours, ref)
    assert assignment.dropped_extended > 0 and assignment.dropped_closed == 0
    # Bar-end stamps moved to bar start: the first regular bar of 2011-03-14 (EDT) starts 13:30 UTC.
    day = assignment.bars.filter(pl.col("session_date") == date(2011, 3, 14))
    assert day["ts"].min() == datetime(2011, 3, 14, 13, 30, tzinfo=UTC)
    assert ours.filter(pl.col("session_date") == date(2011, 1, 17)).height == 0  # MLK day
    print(f"SPY: {ours.height} sessions, {assignment.dropped_extended} extended-hours bars set aside")
