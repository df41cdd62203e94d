"""Evaluation across a panel of assets: panel DM, panel MCS, ratios to HAR, the headline, tuned_on."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from report_helpers import small_scorecard
from scipy import stats

from core.errors import ConfigError
from tasks.evaluate import leaderboard, newey_west_variance, qlike
from tasks.experiment import ExperimentSpec
from tasks.panel_evaluation import (
    newey_west_lags,
    panel_diebold_mariano,
    panel_headline,
    panel_loss_table,
    panel_summary,
    pooled_differentials,
    ratio_summary,
    settings_line,
)
from tasks.report import plot_panel_ratios, write_report


# ------------------------------------------------------------------------------------------ synthetic panel
def _common_factor_panel(
    noise: dict[str, float], n_assets: int = 4, n: int = 300, seed: int = 0,
    per_asset: dict[tuple[str, int], float] | None = None,
) -> pl.DataFrame:  # fmt: skip
    """A scored frame: assets share a persistent common log-volatility factor plus their own.

    Each model forecasts the true variance times ``exp(noise * z)``: more noise, higher QLIKE.
    ``per_asset[(model, k)]`` replaces a model's noise on asset ``k``; a noise of ``None``-like
    ``-1.0`` copies HAR's forecast there.
    """
    rng = np.random.default_rng(seed)
    days = [date(2021, 1, 1) + timedelta(days=i) for i in range(n)]
    common = np.zeros(n)
    for t in range(1, n):
        common[t] = 0.97 * common[t - 1] + 0.2 * rng.standard_normal()
    frames = []
    for k in range(n_assets):
        own = np.zeros(n)
        for t in range(1, n):
            own[t] = 0.9 * own[t - 1] + 0.15 * rng.standard_normal()
        var = np.exp(np.log(1e-4) + 0.5 * k + common + own)  # levels differ: QLIKE must not care
        actual = var * np.exp(0.3 * rng.standard_normal(n) - 0.045)
        ret = np.sqrt(var) * rng.standard_normal(n)
        forecasts: dict[str, np.ndarray] = {}
        for model, scale in noise.items():
            s = (per_asset or {}).get((model, k), scale)
            forecasts[model] = forecasts["har"] if s < 0 else var * np.exp(s * rng.standard_normal(n))
        for model, fc in forecasts.items():
            frames.append(
                pl.DataFrame(
                    {
                        "model": model,
                        "symbol": f"S{k}",
                        "target": days,
                        "rv": fc,
                        "variance": fc,
                        "rv_actual": actual,
                        "ret": ret,
                    }  # fmt: skip
                )
            )
    return pl.concat(frames)


@pytest.fixture(scope="module")
def panel() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    scored = _common_factor_panel({"har": 0.45, "good": 0.2, "bad": 0.8, "copy": -1.0})
    board = leaderboard(scored, mcs_reps=100)
    return scored, board, panel_summary(scored, board, mcs_reps=200)


# ------------------------------------------------------------------------------------------ panel DM
def test_pooled_differentials_average_over_the_assets_of_each_date() -> None:
    day1, day2 = date(2024, 1, 2), date(2024, 1, 3)
    rows = [  # (model, symbol, target, forecast); the realized RV is 1 everywhere
        ("m", "A", day1, 2.0), ("har", "A", day1, 1.0), ("m", "B", day1, 0.5), ("har", "B", day1, 4.0),
        ("m", "A", day2, 1.5), ("har", "A", day2, 3.0),  # B is not scored on day2 (another calendar)
    ]  # fmt: skip
    scored = pl.DataFrame(rows, schema=["model", "symbol", "target", "rv"], orient="row").with_columns(
        pl.lit(1.0).alias("rv_actual")
    )
    got = pooled_differentials(scored, "m")

    def q(forecast: float) -> float:
        return float(qlike(np.array([1.0]), np.array([forecast]))[0])

    expected_day1 = ((q(2.0) - q(1.0)) + (q(0.5) - q(4.0))) / 2
    assert got["target"].to_list() == [day1, day2]
    assert got["d"][0] == pytest.approx(expected_day1) and got["d"][1] == pytest.approx(q(1.5) - q(3.0))
    assert got["n_assets"].to_list() == [2, 1]


def test_panel_dm_is_a_newey_west_t_test_computed_by_hand() -> None:
    d = np.random.default_rng(4).normal(-0.02, 0.1, 250)
    lags = newey_west_lags(d.size)
    assert lags == 4  # floor(4 * 2.5 ** (2/9))
    stat = d.mean() / math.sqrt(newey_west_variance(d, lags) / d.size)
    two = panel_diebold_mariano(d)
    less = panel_diebold_mariano(d, alternative="less")
    assert two.statistic == pytest.approx(stat) and less.statistic == pytest.approx(stat)
    assert two.pvalue == pytest.approx(2 * stats.t.sf(abs(stat), d.size - 1))
    assert less.pvalue == pytest.approx(stats.t.cdf(stat, d.size - 1))
    with pytest.raises(ConfigError):
        panel_diebold_mariano(d, alternative="greater")


def test_panel_dm_gives_a_small_p_when_better_on_every_asset_and_a_large_one_when_worse(
    panel: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    scored, board, summary = panel
    ratios = board.filter(pl.col("model") == "good")["qlike_ratio"]
    assert (ratios < 1).all()  # better on every asset
    rows = {r["model"]: r for r in summary.iter_rows(named=True)}
    assert rows["good"]["panel_dm_stat"] < 0 and rows["good"]["panel_dm_p"] < 1e-6
    assert rows["bad"]["panel_dm_stat"] > 0 and rows["bad"]["panel_dm_p"] > 0.99  # one-sided: no win
    worse = panel_diebold_mariano(pooled_differentials(scored, "bad")["d"].to_numpy())
    assert worse.pvalue < 1e-6  # the two-sided test would call it significant (worse)
    assert rows["good"]["beats_har_assets"] == 4 and rows["bad"]["beats_har_assets"] == 0
    assert rows["bad"]["loses_to_har_assets"] == 4
    assert rows["good"]["n_dates"] == 300


def test_equal_forecasts_give_ratio_one_and_no_significant_asset(
    panel: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    _, board, summary = panel
    copy = board.filter(pl.col("model") == "copy")
    assert copy["qlike_ratio"].to_list() == pytest.approx([1.0] * 4)
    assert not copy["beats_har"].any()
    row = summary.filter(pl.col("model") == "copy").row(0, named=True)
    assert row["median_qlike_ratio"] == pytest.approx(1.0) and row["beats_har_assets"] == 0
    assert math.isnan(row["panel_dm_p"])  # identical losses: no test, not a win
    har = summary.filter(pl.col("model") == "har").row(0, named=True)
    assert har["median_qlike_ratio"] == 1.0 and math.isnan(har["panel_dm_stat"])


def test_panel_mcs_keeps_the_best_and_drops_the_clearly_worse(
    panel: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    scored, _, summary = panel
    table = panel_loss_table(scored)
    assert table.columns == ["target", "bad", "copy", "good", "har"] and table.height == 300
    inside = dict(zip(summary["model"], summary["in_panel_mcs"], strict=True))
    assert inside["good"] and not inside["bad"] and not inside["har"]
    assert summary["model"][0] == "good"  # sorted by median ratio


# ------------------------------------------------------------------------------------------ headline
def _board(ratios: dict[str, list[float]], wins: dict[str, list[bool]]) -> pl.DataFrame:
    rows = [
        {"symbol": f"A{i + 1}", "model": m, "qlike_ratio": r, "beats_har": wins[m][i]}
        for m, rs in ratios.items()
        for i, r in enumerate(rs)
    ]
    return pl.DataFrame(rows)


HAND = _board(
    {"har": [1.0] * 6, "ensemble": [0.95, 0.968, 0.972, 1.01, 0.90, 0.964],
     "gjr": [1.2, 1.3, 1.1, 1.25, 1.0, 1.4]},
    {"har": [False] * 6, "ensemble": [True, True, False, False, True, True], "gjr": [False] * 6},
)  # fmt: skip


def test_headline_of_a_hand_built_board() -> None:
    out = panel_headline(ratio_summary(HAND), HAND)
    assert out["sentence"] == (
        "Best: ensemble, median QLIKE 0.966 x HAR over 6 assets; "
        "beats HAR significantly (DM p < 0.05) on 4 of 6."
    )
    assert out["settings"] == "No asset of this evaluation was used to choose settings."
    assert out["best_model"] == "ensemble" and out["beats_har"] == 4 and out["n_assets"] == 6
    assert out["out_of_sample"]["n_assets"] == 6 and not out["out_of_sample"]["goal_met"]  # 0.966 > 0.93


def test_headline_counts_the_tuning_assets_apart() -> None:
    out = panel_headline(ratio_summary(HAND), HAND, tuned_on=["A2", "A1"])
    assert out["sentence"].endswith(
        " Caution: 2 of the evaluated assets (A1, A2) were used to choose settings (in-sample); on the 4 "
        "out-of-sample assets ensemble has median QLIKE 0.968 x HAR and beats HAR significantly on 2 of 4."
    )
    assert out["in_sample_assets"] == ["A1", "A2"] and out["tuned_on"] == ["A1", "A2"]
    assert out["out_of_sample"]["assets"] == ["A3", "A4", "A5", "A6"]
    assert out["settings"] == (
        "Settings were chosen on: A1, A2 (in-sample for these); out-of-sample: the others (A3, A4, A5, A6)."
    )
    none_left = panel_headline(ratio_summary(HAND), HAND, tuned_on=[f"A{i}" for i in range(1, 7)])
    assert none_left["sentence"].endswith("no asset of this evaluation is out-of-sample.")
    assert (
        settings_line(["A1"], ["ZZ"])
        == "Settings were chosen on: ZZ (in-sample for these); out-of-sample: the others (A1)."
    )


def test_headline_with_one_asset_and_a_goal_that_is_met() -> None:
    one = _board({"har": [1.0], "hexp": [0.9]}, {"har": [False], "hexp": [True]})
    out = panel_headline(ratio_summary(one), one)
    assert out["sentence"] == (
        "Best: hexp, median QLIKE 0.900 x HAR over 1 asset; beats HAR significantly (DM p < 0.05) on 1 of 1."
    )
    assert out["out_of_sample"]["goal_met"]
    losing = _board({"har": [1.0, 1.0], "lstm": [1.3, 1.2]}, {"har": [False] * 2, "lstm": [False] * 2})
    assert panel_headline(ratio_summary(losing), losing)["sentence"].endswith(
        "on 0 of 2. No model has a median QLIKE below that of HAR-RV."
    )


def test_headline_of_a_scored_panel_matches_its_leaderboard() -> None:
    # `good` is sharper than HAR on S0 and S1 and is HAR's forecast on S2.
    scored = _common_factor_panel({"har": 0.45, "good": 0.2}, n_assets=3, per_asset={("good", 2): -1.0})
    board = leaderboard(scored, mcs_reps=50)
    out = panel_headline(panel_summary(scored, board, mcs_reps=50), board)
    ratios = board.filter(pl.col("model") == "good").sort("symbol")["qlike_ratio"].to_list()
    assert ratios[2] == pytest.approx(1.0) and max(ratios[:2]) < 1.0
    assert out["sentence"] == (
        f"Best: good, median QLIKE {max(ratios[:2]):.3f} x HAR over 3 assets; beats HAR significantly "
        "(DM p < 0.05) on 2 of 3."
    )


# ------------------------------------------------------------------------------------------ tuned_on
def test_tuned_on_is_stored_in_params_and_read_back() -> None:
    spec = ExperimentSpec(symbols=["SPY", "EURUSD"], tuned_on=["SPY", "SPY"])
    params = spec.params(["har"], False, {}, {})
    assert params["tuned_on"] == ["SPY"]
    assert ExperimentSpec.from_params(params, "x").tuned_on == ["SPY"]
    assert ExperimentSpec(symbols=["SPY"]).params(["har"], False, {}, {})["tuned_on"] is None
    assert ExperimentSpec(symbols=["SPY"], tuned_on=[]).tuned_on is None
    with pytest.raises(ConfigError):
        ExperimentSpec(symbols=["SPY"], tuned_on=["EUR/USD"])


def test_report_opens_with_the_headline_and_names_the_tuning_assets(tmp_path: Path) -> None:
    card = small_scorecard(seed=1)
    card.params["tuned_on"] = ["AAA"]
    paths = write_report(card, tmp_path)
    md = Path(paths["md"]).read_text(encoding="utf-8")
    lines = md.splitlines()
    assert lines[2].startswith("**Best: ") and "over 2 assets" in lines[2] and "Caution: 1 of the" in lines[2]
    assert lines[4] == "Settings were chosen on: AAA (in-sample for these); out-of-sample: the others (BBB)."
    assert "| assets used to choose settings | AAA |" in md
    across = md[md.index("## Across assets (2)") : md.index("## Verdict")]
    assert "median QLIKE / HAR" in across and "panel-qlike-ratio.png" in across
    har_row = next(line for line in across.splitlines() if line.startswith("| har |"))
    assert "| 1.000 | 0 | 0 |" in har_row  # ratio to itself, no wins, no losses
    payload: dict[str, Any] = json.loads(Path(paths["json"]).read_text(encoding="utf-8"))
    head = payload["headline"]
    assert head["tuned_on"] == ["AAA"] and head["in_sample_assets"] == ["AAA"] and head["n_assets"] == 2
    assert head["sentence"] == lines[2].strip("*")
    assert {r["model"] for r in payload["panel"]} == set(card.leaderboard["model"].unique().to_list())
    assert (Path(paths["plots"]) / "panel-qlike-ratio.png").is_file()
    card.params.pop("tuned_on")
    assert card.headline()["settings"] == "No asset of this evaluation was used to choose settings."


def test_ratio_plot_marks_each_median_and_the_line_at_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    kept: list[Any] = []
    monkeypatch.setattr(plt, "close", kept.append)
    plot_panel_ratios(HAND, tmp_path / "ratios.png")
    ax = kept[0].axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["HAR-RV (1.0)"].get_xdata()) == [1.0, 1.0]
    medians = [
        ln.get_xdata()[0]
        for ln in ax.get_lines()
        if len(set(ln.get_xdata())) == 1 and ln.get_xdata()[0] != 1.0
    ]
    assert sorted(medians) == pytest.approx([0.966, 1.225])  # ensemble, gjr (HAR itself is not drawn)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["gjr", "ensemble"]  # best at the top
    monkeypatch.undo()
    for fig in kept:
        plt.close(fig)
