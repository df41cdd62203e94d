"""The research plan's weekly event gates on constructed frames (tasks/event_gates.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.errors import DataError
from tasks.calendars import sessions_between
from tasks.event_gates import (
    GATES_SCHEMA,
    directional_accuracy,
    ensemble_lift,
    envelope_calibration,
    event_gates,
    event_sessions,
    gates_frame,
    load_directions,
    non_event_regression,
    walk_forward_sharpe,
)
from tasks.events import EVENTS_SCHEMA


def _events(rows: list[tuple[datetime, str, float | None]]) -> pl.DataFrame:
    """(UTC time, type, surprise z) -> an EVENTS_SCHEMA frame."""
    data = [
        {
            "event_ts": ts,
            "date": ts.date(),
            "type": kind,
            "name": kind,
            "currency": "USD",
            "scheduled": True,
            "actual": None,
            "forecast": None,
            "previous": None,
            "surprise": None,
            "surprise_z": z,
            "source": "test",
        }
        for ts, kind, z in rows
    ]
    return pl.DataFrame(data, schema=EVENTS_SCHEMA)


def _scored(
    sessions: list[date],
    *,
    model: str,
    symbol: str,
    asset_class: str,
    band: np.ndarray | float = 0.02,
    q50: np.ndarray | float = 0.0,
    ret: np.ndarray | float = 0.0,
) -> pl.DataFrame:
    n = len(sessions) - 1
    q50a = np.broadcast_to(np.asarray(q50, dtype=float), (n,))
    banda = np.broadcast_to(np.asarray(band, dtype=float), (n,))
    return pl.DataFrame(
        {
            "model": model,
            "symbol": symbol,
            "origin": sessions[:-1],
            "target": sessions[1:],
            "horizon": 1,
            "q10": q50a - banda / 2,
            "q50": q50a,
            "q90": q50a + banda / 2,
            "ret": np.broadcast_to(np.asarray(ret, dtype=float), (n,)),
            "asset_class": asset_class,
        }
    )


DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(90)]  # 24x7 sessions


def test_event_sessions_maps_release_to_target_session() -> None:
    # CPI 08:30 New York = 13:30 UTC on 2024-02-13: that XNYS session, and that UTC day for crypto.
    ev = _events([(datetime(2024, 2, 13, 13, 30, tzinfo=UTC), "CPI", 1.2)])
    xnys = sessions_between("XNYS", date(2024, 2, 1), date(2024, 2, 29))
    eq = _scored(xnys, model="m", symbol="SPY", asset_class="equity_index")
    cr = _scored(DAYS, model="m", symbol="BTC-USDT", asset_class="crypto")
    s = event_sessions(pl.concat([eq, cr]), ev)
    flagged = s.filter(pl.col("ev_cpi") == 1).select("symbol", "target").rows()
    assert sorted(flagged) == [("BTC-USDT", date(2024, 2, 13)), ("SPY", date(2024, 2, 13))]
    assert s.filter(pl.col("ev_cpi") == 1)["z_cpi"].to_list() == [1.2, 1.2]
    assert s["any_event"].sum() == 2 and s["ev_fomc"].sum() == 0


def test_envelope_ratio_on_constructed_frame() -> None:
    event_days = [date(2024, 1, 31), date(2024, 3, 20)]
    ev = _events([(datetime(d.year, d.month, d.day, 19, 0, tzinfo=UTC), "FOMC", None) for d in event_days])
    targets = np.array(DAYS[1:])
    band = np.where(np.isin(targets, event_days), 0.04, 0.02)
    band = np.where(targets == date(2024, 2, 20), 10.0, band)  # far from any event: not a control day
    sc = _scored(DAYS, model="quantile_event", symbol="BTC-USDT", asset_class="crypto", band=band)
    s = event_sessions(sc, ev)
    res = {r.scope: r for r in envelope_calibration(sc, s, model="quantile_event")}
    fomc = res["FOMC"]
    assert fomc.figure == pytest.approx(2.0) and fomc.passed is True and fomc.n == 2
    assert fomc.detail["per_symbol"]["BTC-USDT"]["control_days"] == 14 + 14  # +-7 days around each event day
    assert res["CPI"].passed is None and res["CPI"].note == "no event days"
    # The ratio is scale-free: shrinking every band by 10% leaves it at 2.
    narrow = sc.with_columns((pl.col("q10") + (pl.col("q90") - pl.col("q10")) * 0.1).alias("q10"))
    low = {r.scope: r for r in envelope_calibration(narrow, s, model="quantile_event")}["FOMC"]
    assert low.figure is not None and low.figure == pytest.approx(2.0) and low.passed is True
    flat = _scored(DAYS, model="quantile_event", symbol="BTC-USDT", asset_class="crypto", band=0.02)
    assert envelope_calibration(flat, s, model="quantile_event")[0].passed is False


def _surprise_case(z: list[float], shift: list[float]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Equity CPI releases on XNYS days with surprise z; event model q50 = base + shift on the next origin."""
    xnys = sessions_between("XNYS", date(2024, 1, 2), date(2024, 6, 28))
    days = [xnys[10], xnys[40], xnys[70], xnys[100]][: len(z)]
    ev = _events(
        [
            (datetime(d.year, d.month, d.day, 12, 30, tzinfo=UTC), "CPI", zz)
            for d, zz in zip(days, z, strict=True)
        ]
    )
    base = _scored(xnys, model="quantile", symbol="SPY", asset_class="equity", q50=0.001)
    origins = np.array(xnys[:-1])
    q50e = np.full(len(origins), 0.001)
    for d, sh in zip(days, shift, strict=True):
        q50e[origins == d] += sh  # origin = session of the release: first prediction that knows it
    event = _scored(xnys, model="quantile_event", symbol="SPY", asset_class="equity", q50=q50e)
    return pl.concat([base, event]), ev


def test_directional_accuracy_constructed_case() -> None:
    # CPI beat (z > 0) is bearish for equities (direction -1): expected sign = -sign(z).
    scored, ev = _surprise_case(z=[1.0, -2.0, 0.3, 0.8], shift=[-0.002, -0.002, 0.002, -0.001])
    s = event_sessions(scored, ev)
    table = load_directions()
    res = directional_accuracy(
        scored, s, event_model="quantile_event", base_model="quantile", directions=table
    )
    # Qualifying: z=1.0 (expected -1, shift -1: right), z=-2 (expected +1, shift -1: wrong), z=0.8 (right).
    assert res.n == 3 and res.figure == pytest.approx(2 / 3) and res.passed is True
    assert res.detail["per_type"]["CPI"]["n"] == 3
    flipped = {k: -v for k, v in table.items()}
    res2 = directional_accuracy(
        scored, s, event_model="quantile_event", base_model="quantile", directions=flipped
    )
    assert res2.figure == pytest.approx(1 / 3) and res2.passed is False


def test_directional_accuracy_no_qualifying_events() -> None:
    scored, ev = _surprise_case(z=[0.3, -0.4], shift=[-0.002, 0.002])
    res = directional_accuracy(
        scored,
        event_sessions(scored, ev),
        event_model="quantile_event",
        base_model="quantile",
        directions=load_directions(),
    )
    assert res.n == 0 and res.figure is None and res.passed is None and res.note == "no qualifying events"


def test_non_event_regression() -> None:
    rng = np.random.default_rng(0)
    ret = rng.normal(0, 0.01, len(DAYS) - 1)
    q = rng.normal(0, 0.003, len(DAYS) - 1)
    ev_day = date(2024, 2, 1)
    ev = _events([(datetime(2024, 2, 1, 19, tzinfo=UTC), "FOMC", None)])
    base = _scored(DAYS, model="quantile", symbol="BTC-USDT", asset_class="crypto", q50=q, ret=ret)
    # Event model differs only on the event day: quiet days identical -> pass.
    q_ev = np.where(np.array(DAYS[1:]) == ev_day, q + 0.05, q)
    same = _scored(DAYS, model="quantile_event", symbol="BTC-USDT", asset_class="crypto", q50=q_ev, ret=ret)
    s = event_sessions(pl.concat([base, same]), ev)
    mae, direc = non_event_regression(
        pl.concat([base, same]), s, event_model="quantile_event", base_model="quantile"
    )
    assert mae.ship_stop and mae.figure == 0.0 and mae.passed is True and mae.n == len(DAYS) - 2
    assert direc.figure == 0.0 and direc.passed is True
    # Worse on quiet days -> ship-stop fails.
    worse = _scored(DAYS, model="quantile_event", symbol="BTC-USDT", asset_class="crypto", q50=-q, ret=ret)
    mae2, dir2 = non_event_regression(
        pl.concat([base, worse]), s, event_model="quantile_event", base_model="quantile"
    )
    e = np.abs(-q - ret)[np.array(DAYS[1:]) != ev_day].mean()
    b = np.abs(q - ret)[np.array(DAYS[1:]) != ev_day].mean()
    assert mae2.figure == pytest.approx(abs(e - b) / b)
    assert dir2.figure is not None and dir2.figure > 2 and dir2.passed is False


def _metrics(rows: list[tuple[str, str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"model": pl.String, "symbol": pl.String, "sharpe": pl.Float64}, orient="row"
    )


def test_walk_forward_sharpe_and_ensemble_lift() -> None:
    m = _metrics(
        [
            ("quantile", "SPY", 0.5),
            ("quantile_event", "SPY", 0.7),
            ("har", "SPY", 0.9),
            ("ensemble", "SPY", 0.95),
            ("quantile", "BTC", 0.2),
            ("quantile_event", "BTC", 0.1),
            ("har", "BTC", 0.1),
            ("ensemble", "BTC", 0.4),
        ]
    )
    wf = walk_forward_sharpe(m, event_model="quantile_event", base_model="quantile")
    assert wf.figure == pytest.approx(0.05) and wf.passed is True and wf.n == 2
    lift = {r.scope: r for r in ensemble_lift(m)}
    assert lift["SPY"].passed is False and "fell back" not in lift["SPY"].note
    assert lift["SPY"].detail["best_single"] == "har"
    assert lift["SPY"].figure == pytest.approx(0.05)
    assert lift["BTC"].passed is True and lift["BTC"].figure == pytest.approx(0.2)
    # Without an ensemble the gate says so once; it never names a model the ensemble "serves".
    (absent,) = ensemble_lift(m.filter(pl.col("model") != "ensemble"))
    assert absent.scope == "all" and absent.passed is None and absent.note == "model ensemble not scored"
    none = walk_forward_sharpe(m, event_model="x", base_model="quantile")
    assert none.passed is None and none.n == 0


def test_load_directions(tmp_path: Path) -> None:
    table = load_directions()
    assert table[("CPI", "equity")] == -1 and table[("NFP", "equity")] == 1
    path = tmp_path / "dir.csv"
    path.write_text("type,asset_class,direction\ncpi,Equity,1\n")
    assert load_directions(path) == {("CPI", "equity"): 1}
    path.write_text("type,asset_class,direction\nCPI,equity,2\n")
    with pytest.raises(DataError, match="direction"):
        load_directions(path)
    with pytest.raises(DataError, match="not found"):
        load_directions(tmp_path / "missing.csv")


def test_event_gates_end_to_end() -> None:
    scored, ev = _surprise_case(z=[1.0, -2.0], shift=[-0.002, 0.002])
    m = _metrics([("quantile", "SPY", 0.5), ("quantile_event", "SPY", 0.4)])
    results = event_gates(scored, ev, m)
    tests = [r.test for r in results]
    assert tests[:3] == ["envelope_calibration"] * 3
    assert tests[3:] == [
        "directional_accuracy",
        "non_event_mae",
        "non_event_direction",
        "walk_forward_sharpe",
        "ensemble_lift",
    ]
    by = {(r.test, r.scope): r for r in results}
    assert by[("directional_accuracy", "all")].figure == 1.0
    assert by[("walk_forward_sharpe", "all")].passed is False
    assert by[("ensemble_lift", "all")].passed is None and "serve" not in by[("ensemble_lift", "all")].detail
    frame = gates_frame(results)
    assert frame.columns == list(GATES_SCHEMA) and frame.height == len(results)
    missing = event_gates(scored.filter(pl.col("model") == "quantile"), ev, m)
    assert all(
        r.passed is None for r in missing if r.test != "walk_forward_sharpe" and r.test != "ensemble_lift"
    )
