"""Minute mode: seasonality removed on the training window, online calibration, no look-ahead."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.schema import QUANTILES
from tasks.minute_risk import MinuteRiskSpec, make_minute_model, minute_risk_backtest, recommend
from tasks.minute_scoring import family_cdf, working_levels
from tasks.models.families import get_family
from tasks.risk import MINUTE_FAST_CONFIG, _family_ppf
from tests.tasks.minute_synthetic import u_shaped_bars

NY = "America/New_York"


def _spec(**kw: object) -> MinuteRiskSpec:
    base: dict[str, object] = {"symbol": "SYN", "timezone": NY, "models": ("ewma",), "n_sims": 200}
    return MinuteRiskSpec(**(base | kw))  # type: ignore[arg-type]


def _open_minutes(ts: pl.Series) -> np.ndarray:
    ny = ts.dt.convert_time_zone(NY)
    return ((ny.dt.hour().cast(pl.Int32) * 60 + ny.dt.minute().cast(pl.Int32)) < 600).to_numpy()


@pytest.mark.parametrize("name", ["gaussian", "student_t", "fhs"])
def test_family_cdf_inverts_the_quantile_function(name: str) -> None:
    z = np.random.default_rng(0).standard_t(5, size=4000) / np.sqrt(5 / 3)
    fam = get_family(name).fit(z)
    u = np.array([0.003, 0.01, 0.025, 0.2, 0.5, 0.9, 0.99])
    np.testing.assert_allclose(family_cdf(fam, _family_ppf(fam, u)), u, atol=1e-6)


@pytest.mark.parametrize("method", ["aci", "faci", "caci", "mfaci"])
def test_working_levels_use_only_earlier_minutes(method: str) -> None:
    pit = np.random.default_rng(1).random(3000)
    a = working_levels(pit, method)
    garbled = pit.copy()
    garbled[2000:] = 0.0  # every later minute a breach of every lower level
    b = working_levels(garbled, method)
    np.testing.assert_array_equal(a[:2001], b[:2001])  # row 2000 is issued before minute 2000 is seen
    assert not np.array_equal(a[2001:], b[2001:])
    np.testing.assert_array_equal(working_levels(pit, "none")[0], a[0])  # starts at the nominal levels


def test_deseasonalised_var_passes_where_raw_fails_on_a_u_shaped_day() -> None:
    res = minute_risk_backtest(u_shaped_bars(days=60), _spec())
    rows = {r["variant"]: r for r in res.summary}
    assert rows["raw"]["var99_kupiec_p"] < 0.05  # a smooth model on raw minutes under-covers
    assert rows["deseasonalised"]["var99_kupiec_p"] > 0.05
    assert rows["deseasonalised"]["var99_cc_p"] > 0.05
    assert abs(rows["calibrated"]["cov80"] - 0.8) < 0.03
    assert res.recommended is not None and res.recommended["variant"] != "raw"


def test_without_the_profile_breaches_cluster_at_the_open() -> None:
    res = minute_risk_backtest(u_shaped_bars(days=60), _spec(model_config={"ewma": {"lam": 0.99}}))
    p = res.predictions
    for variant, low, high in (("raw", 0.05, 1.0), ("deseasonalised", 0.0, 0.03)):
        rows = p.filter(pl.col("variant") == variant)
        opening = _open_minutes(rows["ts"])
        hits = (rows["ret"] < rows["var99"]).to_numpy()
        assert low <= hits[opening].mean() <= high, variant


def _garble_after(bars: pl.DataFrame, k: int) -> pl.DataFrame:
    noise = np.exp(np.random.default_rng(7).normal(0, 0.05, bars.height - k))
    out = {}
    for col in ("close", "high", "low"):
        if col in bars.columns:
            x = bars[col].to_numpy().copy()
            x[k:] = x[k:] * noise * (1.2 if col == "high" else 1.0)
            out[col] = pl.Series(x)
    return bars.with_columns(**out)


@pytest.mark.parametrize(
    "models, config",
    [
        (("ewma", "garch", "range_har"), {}),
        (("transformer",), {"transformer": MINUTE_FAST_CONFIG}),
    ],
)
def test_no_look_ahead_garbling_the_hold_out_changes_nothing_before_it(
    models: tuple[str, ...], config: dict[str, dict[str, object]]
) -> None:
    bars = u_shaped_bars(days=20, ranges=True)
    spec = _spec(models=models, model_config=config, calibration="mfaci")
    a = minute_risk_backtest(bars, spec)
    cut_row = bars.height - 800  # inside the hold-out (the last 20%, about 1,560 minutes)
    b = minute_risk_backtest(_garble_after(bars, cut_row), spec)
    np.testing.assert_array_equal(a.profile.factors, b.profile.factors)
    cut = bars["ts"][cut_row]
    keys = ["model", "variant", "ts"]
    # up to and including the first garbled minute: its forecast is issued before its bar is seen
    early_a = a.predictions.filter(pl.col("ts") <= cut).sort(keys)
    early_b = b.predictions.filter(pl.col("ts") <= cut).sort(keys)
    assert early_a["ts"].max() == cut
    assert early_a.height > 500
    assert early_a.drop("ret").equals(early_b.drop("ret"))
    late = pl.col("ts") > cut
    assert not a.predictions.filter(late).drop("ret").equals(b.predictions.filter(late).drop("ret"))


def test_split_is_chronological_and_sizes_are_reported() -> None:
    res = minute_risk_backtest(u_shaped_bars(days=20), _spec(test_fraction=0.25, compare_raw=False))
    m = res.meta
    assert m["split"] == "chronological" and m["train_end"] < m["test_start"]
    assert m["n_test"] == pytest.approx(0.25 * m["n_returns"], abs=1)
    assert m["dropped_gap_returns"] == 19  # one overnight return per session after the first
    assert {r["variant"] for r in res.summary} == {"deseasonalised", "calibrated"}
    assert str(res.predictions["ts"].min()) == m["test_start"]  # only hold-out minutes are stored
    assert str(res.predictions["ts"].min()) > m["train_end"]


def test_too_few_returns_and_bad_settings_say_what_was_expected() -> None:
    with pytest.raises(DataError, match="too few"):
        minute_risk_backtest(u_shaped_bars(days=20).head(150), _spec())
    with pytest.raises(ConfigError, match="unknown transformer setting"):
        _spec(models=("transformer",), model_config={"transformer": {"epoch": 3}})
    with pytest.raises(ConfigError, match="unknown ewma setting"):
        make_minute_model("ewma", {"lambda": 0.9})
    with pytest.raises(ConfigError, match="models must be among"):
        _spec(models=("lstm",))
    with pytest.raises(ConfigError, match="calibration must be one of"):
        _spec(calibration="evt")


def test_recommend_counts_the_daily_checks_first_and_qlike_second() -> None:
    def row(
        model: str, p99: tuple[float, float], p95: tuple[float, float], cov80: float, qlike: float
    ) -> dict[str, object]:
        return {"model": model, "variant": "calibrated", "var99_kupiec_p": p99[0], "var99_cc_p": p99[1],
                "var95_kupiec_p": p95[0], "var95_cc_p": p95[1], "cov80": cov80, "qlike": qlike}  # fmt: skip

    ok, bad = (0.5, 0.5), (0.5, 0.01)
    sharp_but_failing = row("a", ok, bad, 0.80, -14.0)  # 4 of 5: the 95% CC test fails
    passing = row("b", ok, ok, 0.81, -13.0)
    passing_worse = row("c", ok, ok, 0.77, -12.5)  # exactly 3 pp off still passes
    rec = recommend([sharp_but_failing, passing_worse, passing])
    assert rec is not None and rec["model"] == "b" and rec["checks_passed"] == 5
    assert rec["candidates"] == 3 and rec["candidates_passing"] == 2
    rec = recommend([sharp_but_failing, row("d", bad, ok, 0.80, -15.0)])
    assert rec is not None and rec["model"] == "d"  # four checks each: QLIKE decides, whichever level failed
    rec = recommend([row("e", ok, ok, 0.80, float("nan")), row("f", ok, ok, 0.80, -1.0)])
    assert rec is not None and rec["model"] == "f"  # a NaN QLIKE never wins a tie
    rec = recommend([row("g", ok, (0.05, 0.5), 0.80, -20.0), row("h", ok, ok, 0.84, -1.0)])
    assert (
        rec is not None and rec["checks_passed"] == 4 and rec["model"] == "g"
    )  # p = 0.05 fails; 4 pp off too
    assert recommend([]) is None


def test_chunked_hold_out_forecast_equals_one_full_forecast(monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.minute_risk as mr

    x = np.random.default_rng(0).standard_normal(3000) * 1e-3
    model = make_minute_model("transformer", MINUTE_FAST_CONFIG).fit(x[:2000])
    full = model.forecast(x)[2000:3000]
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(mr, "FORECAST_CHUNK", 128)
    out = mr._forecast_from(model, x, None, 2000, lambda stage, done, total: seen.append((done, total)), "f")
    assert np.isnan(out[:2000]).all()
    np.testing.assert_allclose(out[2000:], full, rtol=1e-5)
    assert seen[-1] == (8, 8) and len(seen) == 8


def test_settings_of_an_unused_model_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="family must be one of"):
        _spec(models=("ewma",), model_config={"garch": {"family": "cauchy"}})


def _clustered_pit(n: int, seed: int = 0) -> np.ndarray:
    """PITs of a forecast whose 5% breaches cluster: after a breach, 20% chance of another."""
    rng = np.random.default_rng(seed)
    u = np.empty(n)
    prev = False
    for p in range(n):
        u[p] = rng.uniform(0.0, 0.05) if prev and rng.random() < 0.2 else rng.random()
        prev = u[p] < 0.05
    return u


def test_conditional_aci_removes_breach_clustering_that_plain_aci_keeps() -> None:
    from tasks.risk import christoffersen_cc, christoffersen_independence

    pit = _clustered_pit(20_000)
    col = QUANTILES.index(0.05)
    hits = {m: (pit < working_levels(pit, m)[:, col]).astype(int) for m in ("aci", "faci", "caci")}
    for m in ("aci", "faci"):
        assert christoffersen_independence(hits[m]).pvalue < 0.01, m
    assert christoffersen_independence(hits["caci"]).pvalue > 0.05
    assert christoffersen_cc(hits["caci"], 0.05).pvalue > 0.05
    assert abs(hits["caci"].mean() - 0.05) < 0.005


def test_warmup_rows_only_prime_the_recursions() -> None:
    pit = _clustered_pit(4000, seed=3)
    for method in ("aci", "faci", "caci", "mfaci"):
        full = working_levels(pit, method)
        warm = working_levels(pit, method, warmup=1500)
        assert warm.shape == (2500, len(QUANTILES))
        np.testing.assert_array_equal(warm, full[1500:])
        assert not np.allclose(warm[0], working_levels(pit, "none")[0]), method  # adapted, not nominal
    with pytest.raises(ConfigError, match="warmup must be a whole number"):
        working_levels(pit, "faci", warmup=5000)


def _directional_pit(n: int, seed: int = 0) -> np.ndarray:
    """PITs whose tail moves keep their direction: after a lower-tail minute (u < 5%) the next is
    one with probability 0.15, and likewise for the upper tail; the overall rate stays near 5%."""
    rng = np.random.default_rng(seed)
    u = np.empty(n)
    prev = 0.5
    for p in range(n):
        if prev < 0.05 and rng.random() < 0.15:
            u[p] = rng.uniform(0.0, 0.05)
        elif prev > 0.95 and rng.random() < 0.15:
            u[p] = rng.uniform(0.95, 1.0)
        else:
            u[p] = rng.random()
        prev = u[p]
    return u


def test_state_faci_removes_directional_tail_runs_that_faci_keeps() -> None:
    from tasks.risk import christoffersen_cc, christoffersen_independence

    pit = _directional_pit(30_000)
    for level in (0.05, 0.01):
        col = QUANTILES.index(level)
        hits = {m: (pit < working_levels(pit, m)[:, col]).astype(int) for m in ("faci", "mfaci")}
        if level == 0.05:
            assert christoffersen_independence(hits["faci"]).pvalue < 0.01
        assert christoffersen_cc(hits["mfaci"], level).pvalue > 0.05, level
        assert abs(hits["mfaci"].mean() - level) < 0.1 * level + 0.002


def test_range_har_needs_high_and_low_and_passes_on_u_shaped_bars() -> None:
    spec = _spec(models=("range_har",), compare_raw=False)
    with pytest.raises(DataError, match="needs the bars' high and low"):
        minute_risk_backtest(u_shaped_bars(days=20), spec)
    res = minute_risk_backtest(u_shaped_bars(days=40, ranges=True), spec)
    row = {r["variant"]: r for r in res.summary}["calibrated"]
    assert row["calibration"] == "mfaci" and row["var99_pass"] and row["var95_pass"]
    assert abs(row["cov80"] - 0.8) < 0.03
    assert res.meta["calibration_warmup"] == 10_000


def test_an_inverted_high_low_stops_only_the_models_that_read_ranges() -> None:
    from tasks.minute_risk import MINUTE_MODELS, RANGE_MODELS

    assert {
        m for m in MINUTE_MODELS if getattr(make_minute_model(m, {}), "needs_ranges", False)
    } == RANGE_MODELS
    bars = u_shaped_bars(days=20, ranges=True)
    bad = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 100)
        .then(pl.col("low") * 0.9)
        .otherwise(pl.col("high"))
        .alias("high")
    )
    with pytest.raises(DataError, match="inverted high/low"):
        minute_risk_backtest(bad, _spec(models=("range_har",), compare_raw=False))
    res = minute_risk_backtest(bad, _spec(models=("ewma",), compare_raw=False))
    assert {r["model"] for r in res.summary} == {"ewma"}
