"""Hand-checkable cases of the baselines and the distribution families, on real daily data."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from arch import arch_model
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from core.errors import ConfigError, DataError
from core.schema import PREDICTION_SCHEMA, QUANTILE_COLUMNS, QUANTILES
from tasks.models.base import ModelData, get_model
from tasks.models.baselines import ewma_backcast
from tasks.models.families import (
    FilteredHistorical,
    Gaussian,
    StudentT,
    family_names,
    fit_variance_scale,
    get_family,
)
from tasks.models.frames import daily_returns

TRAIN_END = date(2021, 6, 30)
BASELINES = ("naive", "ewma", "har", "har_j", "garch", "gjr_garch")


@pytest.fixture(scope="module")
def btc(btc_daily: pl.DataFrame) -> ModelData:
    return ModelData(btc_daily)


@pytest.fixture(scope="module")
def train(btc_daily: pl.DataFrame) -> pl.DataFrame:
    return btc_daily.filter(pl.col("session_date") <= TRAIN_END)


@pytest.fixture(scope="module")
def after(btc_daily: pl.DataFrame) -> list[date]:
    return btc_daily.filter(pl.col("session_date") > TRAIN_END)["session_date"].head(20).to_list()


def rows_at(frame: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    return frame.filter(pl.col("session_date").is_in(days)).sort("session_date")


def returns(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(pl.coalesce("ret_cc", "ret_oc")).to_series().to_numpy()


def scale_of(train: pl.DataFrame) -> float:
    r = returns(train)
    return float(np.mean(r**2) / np.mean(train["rv"].to_numpy()))


# --- baselines ------------------------------------------------------------------------------------


def test_naive_is_the_last_rv(
    btc: ModelData, btc_daily: pl.DataFrame, train: pl.DataFrame, after: list[date]
) -> None:
    pred = get_model("naive").fit(btc, TRAIN_END).predict(btc, after, horizon=3)
    rows = rows_at(btc_daily, after)
    assert (pred["rv"] == rows["rv_d"]).all()
    np.testing.assert_allclose(
        pred["variance"].to_numpy(), scale_of(train) * rows["rv_d"].to_numpy(), rtol=1e-12
    )
    assert (pred["target"] == pred["origin"] + timedelta(days=3)).all()  # three sessions on, 24x7
    z = stats.norm.ppf(QUANTILES)
    expected = np.sqrt(pred["variance"].to_numpy())[:, None] * z[None, :]
    np.testing.assert_allclose(pred.select(QUANTILE_COLUMNS).to_numpy(), expected, rtol=1e-12)


def test_ewma_matches_a_manual_loop(btc: ModelData, btc_daily: pl.DataFrame, train: pl.DataFrame) -> None:
    origins = btc_daily.filter(pl.col("session_date") > TRAIN_END)["session_date"].head(40).to_list()
    pred = get_model("ewma").fit(btc, TRAIN_END).predict(btc, origins)
    r = returns(btc_daily.filter(pl.col("session_date") <= origins[-1]))
    lam = 0.94
    w = lam ** np.arange(75)
    s2 = float(np.sum(r[:75] ** 2 * w) / w.sum())
    assert s2 == pytest.approx(ewma_backcast(r**2, lam), rel=1e-14)
    path = []
    for x in r:  # s2(t+1) = lam s2(t) + (1 - lam) r(t)^2
        s2 = lam * s2 + (1 - lam) * x**2
        path.append(s2)
    np.testing.assert_allclose(pred["variance"].to_numpy(), np.array(path[-40:]), rtol=1e-12)
    np.testing.assert_allclose(
        pred["rv"].to_numpy(), pred["variance"].to_numpy() / scale_of(train), rtol=1e-12
    )
    flat = get_model("ewma").fit(btc, TRAIN_END).predict(btc, origins, horizon=5)
    assert (flat["variance"] == pred["variance"]).all()  # EWMA forecasts are flat in the horizon


def har_design(frame: pl.DataFrame, jumps: bool) -> np.ndarray:
    cols = [np.ones(frame.height)] + [np.log(frame[c].to_numpy()) for c in ("rv_d", "rv_w", "rv_m")]
    if jumps:
        cols.append(np.log1p(1e4 * frame["jv"].to_numpy()))
    return np.column_stack(cols)


@pytest.mark.parametrize(
    ("name", "jumps", "horizon"), [("har", False, 1), ("har_j", True, 1), ("har", False, 5)]
)
def test_har_is_ols_on_log_rv(
    btc: ModelData,
    btc_daily: pl.DataFrame,
    train: pl.DataFrame,
    after: list[date],
    name: str,
    jumps: bool,
    horizon: int,
) -> None:
    x = har_design(train, jumps)
    y = np.log(train["rv"].to_numpy())
    xs, ys = x[:-horizon], y[horizon:]
    ok = np.isfinite(xs).all(axis=1)
    coef, *_ = np.linalg.lstsq(xs[ok], ys[ok], rcond=None)
    resid = ys[ok] - xs[ok] @ coef
    s2 = resid @ resid / (ok.sum() - x.shape[1])
    model = get_model(name).fit(btc, TRAIN_END)
    pred = model.predict(btc, after, horizon=horizon)
    fit = model.coefficients("BTC-USDT", horizon)  # type: ignore[attr-defined]
    np.testing.assert_allclose(fit.coef, coef, rtol=1e-10)
    assert fit.sigma2 == pytest.approx(s2, rel=1e-10) and fit.n == ok.sum()
    expected = np.exp(har_design(rows_at(btc_daily, after), jumps) @ coef + s2 / 2)  # log-normal correction
    np.testing.assert_allclose(pred["rv"].to_numpy(), expected, rtol=1e-10)
    assert 0.6 < coef[1:4].sum() < 1.0  # persistent but stationary, as log-HAR on RV always is


@pytest.mark.parametrize(("name", "o"), [("garch", 0), ("gjr_garch", 1)])
def test_garch_matches_arch(
    btc: ModelData, btc_daily: pl.DataFrame, train: pl.DataFrame, name: str, o: int
) -> None:
    y = 100 * returns(train)
    res = arch_model(y, mean="Zero", vol="GARCH", p=1, o=o, q=1, dist="t", rescale=False).fit(disp="off")
    model = get_model(name).fit(btc, TRAIN_END)
    ours = model.parameters("BTC-USDT")  # type: ignore[attr-defined]
    assert list(ours) == list(res.params.index)
    np.testing.assert_allclose(list(ours.values()), res.params.to_numpy(), rtol=1e-4)
    # the forecast at train_end is arch's own out-of-sample forecast from its fitted result
    pred = model.predict(btc, [TRAIN_END], horizon=4)
    own = res.forecast(horizon=4, reindex=False).variance.to_numpy()[-1, 3] / 1e4
    assert pred["variance"][0] == pytest.approx(own, rel=1e-8)
    assert pred["family"][0] == "student_t"
    assert json.loads(pred["params"][0])["df"] == pytest.approx(ours["nu"], rel=1e-12)
    # later origins filter the fixed parameters through the later returns only
    t = btc_daily.filter(pl.col("session_date") > TRAIN_END)["session_date"][9]
    upto = 100 * returns(btc_daily.filter(pl.col("session_date") <= t))
    fixed = arch_model(upto, mean="Zero", vol="GARCH", p=1, o=o, q=1, dist="t", rescale=False).fix(
        res.params.to_numpy()
    )
    expect = fixed.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0] / 1e4
    assert model.predict(btc, [t])["variance"][0] == pytest.approx(expect, rel=1e-8)


def test_baselines_are_batch_independent_bit_for_bit(btc: ModelData, after: list[date]) -> None:
    for name in BASELINES:
        model = get_model(name).fit(btc, TRAIN_END)
        batch = model.predict(btc, after, horizon=2)
        for t in (after[0], after[7]):
            alone = model.predict(btc, [t], horizon=2)
            assert alone.equals(batch.filter(pl.col("origin") == t)), name


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("family", ["gaussian", "student_t", "fhs", "skew_t"])
def test_every_model_with_every_family(btc: ModelData, after: list[date], name: str, family: str) -> None:
    model = get_model(name, family=family, mean="train").fit(btc, TRAIN_END)
    pred = model.predict(btc, after[:5], horizon=1)
    q = pred.select(QUANTILE_COLUMNS).to_numpy()
    assert (np.diff(q, axis=1) >= 0).all() and (pred["family"] == family).all()
    assert pred["mean"].n_unique() == 1 and pred["mean"][0] != 0.0
    if family == "gaussian":  # the median is the mean
        np.testing.assert_allclose(pred["q50"].to_numpy(), pred["mean"].to_numpy(), rtol=1e-12)


def test_several_symbols_and_calendars(
    btc_daily: pl.DataFrame, eurusd_daily: pl.DataFrame, spy_daily: pl.DataFrame
) -> None:
    end = date(2017, 12, 29)
    data = ModelData(pl.concat([btc_daily, eurusd_daily, spy_daily]))
    days = [date(2018, 3, 29), date(2018, 3, 31), date(2018, 12, 31)]  # Thu before Good Friday; a Saturday
    model = get_model("har", calendar={"SPY": "XNYS", "EUR-USD": "fx", "BTC-USDT": "24x7"}).fit(data, end)
    pred = model.predict(data, days)
    served = {(s, o) for s, o in pred.select("symbol", "origin").iter_rows()}
    assert ("SPY", date(2018, 3, 31)) not in served and ("EUR-USD", date(2018, 3, 31)) not in served
    assert ("BTC-USDT", date(2018, 3, 31)) in served and ("SPY", date(2018, 3, 29)) in served
    spy = pred.filter((pl.col("symbol") == "SPY") & (pl.col("origin") == date(2018, 3, 29)))
    assert spy["target"][0] == date(2018, 4, 2)  # Good Friday is no session: the next ROW is Monday
    # per-symbol fits are independent of the other symbols in the frame
    alone = get_model("har").fit(ModelData(spy_daily), end).predict(ModelData(spy_daily), days)
    assert alone.drop("target").equals(pred.filter(pl.col("symbol") == "SPY").drop("target"))
    scales = {s: model.fitted[s].var_scale for s in ("SPY", "EUR-USD", "BTC-USDT")}  # type: ignore[attr-defined]
    assert scales["SPY"] > 1.2  # RV misses the overnight gap of US equities
    assert 0.7 < scales["EUR-USD"] < 1.3 and 0.3 < scales["BTC-USDT"] < 1.2


def test_targets_past_the_end_of_the_data(
    spy_daily: pl.DataFrame, btc: ModelData, btc_daily: pl.DataFrame
) -> None:
    last = btc_daily["session_date"].max()
    pred = get_model("naive").fit(btc, TRAIN_END).predict(btc, [last], horizon=2)
    assert pred["target"][0] == last + timedelta(days=2)
    spy = ModelData(spy_daily.filter(pl.col("session_date") <= date(2021, 3, 31)))
    exact = (
        get_model("naive", calendar="XNYS")
        .fit(spy, date(2020, 12, 31))
        .predict(spy, [date(2021, 3, 31)], horizon=2)
    )
    assert exact["target"][0] == date(2021, 4, 5)  # Thu 1 Apr, (Good Friday closed), Mon 5 Apr
    rough = get_model("naive").fit(spy, date(2020, 12, 31)).predict(spy, [date(2021, 3, 31)], horizon=2)
    assert rough["target"][0] == date(2021, 4, 2)  # without a calendar: weekdays


def test_empty_and_foreign_origins(btc: ModelData) -> None:
    model = get_model("har").fit(btc, TRAIN_END)
    for origins in ([], [date(1990, 1, 1)]):
        out = model.predict(btc, origins)
        assert out.height == 0 and out.schema == pl.Schema(PREDICTION_SCHEMA)


@pytest.mark.parametrize(
    ("name", "config", "word"),
    [
        ("ewma", {"lam": 1.5}, "lam"),
        ("ewma", {"lam": True}, "lam"),
        ("har", {"family": "cauchy"}, "family"),
        ("garch", {"mean": "median"}, "mean"),
        ("naive", {"var_scale": -1.0}, "var_scale"),
        ("naive", {"calendar": "XXXX"}, "calendar"),
    ],
)
def test_bad_parameters_name_themselves(name: str, config: dict[str, object], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        get_model(name, **config)


def test_bad_calls(btc: ModelData, btc_daily: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        get_model("naive").predict(btc, [TRAIN_END])
    model = get_model("naive").fit(btc, TRAIN_END)
    with pytest.raises(ConfigError, match="horizon"):
        model.predict(btc, [TRAIN_END], horizon=0)
    with pytest.raises(ConfigError, match="train_end"):
        get_model("naive").fit(btc, "2021-06-30")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no feature rows"):
        get_model("naive").fit(btc, date(2000, 1, 1))
    with pytest.raises(DataError, match="at least 250"):
        get_model("garch").fit(btc, date(2017, 10, 1))
    with pytest.raises(DataError, match="rv_m"):
        get_model("har").fit(ModelData(btc_daily.drop("rv_m")), TRAIN_END)


def test_validation_qlike_har_beats_naive(btc: ModelData, btc_daily: pl.DataFrame) -> None:
    """A coarse sanity check on 2023: HAR-RV's QLIKE is below the random walk's."""
    end = date(2022, 12, 31)
    origins = btc_daily.filter(pl.col("session_date").is_between(end, date(2023, 12, 30)))[
        "session_date"
    ].to_list()
    realized = btc_daily.select(pl.col("session_date").alias("target"), pl.col("rv").alias("real"))
    losses = {}
    for name in ("naive", "har"):
        pred = get_model(name).fit(btc, end).predict(btc, origins).join(realized, on="target")
        ratio = (pred["real"] / pred["rv"]).to_numpy()
        losses[name] = float(np.mean(ratio - np.log(ratio) - 1))
    assert losses["har"] < losses["naive"]


# --- families -------------------------------------------------------------------------------------


def test_student_t_quantiles_match_scipy() -> None:
    mean, var = np.array([0.001, -0.002]), np.array([4e-4, 1e-3])
    fam = StudentT(df=5.0)
    s = np.sqrt(3.0 / 5.0)
    expected = mean[:, None] + np.sqrt(var)[:, None] * stats.t.ppf(QUANTILES, 5.0)[None, :] * s
    np.testing.assert_allclose(fam.quantiles(mean, var), expected, rtol=1e-13)
    assert stats.t.var(5.0, scale=fam.unit_scale(5.0)) == pytest.approx(1.0)  # var stays the variance
    assert fam.params() == {"df": 5.0}


def test_student_t_fit_recovers_df() -> None:
    rng = np.random.default_rng(3)
    z = stats.t.rvs(5.0, size=6000, random_state=rng) * np.sqrt(3.0 / 5.0)
    fitted = StudentT().fit(z)
    assert fitted.df is not None and 4.0 < fitted.df < 6.5
    nearly_normal = StudentT().fit(rng.standard_normal(6000))
    assert nearly_normal.df is not None and nearly_normal.df > 30
    assert StudentT(df_bounds=(2.1, 8.0)).fit(rng.standard_normal(6000)).df == pytest.approx(8.0, abs=1e-3)
    with pytest.raises(ConfigError, match="df"):
        StudentT(df=1.5)


def test_fhs_quantiles_are_the_empirical_ones() -> None:
    rng = np.random.default_rng(5)
    z = rng.standard_t(4, size=777)
    fam = FilteredHistorical().fit(np.concatenate([z, [np.nan, np.inf]]))  # non-finite ones dropped
    np.testing.assert_allclose(fam.standard_quantiles(), np.quantile(z, QUANTILES), rtol=1e-14)
    q = fam.quantiles(0.01, 4.0)
    np.testing.assert_allclose(q[0], 0.01 + 2.0 * np.quantile(z, QUANTILES), rtol=1e-14)
    assert fam.params()["n"] == 777
    with pytest.raises(DataError, match="at least"):
        FilteredHistorical().fit(z[:10])


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["gaussian", "student_t", "fhs"]),
    mean=st.floats(-0.5, 0.5),
    var=st.floats(1e-14, 10.0),
    seed=st.integers(0, 1000),
)
def test_family_quantiles_are_monotone(name: str, mean: float, var: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = np.round(rng.standard_t(3, size=200), 1)  # ties on purpose
    fam = get_family(name).fit(z)
    q = fam.quantiles(np.full(3, mean), np.full(3, var))
    assert q.shape == (3, len(QUANTILES)) and np.isfinite(q).all()
    assert (np.diff(q, axis=1) >= 0).all()


def test_family_registry_and_bad_inputs() -> None:
    assert family_names() == ["fhs", "gaussian", "skew_t", "student_t"]
    assert isinstance(get_family("gaussian"), Gaussian)
    with pytest.raises(ConfigError, match="family"):
        get_family("laplace")
    with pytest.raises(DataError, match="variance"):
        Gaussian().quantiles(0.0, np.array([1.0, 0.0]))
    with pytest.raises(ConfigError, match="levels"):
        Gaussian().quantiles(0.0, 1.0, levels=(0.5, 1.0))


def test_variance_scale() -> None:
    assert fit_variance_scale(np.array([0.1, -0.1, 0.2]), np.array([0.01, 0.01, 0.04])) == pytest.approx(1.0)
    assert fit_variance_scale(np.array([0.2, np.nan, 0.2]), np.array([0.02, 1.0, 0.02])) == pytest.approx(2.0)
    with pytest.raises(DataError, match="pairs"):
        fit_variance_scale(np.array([0.1]), np.array([0.01]))
    with pytest.raises(DataError, match="positive"):
        fit_variance_scale(np.zeros(5), np.ones(5))


def test_returns_fall_back_to_open_to_close(btc_daily: pl.DataFrame) -> None:
    first = btc_daily.head(3)
    r = daily_returns(first)
    assert first["ret_cc"][0] is None and r[0] == first["ret_oc"][0]
    assert r[1] == first["ret_cc"][1]


def test_arch_on_the_whole_series_would_leak(btc_daily: pl.DataFrame) -> None:
    """Why GARCH forecasts use one arch model per origin: arch bounds the variance recursion with
    statistics of the WHOLE series it is given, so extreme later returns move an earlier forecast."""
    y = 100 * returns(btc_daily.head(1600))
    spec = {"mean": "Zero", "vol": "GARCH", "p": 1, "q": 1, "dist": "t", "rescale": False}
    params = arch_model(y[:1400], **spec).fit(disp="off").params.to_numpy()
    t = 1450
    garbled = y.copy()
    garbled[t + 1 :] = 1e6
    clean = arch_model(y, **spec).forecast(params, start=t, reindex=False).variance.to_numpy()[0, 0]
    leaked = arch_model(garbled, **spec).forecast(params, start=t, reindex=False).variance.to_numpy()[0, 0]
    assert leaked != clean
    alone = arch_model(garbled[: t + 1], **spec).forecast(params, start=t, reindex=False).variance.to_numpy()
    assert alone[0, 0] == clean
