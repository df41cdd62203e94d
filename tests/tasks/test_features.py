"""Daily features: hand-computed sessions, coverage, no look-ahead, resampling, BNS, the warehouse."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.schema import BAR_SCHEMA, CROSS_ASSET_SCHEMA, DAILY_FEATURES_SCHEMA, FEATURE_SET_VERSION
from tasks.calendars import assign_sessions
from tasks.features import build_daily_features, cross_asset_features, intraday_returns
from warehouse.db import connect
from warehouse.features import read_cross_asset, read_features, write_cross_asset, write_features


def bars_from(
    stamps: list[datetime],
    closes: list[float],
    opens: list[float] | None = None,
    *,
    symbol: str = "X",
    interval: str = "1m",
) -> pl.DataFrame:
    """Bars whose open is the previous close (or ``opens``), high/low bracketing open and close."""
    if opens is None:
        opens = [closes[0] / 1.001, *closes[:-1]]
    n = len(stamps)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "interval": [interval] * n,
            "ts": stamps,
            "open": opens,
            "high": [max(o, c) * 1.0005 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) / 1.0005 for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [float(i + 1) for i in range(n)],
            "source": ["test"] * n,
        },
        schema=BAR_SCHEMA,
    )


def random_walk_days(
    days: int, *, seed: int = 0, start: date = date(2021, 1, 4), interval_minutes: int = 60, symbol: str = "X"
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    per_day = 1440 // interval_minutes
    n = days * per_day
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    stamps = [t0 + timedelta(minutes=interval_minutes * i) for i in range(n)]
    closes = list(100.0 * np.exp(np.cumsum(0.002 * rng.standard_normal(n))))
    return bars_from(
        stamps,
        closes,
        symbol=symbol,
        interval=f"{interval_minutes // 60}h" if interval_minutes % 60 == 0 else f"{interval_minutes}m",
    )


# --------------------------------------------------------------------------------------------------
# A three-bar session computed by hand


def test_three_bar_session_by_hand() -> None:
    t0 = datetime(2021, 6, 1, 10, tzinfo=UTC)
    stamps = [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2)]
    opens, closes = [100.0, 101.0, 99.0], [101.0, 99.0, 100.5]
    bars = bars_from(stamps, closes, opens, interval="1h")
    row = build_daily_features(bars, "24x7", "1h").row(0, named=True)

    r = [math.log(101 / 100), math.log(99 / 101), math.log(100.5 / 99)]
    rv = sum(x * x for x in r)
    bv = math.pi / 2 * (abs(r[1]) * abs(r[0]) + abs(r[2]) * abs(r[1]))
    mu43 = 2 ** (2 / 3) * math.gamma(7 / 6) / math.gamma(1 / 2)
    tq = 3 * mu43**-3 * (3 / 1) * (abs(r[0]) * abs(r[1]) * abs(r[2])) ** (4 / 3)
    theta = (math.pi / 2) ** 2 + math.pi - 5
    z = ((rv - bv) / rv) / math.sqrt(theta / 3 * max(1.0, tq / bv**2))

    assert row["n_bars"] == row["n_returns"] == 3
    assert (row["open"], row["close"], row["high"], row["low"]) == pytest.approx(
        (100.0, 100.5, 101.0 * 1.0005, 99.0 / 1.0005)
    )
    assert row["volume"] == 6.0
    assert row["ret_oc"] == pytest.approx(math.log(100.5 / 100), rel=1e-14)
    assert sum(r) == pytest.approx(row["ret_oc"], rel=1e-12)
    assert row["ret_cc"] is None and row["ret_overnight"] is None  # no previous session
    assert row["rv"] == pytest.approx(rv, rel=1e-14)
    assert row["rv_d"] == row["rv"]
    assert row["bv"] == pytest.approx(bv, rel=1e-14)
    assert row["jv"] == pytest.approx(max(rv - bv, 0.0), rel=1e-12)
    assert row["rs_pos"] == pytest.approx(r[0] ** 2 + r[2] ** 2, rel=1e-14)
    assert row["rs_neg"] == pytest.approx(r[1] ** 2, rel=1e-14)
    assert row["rq"] == pytest.approx(3 / 3 * sum(x**4 for x in r), rel=1e-14)
    assert row["tq"] == pytest.approx(tq, rel=1e-12)
    assert row["bns_z"] == pytest.approx(z, rel=1e-12)
    assert row["bns_p"] == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert row["expected_bars"] == 24
    assert row["coverage"] == pytest.approx(3 / 24)
    assert row["low_coverage"] is True
    assert row["jump_count"] == 0
    assert row["sampling_interval"] == "1h"
    assert row["session_end"] == datetime(2021, 6, 2, tzinfo=UTC)
    assert row["rv_w"] is None and row["rv_m"] is None


def test_output_schema_and_two_symbols_do_not_mix() -> None:
    a = random_walk_days(3, seed=1, symbol="A")
    b = random_walk_days(3, seed=2, symbol="B")
    both = build_daily_features(pl.concat([b, a]), "24x7", "1h")
    assert dict(both.schema) == DAILY_FEATURES_SCHEMA
    alone = build_daily_features(a, "24x7", "1h")
    assert both.filter(pl.col("symbol") == "A").equals(alone)
    assert both.height == 6


def test_cross_session_returns_and_identity() -> None:
    bars = random_walk_days(6, seed=3)
    # Drop day 4 entirely: day 5's ret_cc and overnight return must be null, not a 2-day return.
    bars = bars.filter(pl.col("ts").dt.date() != date(2021, 1, 7))
    daily = build_daily_features(bars, "24x7", "1h").sort("session_date")
    prev_close = daily["close"].shift(1)
    by_day = {d: i for i, d in enumerate(daily["session_date"].to_list())}
    assert daily["ret_cc"][by_day[date(2021, 1, 8)]] is None
    assert daily["ret_overnight"][by_day[date(2021, 1, 8)]] is None
    i = by_day[date(2021, 1, 6)]
    assert daily["ret_cc"][i] == pytest.approx(math.log(daily["close"][i] / prev_close[i]), rel=1e-13)
    ok = daily.drop_nulls("ret_cc")
    np.testing.assert_allclose(ok["ret_cc"], ok["ret_overnight"] + ok["ret_oc"], rtol=1e-10, atol=1e-16)


def test_equity_overnight_return_uses_regular_closes() -> None:
    # Two XNYS sessions (EST, 14:30-21:00 UTC) with a pre-market bar that must not count.
    d1 = [datetime(2021, 3, 1, 14, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(3)]
    d2 = [datetime(2021, 3, 2, 12, 0, tzinfo=UTC)] + [
        datetime(2021, 3, 2, 14, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(3)
    ]
    bars = bars_from(
        d1 + d2,
        [100.0, 100.2, 100.4, 90.0, 101.0, 101.1, 101.2],
        [100.0, 100.0, 100.2, 90.0, 100.9, 101.0, 101.1],
    )
    daily = build_daily_features(bars, "XNYS", "1m")
    second = daily.row(1, named=True)
    assert second["n_bars"] == 3
    assert second["open"] == 100.9
    assert second["ret_overnight"] == pytest.approx(math.log(100.9 / 100.4), rel=1e-13)
    assert second["ret_cc"] == pytest.approx(math.log(101.2 / 100.4), rel=1e-13)
    assert second["expected_bars"] == 390
    ext = build_daily_features(bars, "XNYS", "1m", include_extended=True).row(1, named=True)
    assert ext["n_bars"] == 4 and ext["open"] == 90.0


def test_block_processing_never_splits_a_session(monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.features as features

    bars = pl.concat([random_walk_days(5, seed=20, symbol=s, interval_minutes=15) for s in ("A", "B")])
    whole = build_daily_features(bars, "24x7", "15m")
    monkeypatch.setattr(features, "_BLOCK_ROWS", 50)  # 96 bars a session: blocks of one session
    sampled = features._sampled(assign_sessions(bars, "24x7", "15m").bars, None, "15m")
    blocks = features._session_blocks(sampled)
    assert len(blocks) == 10
    assert all(b.select(pl.struct("symbol", "session_date").n_unique()).item() == 1 for b in blocks)
    blocked = build_daily_features(bars, "24x7", "15m")
    assert blocked.drop("bns_p").equals(whole.drop("bns_p"))
    np.testing.assert_allclose(blocked["bns_p"], whole["bns_p"], rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Coverage


def test_coverage_flag_threshold() -> None:
    bars = random_walk_days(1, seed=4)  # 24 hourly bars
    partial = bars.head(18)
    row = build_daily_features(partial, "24x7", "1h").row(0, named=True)
    assert (row["n_bars"], row["expected_bars"], row["coverage"]) == (18, 24, 0.75)
    assert row["low_coverage"] is True
    assert build_daily_features(partial, "24x7", "1h", coverage_threshold=0.7)["low_coverage"][0] is False
    full = build_daily_features(bars, "24x7", "1h").row(0, named=True)
    assert full["coverage"] == 1.0 and full["low_coverage"] is False
    with pytest.raises(ConfigError, match="coverage_threshold"):
        build_daily_features(bars, "24x7", "1h", coverage_threshold=1.5)


def test_coverage_clipped_with_extended_hours() -> None:
    day = [datetime(2021, 3, 1, 9, tzinfo=UTC) + timedelta(minutes=i) for i in range(12 * 60)]
    bars = bars_from(day, list(100 + 0.01 * np.arange(len(day))))
    row = build_daily_features(bars, "XNYS", "1m", include_extended=True).row(0, named=True)
    assert row["n_bars"] == 720 and row["expected_bars"] == 390 and row["coverage"] == 1.0


# --------------------------------------------------------------------------------------------------
# HAR inputs and jump detection use only the past


def test_har_inputs_use_only_past_sessions() -> None:
    bars = random_walk_days(40, seed=5)
    base = build_daily_features(bars, "24x7", "1h").sort("session_date")
    rv = base["rv"].to_numpy()
    for t in (4, 10, 21, 30, 39):
        assert base["rv_d"][t] == rv[t]
        assert base["rv_w"][t] == pytest.approx(rv[t - 4 : t + 1].mean(), rel=1e-12)
    assert base["rv_m"][21] == pytest.approx(rv[0:22].mean(), rel=1e-12)
    assert base["rv_m"][16] is None  # 17 of 22 sessions available, 18 needed
    assert base["rv_m"][17] == pytest.approx(rv[0:18].mean(), rel=1e-12)
    assert base["rv_w"][2] is None and base["rv_w"][3] == pytest.approx(rv[0:4].mean(), rel=1e-12)

    # Blow up the last 15 sessions: nothing at or before session 24 may move.
    cut = datetime(2021, 1, 4, tzinfo=UTC) + timedelta(days=25)
    bump = 1 + 0.05 * (pl.col("volume") % 3)
    shock = bars.with_columns(
        [
            pl.when(pl.col("ts") >= cut).then(pl.col(c) * bump).otherwise(pl.col(c))
            for c in ("open", "high", "low", "close")
        ]
    )
    moved = build_daily_features(shock, "24x7", "1h").sort("session_date")
    assert not moved["rv"][25:].equals(base["rv"][25:])
    assert moved.head(25).equals(base.head(25))


def test_har_with_missing_sessions() -> None:
    bars = random_walk_days(12, seed=6)
    one_gap = build_daily_features(bars.filter(pl.col("ts").dt.date() != date(2021, 1, 10)), "24x7", "1h")
    row = one_gap.filter(pl.col("session_date") == date(2021, 1, 12)).row(0, named=True)
    window = one_gap.filter(pl.col("session_date").is_between(date(2021, 1, 8), date(2021, 1, 12)))
    assert window.height == 4
    assert row["rv_w"] == pytest.approx(window["rv"].mean(), rel=1e-12)
    two_gaps = bars.filter(~pl.col("ts").dt.date().is_in([date(2021, 1, 10), date(2021, 1, 11)]))
    assert (
        build_daily_features(two_gaps, "24x7", "1h").filter(pl.col("session_date") == date(2021, 1, 12))[
            "rv_w"
        ][0]
        is None
    )


def test_jump_sigma_uses_only_earlier_bars() -> None:
    rng = np.random.default_rng(7)
    n = 400
    t0 = datetime(2021, 6, 1, tzinfo=UTC)
    stamps = [t0 + timedelta(minutes=i) for i in range(n)]
    closes = list(100 * np.exp(np.cumsum(0.0005 * rng.standard_normal(n))))
    base = intraday_returns(assign_sessions(bars_from(stamps, closes), "24x7", "1m").bars, jump_window=30)
    k = 200
    spiked_closes = closes[:k] + [c * 1.01 for c in closes[k:]]  # a +1% jump at bar k
    spiked = intraday_returns(
        assign_sessions(bars_from(stamps, spiked_closes), "24x7", "1m").bars, jump_window=30
    )
    # Bar k's own sigma ignores bar k: same as without the jump, and the jump is flagged.
    assert spiked["local_sigma"][k] == base["local_sigma"][k]
    assert spiked["is_jump"][k] and not base["is_jump"][k]
    # Nothing before bar k changes; the 29 returns after it see the jump in their window.
    assert spiked.head(k).equals(base.head(k))
    assert spiked["local_sigma"][k + 2] > base["local_sigma"][k + 2]
    # sigma at i equals (pi/2) mean |r_j||r_{j-1}| over pairs among the previous 30 returns.
    r = base["r"].to_numpy()
    i = 250
    pairs = [abs(r[j]) * abs(r[j - 1]) for j in range(i - 29, i)]
    assert base["local_sigma"][i] == pytest.approx(math.sqrt(math.pi / 2 * np.mean(pairs)), rel=1e-12)
    assert base["local_sigma"][9] is None and base["local_sigma"][11] is not None  # 10 pairs needed


def test_jump_count_per_session_unaffected_by_later_session() -> None:
    bars = random_walk_days(3, seed=8, interval_minutes=1)
    base = build_daily_features(bars, "24x7", "1m", jump_window=60)
    later = bars.with_columns(
        pl.when(pl.col("ts") >= datetime(2021, 1, 6, 0, 30, tzinfo=UTC))
        .then(pl.col("close") * 1.02)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    moved = build_daily_features(later, "24x7", "1m", jump_window=60)
    assert moved["jump_count"][2] >= 1
    assert moved.head(2).equals(base.head(2))


# --------------------------------------------------------------------------------------------------
# Resampling


def test_resample_matches_hand_built_coarse_bars() -> None:
    rng = np.random.default_rng(9)
    t0 = datetime(2021, 6, 1, 0, 3, tzinfo=UTC)  # starts mid-bucket: the first 5m bucket has 2 bars
    stamps = [t0 + timedelta(minutes=i) for i in range(1440 - 3)]
    stamps = [s for i, s in enumerate(stamps) if i % 7 != 3]  # gaps inside buckets
    closes = list(100 * np.exp(np.cumsum(0.001 * rng.standard_normal(len(stamps)))))
    fine = bars_from(stamps, closes)
    # Hand-built 5-minute bars: first open, last close per bucket.
    buckets: dict[datetime, list[int]] = {}
    for i, s in enumerate(stamps):
        buckets.setdefault(s.replace(minute=s.minute - s.minute % 5), []).append(i)
    coarse_rows = [(b, fine["open"][idx[0]], fine["close"][idx[-1]]) for b, idx in sorted(buckets.items())]
    coarse = bars_from(
        [b for b, _, _ in coarse_rows],
        [c for _, _, c in coarse_rows],
        [o for _, o, _ in coarse_rows],
        interval="5m",
    )
    resampled = build_daily_features(fine, "24x7", "1m", resample="5m").row(0, named=True)
    direct = build_daily_features(coarse, "24x7", "5m").row(0, named=True)
    for col in ("rv", "bv", "rq", "tq", "rs_pos", "rs_neg", "bns_z", "ret_oc"):
        assert resampled[col] == pytest.approx(direct[col], rel=1e-12), col
    assert resampled["n_returns"] == len(buckets)
    assert resampled["n_bars"] == len(stamps)
    assert resampled["expected_bars"] == 1440
    assert resampled["sampling_interval"] == "5m" and resampled["interval"] == "1m"
    with pytest.raises(ConfigError, match="resample"):
        build_daily_features(fine, "24x7", "1m", resample="7m")
    with pytest.raises(ConfigError, match="multiple"):
        build_daily_features(coarse, "24x7", "5m", resample="2m")


# --------------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_raises() -> None:
    bars = random_walk_days(1, seed=10)
    with pytest.raises(DataError, match="duplicate"):
        build_daily_features(pl.concat([bars, bars.head(2)]), "24x7", "1h")
    with pytest.raises(DataError, match="non-positive"):
        build_daily_features(bars.with_columns(pl.lit(0.0).alias("low")), "24x7", "1h")
    with pytest.raises(ConfigError, match="calendar"):
        build_daily_features(bars, "LSE?", "1h")
    with pytest.raises(ConfigError, match="jump_window"):
        build_daily_features(bars, "24x7", "1h", jump_window=2)
    with pytest.raises(DataError, match="interval"):
        build_daily_features(bars, "24x7", "1m")
    empty = build_daily_features(bars.head(0), "24x7", "1h")
    assert empty.height == 0 and dict(empty.schema) == DAILY_FEATURES_SCHEMA


# --------------------------------------------------------------------------------------------------
# BNS jump test on simulated jump-diffusion days


@pytest.mark.parametrize("resample", [None, "5m"])
def test_bns_flags_days_with_large_jumps(resample: str | None) -> None:
    from tasks.sources.synthetic import generate_bars

    # One year of 24x7 minutes: diffusion with stochastic volatility and a U-shaped intraday pattern,
    # about one jump every other day with |size| ~ 3% (daily diffusive sd ~ 3.1%). Every parameter pinned.
    sim = generate_bars(
        "SIM",
        date(2022, 1, 1),
        date(2023, 1, 1),
        "1m",
        seed=11,
        jump_intensity=0.5,
        jump_scale=0.03,
        base_vol=0.6,
        vol_of_vol=0.5,
        vol_half_life_days=5.0,
        seasonality=2.0,
    )
    daily = build_daily_features(sim.bars, "24x7", "1m", resample=resample)
    jump_days = sim.jumps.group_by(pl.col("ts").dt.date().alias("session_date")).agg(
        pl.col("size").abs().max().alias("biggest")
    )
    daily = daily.join(jump_days, on="session_date", how="left")
    flagged = pl.col("bns_p") < 0.01
    big = daily.filter(pl.col("biggest") >= 0.02)
    clean = daily.filter(pl.col("biggest").is_null())
    hit_rate = big.select(flagged.mean()).item()
    false_rate = clean.select(flagged.mean()).item()
    print(
        f"BNS 1% test, {resample or '1m'} returns: flagged {hit_rate:.1%} of {big.height} days "
        f"with a jump >= 2% and {false_rate:.1%} of {clean.height} days without a jump"
    )
    assert big.height >= 40 and clean.height >= 40
    assert hit_rate >= 0.70
    assert false_rate <= 0.10


# --------------------------------------------------------------------------------------------------
# Cross-asset correlations


def test_cross_asset_aligns_on_common_dates() -> None:
    crypto = random_walk_days(70, seed=12, symbol="BTC")  # every day
    weekdays = random_walk_days(70, seed=13, symbol="SPX").filter(pl.col("ts").dt.weekday() <= 5)
    daily = pl.concat(
        [build_daily_features(crypto, "24x7", "1h"), build_daily_features(weekdays, "24x7", "1h")]
    )
    out = cross_asset_features(daily, ["SPX", "BTC"], window=10, min_periods=8)
    assert dict(out.schema) == CROSS_ASSET_SCHEMA
    assert out["symbol_a"].unique().to_list() == ["BTC"] and out["symbol_b"].unique().to_list() == ["SPX"]
    assert out.select(pl.col("session_date").dt.weekday().max()).item() <= 5  # weekends pair with nothing
    common = (
        daily.filter(pl.col("symbol") == "BTC")
        .select("session_date", pl.col("ret_cc").alias("a"), pl.col("rv").log().alias("la"))
        .join(
            daily.filter(pl.col("symbol") == "SPX").select(
                "session_date", pl.col("ret_cc").alias("b"), pl.col("rv").log().alias("lb")
            ),
            on="session_date",
        )
        .sort("session_date")
    )
    assert out.height == common.height
    t = 30
    win = common.slice(t - 9, 10)
    rets = win.drop_nulls(["a", "b"])  # Mondays: SPX's previous (Sunday) session has no bars
    assert 8 <= rets.height < 10
    assert out["corr_ret"][t] == pytest.approx(np.corrcoef(rets["a"], rets["b"])[0, 1], rel=1e-9)
    assert out["corr_logrv"][t] == pytest.approx(np.corrcoef(win["la"], win["lb"])[0, 1], rel=1e-9)
    assert out["corr_ret"].head(7).null_count() == 7  # min_periods
    with pytest.raises(ConfigError, match="symbols"):
        cross_asset_features(daily, ["BTC"])
    with pytest.raises(DataError, match="no rows"):
        cross_asset_features(daily, ["BTC", "ETH"])


# --------------------------------------------------------------------------------------------------
# Warehouse round trip


def test_warehouse_replace_range_and_round_trip(tmp_path: Path) -> None:
    a = build_daily_features(random_walk_days(20, seed=14, symbol="A"), "24x7", "1h")
    b = build_daily_features(random_walk_days(20, seed=15, symbol="B"), "24x7", "1h")
    start, end = date(2021, 1, 4), date(2021, 1, 23)
    con = connect(tmp_path / "w.duckdb")
    try:
        assert write_features(con, a, "A", start, end) == 20
        assert write_features(con, a, "A", start, end) == 20  # a rerun replaces
        write_features(con, b, "B", start, end)
        assert read_features(con, ["A"]).equals(a)
        assert read_features(con, ["A", "B"]).height == 40
        # Replace a sub-range with fewer rows: exactly that range changes.
        sub = a.filter(pl.col("session_date").is_between(date(2021, 1, 10), date(2021, 1, 12)))
        write_features(con, sub.head(2), "A", date(2021, 1, 10), date(2021, 1, 12))
        back = read_features(con, "A")
        assert back.height == 19
        assert back.filter(pl.col("session_date") != date(2021, 1, 12)).equals(
            a.filter(pl.col("session_date") != date(2021, 1, 12))
        )
        assert read_features(con, ["A"], date(2021, 1, 5), date(2021, 1, 6)).height == 2
        assert read_features(con, ["A"], version="v0").height == 0
        with pytest.raises(DataError, match="partition"):
            write_features(con, a, "B", start, end)
        with pytest.raises(DataError, match="outside"):
            write_features(con, a, "A", start, date(2021, 1, 10))
        with pytest.raises(ConfigError, match="symbol"):
            read_features(con, ["A'; DROP TABLE features_daily; --"])
        assert read_features(con, ["A", "B"]).height == 39  # failed writes changed nothing
        # A constraint failure mid-transaction rolls the delete back too.
        broken = a.with_columns(pl.lit(None, pl.Float64).alias("rv"))
        with pytest.raises(duckdb.Error):
            write_features(con, broken, "A", start, end)
        assert read_features(con, ["A", "B"]).height == 39

        x = cross_asset_features(pl.concat([a, b]), ["A", "B"], window=5, min_periods=3)
        assert write_cross_asset(con, x, ["A", "B"], start, end, window=5) == 20
        assert write_cross_asset(con, x, ["A", "B"], start, end, window=5) == 20
        assert read_cross_asset(con, ["A", "B"]).equals(x)
        assert read_cross_asset(con, ["A", "B"], window=30).height == 0
        with pytest.raises(DataError, match="windows"):
            write_cross_asset(con, x, ["A", "B"], start, end, window=30)
        assert FEATURE_SET_VERSION == "v1"
    finally:
        con.close()


def test_a_write_from_another_interval_replaces_only_the_sessions_it_recomputes(tmp_path: Path) -> None:
    """Issue 14: an empty rebuild from 1m bars deleted the 1h sessions of a month without minute bars."""
    from warehouse.catalog import feature_intervals

    a = build_daily_features(random_walk_days(20, seed=14, symbol="A"), "24x7", "1h")
    start, end = date(2021, 1, 4), date(2021, 1, 23)
    con = connect(tmp_path / "w.duckdb")
    try:
        write_features(con, a, "A", start, end, interval="1h")
        write_features(con, a.head(0), "A", start, end, interval="1m")  # no minute bars at all
        assert read_features(con, "A").equals(a)
        minute = a.filter(pl.col("session_date") <= date(2021, 1, 8)).with_columns(
            pl.lit("1m").alias("interval")
        )
        write_features(con, minute, "A", start, end, interval="1m")  # minute bars for 5 sessions only
        back = read_features(con, "A")
        assert back.height == 20 and back.filter(pl.col("interval") == "1m").equals(minute)
        with pytest.raises(DataError, match=r"bar intervals \['1m'\]; this write is '1h'"):
            write_features(con, minute, "A", start, end, interval="1h")
        assert feature_intervals(con, "A", start, end) == [
            ("1m", date(2021, 1, 4), date(2021, 1, 8), 5),
            ("1h", date(2021, 1, 9), date(2021, 1, 23), 15),
        ]
        write_features(con, a.head(0), "A", start, end, interval="1h")  # same interval: disappears
        assert read_features(con, "A").height == 5
    finally:
        con.close()


def test_changing_a_symbol_s_interval_is_refused_unless_asked() -> None:
    from flows.preflight import check_interval_change

    stored = [("1h", date(2011, 1, 3), date(2011, 3, 31), 62)]
    check_interval_change("SPY", "1h", stored, replace=False)  # same interval: fine
    check_interval_change("SPY", "1m", stored, replace=True)  # asked for: fine
    with pytest.raises(
        ConfigError, match=r"SPY: .*62 sessions 2011-01-03..2011-03-31 from 1h bars.*--replace"
    ):
        check_interval_change("SPY", "1m", stored, replace=False)
