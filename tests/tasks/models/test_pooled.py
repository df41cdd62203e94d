"""Pooled (panel) training: panel folds, the lagged market factor, and a daily torch model fitted on
every member of a panel. Synthetic panel with a common volatility factor (tasks.synthetic_panel)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from core.errors import DataError
from tasks.models.base import ModelData
from tasks.models.market_factor import FACTOR, RELATIVE_WINDOW, ewma_rv, global_factor, with_market_factor
from tasks.models.prob_lstm import ProbLSTM
from tasks.realized_features import realized_daily_features
from tasks.synthetic_panel import default_symbols, realized_rows, simulate_panel
from tasks.walk_forward import panel_walk_forward, walk_forward_folds

SYMBOLS = default_symbols(3)  # New York, London, Frankfurt calendars


@pytest.fixture(scope="module")
def panel_features() -> pl.DataFrame:
    panel = simulate_panel(SYMBOLS, date(2014, 1, 1), date(2017, 12, 31), seed=5)
    parts = []
    for spec in SYMBOLS:
        rows = realized_rows(panel.filter(pl.col("symbol") == spec.symbol))
        feats, _ = realized_daily_features(rows, spec.calendar)
        parts.append(feats)
    return pl.concat(parts, how="vertical_relaxed")


def sessions_of(feats: pl.DataFrame) -> dict[str, list[date]]:
    return {
        s: feats.filter(pl.col("symbol") == s)["session_date"].sort().to_list()
        for s in feats["symbol"].unique()
    }


# ------------------------------------------------------------------------------------------ panel folds
def test_panel_folds_forecast_each_members_own_targets_once_after_one_common_train_end(
    panel_features: pl.DataFrame,
) -> None:
    sessions = sessions_of(panel_features)
    windows = {s: (date(2017, 1, 1), date(2017, 12, 31)) for s in sessions}
    folds = panel_walk_forward(sessions, windows, refit_every=22, window="rolling", train_size=500)
    for s, days in sessions.items():
        own = walk_forward_folds(days, *windows[s], refit_every=22, window="rolling", train_size=500)
        wanted = [o for f in own for o in f.origins]
        got = [o for f in folds for o in f.origins.get(s, ())]
        assert got == wanted, f"{s}: the pooled folds forecast exactly the member's own origins, once"
    for f in folds:
        for s, origins in f.origins.items():
            nxt = [d for d in sessions[s] if d > origins[0]][0]  # the first origin's target
            assert f.train_end < nxt, "training ends before the fold's first target for every member"
            assert len([d for d in sessions[s] if f.train_start <= d <= f.train_end]) >= 500
    assert [f.fold for f in folds] == list(range(len(folds)))
    assert len({f.train_end for f in folds}) == len(folds)


def test_a_younger_member_joins_the_panel_folds_only_with_its_own_min_train_sessions() -> None:
    days = [date(2011, 1, 1) + timedelta(days=i) for i in range(2000)]
    sessions = {"OLD": days, "YOUNG": days[700:]}  # a series that starts about two years later
    windows = {s: (days[0], days[-1]) for s in sessions}
    folds = panel_walk_forward(sessions, windows, refit_every=63, min_train=250)
    young = [f for f in folds if "YOUNG" in f.origins]
    assert young, "the young member is forecast once it has grown"
    for f in young:  # every fit that forecasts it saw at least 250 of its sessions
        assert len([d for d in sessions["YOUNG"] if d <= f.train_end]) >= 250
    first_young = [f for f in folds if f.train_end >= days[700 + 249]][0]
    assert "YOUNG" in first_young.origins  # and it joins at the first block where it has them
    # its own walk-forward starts earlier: targets of the block that straddles its 250th session
    # are left to the models that fit it alone
    own = walk_forward_folds(sessions["YOUNG"], *windows["YOUNG"], refit_every=63)
    pooled = {o for f in young for o in f.origins["YOUNG"]}
    assert pooled < {o for f in own for o in f.origins}


def test_panel_folds_refuse_what_the_single_symbol_folds_refuse() -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="random split"):
        panel_walk_forward({"A": [date(2020, 1, 1)]}, {"A": (date(2020, 1, 1),) * 2}, window="shuffled")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ market factor
def test_relative_factor_is_the_mean_of_each_members_log_ewma_over_its_trailing_mean(
    panel_features: pl.DataFrame,
) -> None:
    feats = panel_features.select("symbol", "session_date", "rv_d")
    factor = global_factor(feats, 5.0, "relative")
    d = date(2016, 6, 15)
    expected = []
    for s in feats["symbol"].unique().sort():
        part = feats.filter(pl.col("symbol") == s).sort("session_date")
        logs = np.log(ewma_rv(part["rv_d"].to_numpy(), 5.0))
        before = (part["session_date"] < d).to_numpy()
        i = int(np.flatnonzero(before)[-1])
        expected.append(logs[i] - logs[i - RELATIVE_WINDOW + 1 : i + 1].mean())
    got = factor.filter(pl.col("session_date") == d)[FACTOR].item()
    assert got == pytest.approx(float(np.mean(expected)), rel=1e-9)


def test_relative_factor_at_a_date_reads_no_row_dated_then_or_later(panel_features: pl.DataFrame) -> None:
    d = date(2016, 6, 15)
    clean = with_market_factor(panel_features)
    garbled = panel_features.with_columns(
        pl.when(pl.col("session_date") >= d).then(pl.col("rv_d") * 50).otherwise(pl.col("rv_d")).alias("rv_d")
    )
    dirty = with_market_factor(garbled)
    on = pl.col("session_date") <= d
    left = clean.filter(on).sort("symbol", "session_date")[FACTOR]
    right = dirty.filter(on).sort("symbol", "session_date")[FACTOR]
    assert left.to_list() == right.to_list()
    after = (pl.col("session_date") > d) & (pl.col("session_date") < d + timedelta(days=5))
    assert clean.filter(after)[FACTOR].to_list() != dirty.filter(after)[FACTOR].to_list()


# ------------------------------------------------------------------------------------------ pooled torch fit
FAST = {"epochs": 2, "hidden": 8, "batch_size": 256, "seed": 0}


def test_a_pooled_model_fits_every_member_and_its_market_input_leaks_nothing(
    panel_features: pl.DataFrame,
) -> None:
    # residual=False: the network's output is the forecast (a residual model may keep HAR's weights)
    model = ProbLSTM(**FAST, features=["log_rv", "log_rv_w", "ret", "mkt_rv"], pool="all", residual=False)
    assert model.pool == "all" and model.panel_inputs
    train_end = date(2016, 12, 30)
    data = ModelData(features=panel_features)
    model.fit(data.upto(train_end), train_end)
    assert sorted(model.symbols) == sorted(s.symbol for s in SYMBOLS)
    assert model.inputs is not None and "mkt_rv" in model.inputs
    origin = date(2017, 3, 15)
    first = model.predict(data.upto(origin), [origin])
    assert sorted(first["symbol"]) == sorted(model.symbols)
    # other members' rows from the origin on are garbled: no forecast at the origin may move
    garbled = panel_features.with_columns(
        pl.when(pl.col("session_date") >= origin)
        .then(pl.col("rv_d") * 30)
        .otherwise(pl.col("rv_d"))
        .alias("rv_d")
    )
    mine = panel_features.filter(pl.col("symbol") == SYMBOLS[0].symbol)
    others = garbled.filter(pl.col("symbol") != SYMBOLS[0].symbol)
    again = model.predict(ModelData(features=pl.concat([mine, others])), [origin])
    a = first.filter(pl.col("symbol") == SYMBOLS[0].symbol)["rv"].item()
    b = again.filter(pl.col("symbol") == SYMBOLS[0].symbol)["rv"].item()
    assert a == b


def test_a_short_member_is_left_out_of_a_pooled_fit_but_a_lone_short_symbol_is_an_error(
    panel_features: pl.DataFrame,
) -> None:
    train_end = date(2016, 12, 30)
    short = SYMBOLS[2].symbol
    cut = panel_features.filter((pl.col("symbol") != short) | (pl.col("session_date") >= date(2016, 10, 1)))
    model = ProbLSTM(**FAST, min_train=100).fit(ModelData(features=cut), train_end)
    assert short in model.too_short and model.too_short[short] < 100
    assert short not in model.symbols and len(model.symbols) == 2
    out = model.predict(ModelData(features=cut), [date(2017, 2, 1)])
    assert short not in set(out["symbol"])
    alone = cut.filter(pl.col("symbol") == short)
    with pytest.raises(DataError, match=f"symbol '{short}' has .* fewer than min_train=100"):
        ProbLSTM(**FAST, min_train=100).fit(ModelData(features=alone), train_end)
