"""Targets past the end of the data come from the instrument's calendar, never from a weekday guess.

A fold's last origin is the last row a model sees, so its target lies past the data. Dated by the
next weekday, a forecast made before a holiday landed on a non-session and was dropped from scoring,
and for a market with occasional Saturday sessions (Mumbai) every Friday origin got a Saturday target.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from tasks.calendars import sessions_between
from tasks.models.base import ModelData, get_model
from tasks.realized_features import realized_daily_features

MODELS = ("har", "ewma", "prob_lstm")
FAST = {"prob_lstm": {"epochs": 1, "hidden": 4, "window": 5}}


def _realized(symbol: str, calendar: str, last: date, extra_days: tuple[date, ...] = ()) -> pl.DataFrame:
    """About 400 sessions of realized measures of ``symbol`` ending at ``last`` (seeded noise)."""
    days = sorted({*sessions_between(calendar, last - timedelta(days=600), last), *extra_days})
    rng = np.random.default_rng(7)
    rv = np.exp(-9.5 + 0.4 * rng.standard_normal(len(days)))
    ret = np.sqrt(rv) * rng.standard_normal(len(days))
    return pl.DataFrame(
        {"symbol": symbol, "date": days, "source": "simple", "rv": rv, "ret": ret, "close_price": 100.0}
    )


def _features(symbol: str, calendar: str, last: date, extra: tuple[date, ...] = ()) -> pl.DataFrame:
    daily, _ = realized_daily_features(_realized(symbol, calendar, last, extra), calendar)
    return daily


def _target(model: str, data: ModelData, origin: date) -> date:
    fitted = get_model(model, **FAST.get(model, {})).fit(data, origin - timedelta(days=60))
    out = fitted.predict(data, [origin])
    assert out.height == 1
    return out["target"][0]


@pytest.mark.parametrize("model", MODELS)
def test_a_forecast_before_a_holiday_targets_the_next_real_session(model: str) -> None:
    # 2021-07-02 is a Friday; Monday 2021-07-05 is the NYSE's Independence Day holiday.
    feats = _features("SPX", "XNYS", date(2021, 7, 2))
    registered = ModelData(feats, calendars={"SPX": "XNYS"})
    assert _target(model, registered, date(2021, 7, 2)) == date(2021, 7, 6)
    guessed = ModelData(feats)  # no registry: the old weekday guess, kept only for in-memory use
    assert _target(model, guessed, date(2021, 7, 2)) == date(2021, 7, 5)


@pytest.mark.parametrize("model", MODELS)
def test_a_friday_origin_in_mumbai_targets_monday_not_saturday(model: str) -> None:
    # Oxford-Man's .NSEI has a few special Saturday sessions (2020-02-01 was one, budget day).
    feats = _features("NSEI", "XBOM", date(2021, 3, 26), extra=(date(2020, 2, 1),))
    assert date(2020, 2, 1) not in feats["session_date"].to_list()  # off the calendar: left out
    registered = ModelData(feats, calendars={"NSEI": "XBOM"})
    assert _target(model, registered, date(2021, 3, 26)) == date(2021, 3, 30)  # Mon 29th: Holi


def test_realized_features_report_the_dates_off_the_calendar() -> None:
    rows = _realized("NSEI", "XBOM", date(2021, 3, 26), extra_days=(date(2020, 2, 1), date(2019, 10, 27)))
    daily, off = realized_daily_features(rows, "XBOM")
    assert off == [date(2019, 10, 27), date(2020, 2, 1)]
    assert daily.height == rows.height - 2
    assert daily["session_end"].null_count() == 0 and (daily["interval"] == "realized").all()
