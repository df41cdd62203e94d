"""Walk-forward folds, the common scoring set and the forecast tests, against hand computations."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from tasks.evaluate import (
    common_scoring_set,
    diebold_mariano,
    leaderboard,
    mincer_zarnowitz,
    model_confidence_set,
    newey_west_variance,
    qlike,
)
from tasks.walk_forward import walk_forward_folds

DAYS = [date(2020, 1, 1) + timedelta(days=i) for i in range(800)]


# ------------------------------------------------------------------------------------------ folds
@pytest.mark.parametrize("horizon, embargo", [(1, None), (1, 1), (3, 5)])
def test_folds_embargo_training_before_every_test_target(horizon: int, embargo: int | None) -> None:
    folds = walk_forward_folds(DAYS, DAYS[400], DAYS[700], refit_every=50, horizon=horizon, embargo=embargo)
    gap = horizon + 1 if embargo is None else embargo
    pos = {d: i for i, d in enumerate(DAYS)}
    targets = [t for f in folds for t in f.targets]
    assert targets == DAYS[400:701], "folds tile the test window exactly, in order, once"
    for f in folds:
        assert len(f.targets) <= 50
        assert pos[f.targets[0]] - pos[f.train_end] == gap  # the embargo, in sessions
        assert pos[f.train_end] < pos[f.origins[0]] or horizon == gap
        for o, t in zip(f.origins, f.targets, strict=True):
            assert pos[t] - pos[o] == horizon
            assert o >= f.train_end  # everything the model learnt was known at the origin
        assert f.train_start == DAYS[0]  # expanding


def test_rolling_window_has_fixed_length() -> None:
    folds = walk_forward_folds(DAYS, DAYS[500], DAYS[799], refit_every=100, window="rolling", train_size=300)
    pos = {d: i for i, d in enumerate(DAYS)}
    for f in folds:
        assert pos[f.train_end] - pos[f.train_start] + 1 == 300


def test_folds_drop_test_sessions_without_enough_history() -> None:
    folds = walk_forward_folds(DAYS, DAYS[0], DAYS[300], refit_every=100, min_train=250)
    assert folds[0].targets[0] == DAYS[251]  # 250 training sessions + the 2-session embargo - 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": "random"}, "random split is not offered"),
        ({"embargo": 0}, "embargo must be an integer >= horizon"),
        ({"horizon": 2, "embargo": 1}, "embargo must be an integer >= horizon"),
        ({"refit_every": 0}, "refit_every must be a positive integer"),
        ({"window": "rolling"}, "rolling window needs train_size"),
    ],
)
def test_fold_parameters_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        walk_forward_folds(DAYS, DAYS[400], DAYS[700], **kwargs)  # type: ignore[arg-type]


def test_unsorted_sessions_are_refused() -> None:
    with pytest.raises(DataError, match="sorted and distinct"):
        walk_forward_folds(DAYS[::-1], DAYS[400], DAYS[700])


# ------------------------------------------------------------------------------------------ losses and tests
def test_qlike_is_zero_for_a_perfect_forecast_and_penalises_under_prediction_more() -> None:
    assert qlike(np.array([2.0]), np.array([2.0]))[0] == 0.0
    under = qlike(np.array([2.0]), np.array([1.0]))[0]  # forecast half the truth
    over = qlike(np.array([2.0]), np.array([4.0]))[0]  # forecast twice the truth
    assert under == pytest.approx(2 - math.log(2) - 1)
    assert over == pytest.approx(0.5 - math.log(0.5) - 1)
    assert under > over


def test_diebold_mariano_matches_a_hand_computation() -> None:
    a = [1.0, 2.0, 1.5, 3.0, 2.5, 1.0, 2.0, 4.0, 1.5, 2.0, 3.0, 2.5]
    b = [1.5, 1.0, 2.0, 2.0, 2.0, 1.5, 1.0, 2.5, 1.0, 1.0, 2.0, 2.0]
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / n  # h = 1: no autocovariance terms
    dm = mean / math.sqrt(var / n)
    hln = dm * math.sqrt((n + 1 - 2 + 0) / n)
    from scipy import stats

    p = 2 * stats.t.sf(abs(hln), n - 1)
    got = diebold_mariano(np.array(a), np.array(b), horizon=1)
    assert got.statistic == pytest.approx(hln, rel=1e-12)
    assert got.pvalue == pytest.approx(p, rel=1e-12)
    flipped = diebold_mariano(np.array(b), np.array(a))
    assert flipped.statistic == pytest.approx(-hln) and flipped.pvalue == pytest.approx(p)


def test_diebold_mariano_hac_uses_autocovariances_for_longer_horizons() -> None:
    d = np.array([0.5, 0.7, 0.2, -0.1, 0.4, 0.9, 0.3, 0.1, 0.6, 0.2, -0.3, 0.8])
    dc = d - d.mean()
    n = d.size
    gamma1 = float(dc[1:] @ dc[:-1]) / n
    assert newey_west_variance(d, 1) == pytest.approx(float(dc @ dc) / n + 2 * 0.5 * gamma1)
    h = 2
    lrv = float(dc @ dc) / n + 2 * 0.5 * gamma1
    expected = d.mean() / math.sqrt(lrv / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    assert diebold_mariano(d, np.zeros(n), horizon=2).statistic == pytest.approx(expected)


def test_diebold_mariano_reports_identical_losses_instead_of_dividing_by_zero() -> None:
    x = np.linspace(1, 2, 30)
    out = diebold_mariano(x, x)
    assert math.isnan(out.statistic) and "identical" in out.note


def test_mincer_zarnowitz_recovers_an_unbiased_forecast_and_rejects_a_biased_one() -> None:
    rng = np.random.default_rng(0)
    f = rng.uniform(1, 3, 2000)
    y = f + rng.normal(0, 0.3, 2000)
    good = mincer_zarnowitz(y, f)
    assert good["a"] == pytest.approx(0, abs=0.1) and good["b"] == pytest.approx(1, abs=0.05)
    assert good["p"] > 0.01
    bad = mincer_zarnowitz(y, 0.5 * f)  # forecasts half the truth: b = 2
    assert bad["b"] == pytest.approx(2, abs=0.1) and bad["p"] < 1e-6


def test_model_confidence_set_is_arch_on_arch_example() -> None:
    """The wrapper returns exactly what ``arch.bootstrap.MCS`` does on an arch-style example.

    As in arch's multiple-comparison example: models whose losses share a common component and
    differ in mean; the clearly better models stay in the 90% set, the clearly worse leave it.
    """
    from arch.bootstrap import MCS

    gen = np.random.default_rng(23456)
    t, k = 500, 8
    common = gen.standard_normal((t, 1))
    means = np.linspace(0, 0.8, k)
    losses = 1 + means + 0.5 * common + gen.standard_normal((t, k))
    frame = pl.DataFrame({f"m{i}": losses[:, i] for i in range(k)})
    ours = model_confidence_set(frame, size=0.10, reps=500, block_size=10, seed=7)
    ref = MCS(frame.to_pandas(), size=0.10, reps=500, block_size=10, method="R", seed=7)
    ref.compute()
    assert ours == {str(i): float(v) for i, v in ref.pvalues["Pvalue"].items()}
    included = {m for m, p in ours.items() if p >= 0.10}
    assert set(ref.included) == included
    assert "m0" in included and "m7" not in included


def test_model_confidence_set_scores_identical_losses_once() -> None:
    """A model that copies another (equal losses) made arch divide by zero; both now share one p."""
    gen = np.random.default_rng(5)
    base = 1 + gen.standard_normal(300)
    frame = pl.DataFrame({"har": base, "copy": base, "worse": base + 0.5 + 0.3 * gen.standard_normal(300)})
    got = model_confidence_set(frame, reps=200, seed=1)
    alone = model_confidence_set(frame.drop("copy"), reps=200, seed=1)
    assert got["copy"] == got["har"] == alone["har"] and got["worse"] == alone["worse"] < 0.10
    assert model_confidence_set(frame.select("har", "copy")) == {"har": 1.0, "copy": 1.0}


# ------------------------------------------------------------------------------------------ scoring set
def _pred(model: str, targets: list[date], rv: float) -> pl.DataFrame:
    n = len(targets)
    return pl.DataFrame(
        {
            "model": [model] * n,
            "symbol": ["X"] * n,
            "origin": [t - timedelta(days=1) for t in targets],
            "target": targets,
            "horizon": [1] * n,
            "variance": [rv] * n,
            "rv": [rv] * n,
        }
    )


def _features(days: list[date], low: set[date]) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    return pl.DataFrame(
        {
            "symbol": ["X"] * len(days),
            "session_date": days,
            "ret_cc": rng.normal(0, 0.01, len(days)),
            "ret_oc": [None] * len(days),
            "rv": rng.uniform(1e-4, 3e-4, len(days)),
            "low_coverage": [d in low for d in days],
        },
        schema_overrides={"ret_oc": pl.Float64},
    )


def test_common_scoring_set_keeps_only_dates_every_model_forecast() -> None:
    days = DAYS[:40]
    preds = pl.concat(
        [
            _pred("har", days[1:35], 2e-4),
            _pred("naive", days[5:35], 2e-4),
            _pred("ewma", days[1:40], 2e-4),  # the last 5 targets were never realized below
        ]
    )
    feats = _features(days[:35], low={days[10]})
    out = common_scoring_set(preds, feats, ["har", "naive", "ewma"])
    per_model = out.scored.group_by("model").agg(pl.col("target").sort())
    target_sets = {tuple(t) for t in per_model["target"].to_list()}
    assert len(target_sets) == 1, "every model is scored on exactly the same targets"
    (targets,) = target_sets
    assert targets[0] == days[5] and days[10] not in targets and targets[-1] == days[34]
    assert out.dropped == {
        "not forecast by every model": 4 + 5,
        "target not realized yet": 0,
        "low-coverage target session": 1,
    }


def test_common_scoring_set_names_models_without_predictions() -> None:
    with pytest.raises(DataError, match=r"no predictions for models \['garch'\]"):
        common_scoring_set(_pred("har", DAYS[1:5], 1e-4), _features(DAYS[:5], set()), ["har", "garch"])


def test_leaderboard_marks_a_model_that_loses_to_har() -> None:
    days = DAYS[:300]
    feats = _features(days, set())
    rv = feats["rv"].to_numpy()
    good = _pred("har", days[1:], 0.0).with_columns(pl.Series("rv", rv[1:]), pl.Series("variance", rv[1:]))
    bad = _pred("ewma", days[1:], 0.0).with_columns(
        pl.Series("rv", rv[1:] * 3), pl.Series("variance", rv[1:] * 3)
    )
    naive = _pred("naive", days[1:], 0.0).with_columns(
        pl.Series("rv", rv[:-1]), pl.Series("variance", rv[:-1])
    )
    scored = common_scoring_set(pl.concat([good, bad, naive]), feats, ["har", "ewma", "naive"]).scored
    board = leaderboard(scored, mcs_reps=200)
    row = {r["model"]: r for r in board.iter_rows(named=True)}
    assert row["har"]["qlike"] == pytest.approx(0.0, abs=1e-12)
    assert row["ewma"]["loses_to_har"] and not row["ewma"]["beats_har"] and row["ewma"]["dm_p"] < 1e-6
    assert not row["ewma"]["in_mcs"] and row["har"]["in_mcs"]
    assert row["har"]["r2_oos"] == pytest.approx(1.0) and row["naive"]["r2_oos"] == pytest.approx(0.0)
    assert board["model"].to_list()[0] == "har"  # sorted by QLIKE
