"""Regime shifts in the synthetic panel: level shifts carried by the HAR memory, fatter return tails,
each symbol on its own sessions, and no change at all without regimes."""

from __future__ import annotations

import hashlib
import math
from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy.stats import kurtosis

from core.errors import ConfigError
from tasks.calendars import sessions_between
from tasks.synthetic_panel import (
    CRISIS_REGIMES,
    PanelParams,
    PanelSymbol,
    Regime,
    default_symbols,
    oxfordman_csv,
    regime_preset,
    regimes_in_range,
    simple_csv,
    simulate_panel,
)

#: sha256 of the CSV texts of ``simulate_panel(default_symbols(3), 2019-01-01, 2020-12-31, seed=11)``,
#: taken from the code before regimes existed (commit 8d56360).
PINNED_SIMPLE = "f195a33ea85a99f52f0014d335c99e4c6d10da44fc464d359985ce371775403c"
PINNED_OXFORDMAN = "85c864ad155505e390dacc92afc4e40eb5837bf3cac0c420f74eafffb57e4a4b"
PIN_FIRST, PIN_LAST = date(2019, 1, 1), date(2020, 12, 31)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _unfactored(calendars: tuple[str, ...]) -> list[PanelSymbol]:
    """Symbols without the market factor, so a window's mean log RV is the symbol's own."""
    return [PanelSymbol(f"S{i}", cal, 0.18, 0.0) for i, cal in enumerate(calendars)]


def _in_regime(panel: pl.DataFrame, label: str) -> np.ndarray:
    return (panel["regime"] == label).fill_null(False).to_numpy()


@pytest.mark.parametrize(
    "regimes",
    [(), (Regime(date(1990, 1, 1), date(1995, 12, 31), level=2.0, t_df=3.0, name="long_before"),)],
)
def test_without_a_regime_in_range_the_output_is_the_one_pinned_before_regimes(
    regimes: tuple[Regime, ...],
) -> None:
    panel = simulate_panel(default_symbols(3), PIN_FIRST, PIN_LAST, PanelParams(regimes=regimes), seed=11)
    assert _sha(simple_csv(panel)) == PINNED_SIMPLE
    assert _sha(oxfordman_csv(panel)) == PINNED_OXFORDMAN
    assert panel["regime"].is_null().all()


def test_a_level_shift_ramps_up_through_the_har_memory_and_decays_after() -> None:
    specs = _unfactored(("XNYS", "24x7", "XHKG", "XLON"))
    regime = Regime(date(2004, 1, 1), date(2007, 12, 31), level=1.0, name="high")
    first, last = date(2000, 1, 1), date(2011, 12, 31)
    base = simulate_panel(specs, first, last, seed=0)
    shifted = simulate_panel(specs, first, last, PanelParams(regimes=(regime,)), seed=0)
    log_base, log_shifted = np.log(base["rv"].to_numpy()), np.log(shifted["rv"].to_numpy())
    days = shifted["date"]
    settled = ((days >= date(2004, 7, 1)) & (days <= date(2007, 12, 31))).to_numpy()  # after the ramp
    before = (days < date(2004, 1, 1)).to_numpy()
    later = (days >= date(2008, 7, 1)).to_numpy()  # six months after the end
    # The statistical claim: mean log RV is higher by about the level, and back to normal later.
    assert log_shifted[settled].mean() - log_shifted[before].mean() == pytest.approx(1.0, abs=0.2)
    assert log_shifted[later].mean() - log_shifted[before].mean() == pytest.approx(0.0, abs=0.2)
    # The same draws without the regime: the difference is the HAR response to the level alone.
    excess = log_shifted - log_base
    assert excess[settled].min() > 0.9 and excess.max() < 1.0 + 1e-9
    assert np.abs(excess[later]).max() < 0.06 and np.abs(excess[before]).max() == 0.0
    for symbol in ("S0", "S1"):
        rows = (shifted["symbol"] == symbol).to_numpy()
        inside = np.flatnonzero(rows & _in_regime(shifted, "high"))
        assert excess[inside[0]] == pytest.approx(0.1)  # a ramp, not a step: (1 - sum b) m on day 1
        assert np.all(np.diff(excess[inside[:120]]) > 0)  # rises through the regime's first months
        assert 0.4 < excess[inside[21]] < 0.55  # about half way after a month of sessions
        after = inside[-1] + 1
        assert 0.8 < excess[after] < excess[inside[-1]]  # and decays after it, not a step out
        assert np.all(np.diff(excess[after : after + 60]) < 0)


def test_a_ramped_regime_reaches_its_level_on_its_own_schedule_then_decays_through_the_har() -> None:
    specs = _unfactored(("XNYS", "XLON"))
    regime = Regime(date(2008, 9, 15), date(2009, 3, 31), level=1.5, ramp=10.0, name="fast")
    first, last = date(2007, 1, 1), date(2010, 12, 31)
    base = simulate_panel(specs, first, last, seed=3)
    shifted = simulate_panel(specs, first, last, PanelParams(regimes=(regime,)), seed=3)
    excess = np.log(shifted["rv"].to_numpy()) - np.log(base["rv"].to_numpy())
    for symbol in ("S0", "S1"):
        rows = (shifted["symbol"] == symbol).to_numpy()
        inside = np.flatnonzero(rows & _in_regime(shifted, "fast"))
        target = 1.5 * (1.0 - np.exp(-np.arange(1, inside.size + 1) / 10.0))
        assert excess[inside] == pytest.approx(target, abs=1e-9)  # 0.63 of the level after 10 sessions
        after = excess[inside[-1] + 1 : inside[-1] + 142]
        assert np.all(np.diff(after) < 0) and after[0] / 1.5 > 0.85  # no step out: the HAR decay
        assert 0.45 < after[21] / 1.5 < 0.6 and after[-1] / 1.5 < 0.05  # half left after a month


def test_returns_inside_a_t_df_regime_have_fatter_tails() -> None:
    specs = _unfactored(("24x7",) * 6)
    regime = Regime(date(2004, 1, 1), date(2007, 12, 31), level=0.0, t_df=3.5, name="fat")
    first, last = date(2002, 1, 1), date(2009, 12, 31)
    panel = simulate_panel(specs, first, last, PanelParams(regimes=(regime,)), seed=4)
    base = simulate_panel(specs, first, last, seed=4)
    inside = _in_regime(panel, "fat")
    z = (panel["ret"] / panel["rv"].sqrt()).to_numpy()
    z_base = (base["ret"] / base["rv"].sqrt()).to_numpy()
    assert kurtosis(z[inside]) > kurtosis(z[~inside]) + 4.0  # Student-t(3.5) inside, t(6) outside
    assert kurtosis(z[inside]) > kurtosis(z_base[inside]) + 4.0  # the same sessions without the regime
    # the regime's draws come from their own stream (the log RV after it differs, through the leverage)
    assert z[~inside] == pytest.approx(z_base[~inside], rel=1e-9)
    assert np.var(z[inside]) == pytest.approx(1.0, abs=0.25)  # still unit variance: RV stays E[ret^2]
    ret = panel["ret"].to_numpy()
    assert kurtosis(ret[inside]) > kurtosis(ret[~inside]) + 4.0


def test_each_symbol_gets_the_regime_on_its_own_sessions() -> None:
    calendars = ("XNYS", "24x7", "fx", "XTKS")
    regime = Regime(date(2020, 2, 24), date(2020, 4, 30), level=2.0, t_df=3.5, name="covid")
    first, last = date(2019, 1, 1), date(2020, 12, 31)
    panel = simulate_panel(_unfactored(calendars), first, last, PanelParams(regimes=(regime,)), seed=2)
    base = simulate_panel(_unfactored(calendars), first, last, seed=2)
    for i, calendar in enumerate(calendars):
        rows = panel.filter(pl.col("symbol") == f"S{i}")
        marked = rows.filter(pl.col("regime") == "covid")["date"].to_list()
        assert marked == sessions_between(calendar, regime.start, regime.end), calendar
        assert rows["regime"].null_count() == rows.height - len(marked)
        before = rows["date"] < regime.start
        same = base.filter(pl.col("symbol") == f"S{i}").filter(before)
        assert rows.filter(before).drop("regime").equals(same.drop("regime"))  # untouched before it
    weekend = panel.filter((pl.col("symbol") == "S1") & (pl.col("date") == date(2020, 3, 14)))
    assert weekend["regime"].to_list() == ["covid"]  # crypto's Saturday session is in it too


def test_the_crisis_preset_lifts_2008q4_and_2020_and_calms_2017() -> None:
    specs = default_symbols(3)  # New York, London, Frankfurt: calendars that cover 2005
    first, last = date(2005, 1, 1), date(2021, 12, 31)
    panel = simulate_panel(specs, first, last, PanelParams(regimes=CRISIS_REGIMES), seed=12)
    base = simulate_panel(specs, first, last, seed=12)

    def mean_log_rv(frame: pl.DataFrame, lo: date, hi: date) -> float:
        window = frame.filter(pl.col("date").is_between(lo, hi))
        return float(window["rv"].log().mean())  # type: ignore[arg-type]

    gap = [
        mean_log_rv(panel, lo, hi) - mean_log_rv(base, lo, hi)
        for lo, hi in [
            (date(2008, 10, 1), date(2008, 12, 31)),
            (date(2017, 4, 1), date(2017, 12, 31)),
            (date(2020, 3, 15), date(2020, 4, 30)),
        ]
    ]
    assert gap[0] > 1.0 and gap[1] < -0.3 and gap[2] > 1.4
    assert set(panel["regime"].drop_nulls().unique()) == {"gfc_2008", "calm_2017", "covid_2020"}


@pytest.mark.parametrize(
    ("regime", "field"),
    [
        (Regime(date(2020, 3, 1), date(2020, 2, 1), level=1.0), "end"),
        (Regime(date(2020, 1, 1), date(2020, 2, 1), level=math.nan), "level"),
        (Regime(date(2020, 1, 1), date(2020, 2, 1), level=math.inf), "level"),
        (Regime(date(2020, 1, 1), date(2020, 2, 1), level=1.0, t_df=2.0), "t_df"),
        (Regime(date(2020, 1, 1), date(2020, 2, 1), level=1.0, t_df=math.nan), "t_df"),
        (Regime(date(2020, 1, 1), date(2020, 2, 1), level=1.0, loading_scale=-1.0), "loading_scale"),
        (Regime(date(2020, 1, 1), date(2020, 2, 1), level=1.0, ramp=0.0), "ramp"),
        (Regime("2020-01-01", date(2020, 2, 1), level=1.0), "start"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_regime_is_refused_naming_the_field(regime: Regime, field: str) -> None:
    with pytest.raises(ConfigError, match=f" {field}="):
        simulate_panel(default_symbols(1), PIN_FIRST, PIN_LAST, PanelParams(regimes=(regime,)))


def test_overlapping_regimes_and_unknown_presets_are_refused() -> None:
    a = Regime(date(2020, 1, 1), date(2020, 3, 1), level=1.0, name="a")
    b = Regime(date(2020, 2, 1), date(2020, 4, 1), level=1.0, name="b")
    with pytest.raises(ConfigError, match="'a' and 'b' overlap"):
        PanelParams(regimes=(b, a)).check()
    with pytest.raises(ConfigError, match="choices: none, crisis"):
        regime_preset("panic")
    assert regime_preset("none") == () and regime_preset("crisis") == CRISIS_REGIMES


def test_regimes_outside_the_range_are_named_and_not_applied() -> None:
    applied, notes = regimes_in_range(CRISIS_REGIMES, date(2011, 1, 1), date(2020, 3, 31))
    assert [r.name for r in applied] == ["calm_2017", "covid_2020"]
    assert len(notes) == 2
    assert "gfc_2008" in notes[0] and "not applied" in notes[0]
    assert "covid_2020" in notes[1] and "partly" in notes[1]


def test_clipping_to_calendars_starts_a_symbol_where_its_calendar_does() -> None:
    specs = default_symbols(4)  # the fourth is Tokyo, whose calendar starts in December 2006
    with pytest.raises(ConfigError, match="outside calendar 'XTKS'"):
        simulate_panel(specs, date(2005, 1, 1), date(2008, 12, 31), seed=1)
    panel = simulate_panel(specs, date(2005, 1, 1), date(2008, 12, 31), seed=1, clip_to_calendars=True)
    firsts = dict(panel.group_by("symbol").agg(pl.col("date").min()).iter_rows())
    assert firsts["SYN_01"] < date(2005, 1, 10) and date(2006, 12, 1) <= firsts["SYN_04"] < date(2007, 1, 1)
    covered = simulate_panel(specs, date(2020, 1, 1), date(2020, 6, 30), seed=1)
    clipped = simulate_panel(specs, date(2020, 1, 1), date(2020, 6, 30), seed=1, clip_to_calendars=True)
    assert covered.equals(clipped)  # a covered range is the same either way
