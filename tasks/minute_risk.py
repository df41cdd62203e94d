"""Minute mode: next-minute VaR, ES and intervals, seasonality-adjusted and calibrated online.

:func:`minute_risk_backtest` ``(bars, spec)`` is the whole pure pipeline:

1. One-minute log returns of the bars; a return across missing bars (a gap, the overnight jump) is
   dropped (:func:`tasks.intraday_seasonality.one_bar_returns`).
2. A CHRONOLOGICAL split: the first ``1 - test_fraction`` of the returns train, the rest is the
   hold-out (never random).
3. The time-of-day volatility profile is fitted on the training returns only
   (:func:`tasks.intraday_seasonality.fit_profile`); every return is divided by its factor.
4. Each model (``transformer``: :class:`tasks.models.transformer.MinuteTransformer` with the research
   config :data:`tasks.risk.MINUTE_DEFAULT_CONFIG`; ``ewma``, ``garch``:
   :mod:`tasks.models.minute_baselines`; ``range_har``: :mod:`tasks.models.minute_range_har`, which
   also reads each bar's high-low range, divided by the same factor) is fitted on the deseasonalised
   training returns; its variance forecast of minute ``p`` uses returns (and bars) before ``p`` only
   and is multiplied back by the squared factor of ``p``'s bucket.
5. Online calibration of the quantiles (:mod:`tasks.minute_scoring`: DtACI run apart in each tail
   state of the previous minute by default, or DtACI, ACI or Mondrian ACI), using only breaches
   before each minute. The recursions start on the last ``calibration_warmup`` training minutes, so
   the hold-out starts with adapted levels; only hold-out minutes are scored and stored.

Variants scored per model: ``raw`` (the model fitted on the raw returns, no profile, no
calibration; only with ``compare_raw``), ``deseasonalised`` (profile, no calibration) and
``calibrated`` (profile and online calibration). The recommended (model, variant) passes the most
of the daily report's five checks (:data:`tasks.risk_recommend.CHECKS`: Kupiec and Christoffersen CC
at 95% and 99%, p > 0.05; 80% coverage within 3 pp), then has the lowest QLIKE.

Pure: numpy/polars in, frames and dicts out; torch is imported only when the transformer is fitted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from tasks.intraday_seasonality import (
    SeasonalitySettings,
    SeasonalProfile,
    deseasonalise,
    fit_profile,
    one_bar_returns,
    seasonal_factor,
)
from tasks.minute_scoring import (
    MINUTE_CALIBRATIONS,
    family_cdf,
    score_variant,
    variant_frame,
    variant_quantiles,
    working_levels,
)
from tasks.risk import MINUTE_DEFAULT_CONFIG
from tasks.risk_recommend import CHECKS, risk_checks

#: Minute models: name -> description.
MINUTE_MODELS: dict[str, str] = {
    "transformer": "research minute Transformer (tasks.models.transformer.MinuteTransformer)",
    "ewma": "EWMA, decay chosen by training QLIKE",
    "garch": "GARCH(1,1)-t by arch",
    "range_har": "HAR in log high-low (Parkinson) range variance over 1-240 minutes, fitted by QLIKE",
}
#: Models that read the bars' high and low (``needs_ranges``).
RANGE_MODELS: frozenset[str] = frozenset({"range_har"})
#: Models a run fits when none are named.
DEFAULT_MINUTE_MODELS: tuple[str, ...] = ("transformer", "ewma", "range_har")
#: Variants scored per model, in report order.
VARIANTS: tuple[str, ...] = ("raw", "deseasonalised", "calibrated")
#: Positions per forecast call of a windowed model (progress is reported after each).
FORECAST_CHUNK = 4096
#: Default online calibration of minute mode.
DEFAULT_CALIBRATION = "mfaci"
#: Default number of the last training bars (minutes at the default 1m interval) that warm the online
#: calibration up.
DEFAULT_CALIBRATION_WARMUP = 10_000

#: ``progress(stage, done, total)``: a stage finished ``done`` of ``total`` steps.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MinuteRiskSpec:
    """What one minute backtest does (every field settable from the CLI).

    Attributes
    ----------
    symbol : str
        The instrument (for labels).
    timezone : str
        Clock of the time-of-day buckets (the instrument's exchange zone; UTC for 24/7 crypto).
    interval_minutes : int
        Bar interval; returns spanning more are dropped.
    test_fraction : float
        Share of the returns held out at the end.
    models : tuple[str, ...]
        Names from :data:`MINUTE_MODELS`.
    model_config : Mapping[str, Mapping[str, Any]]
        Per model, its settings (transformer: ``MinuteConfig`` fields over
        :data:`~tasks.risk.MINUTE_DEFAULT_CONFIG`; ewma: ``lam``, ``family``; garch: ``family``).
    calibration : str
        ``mfaci`` (default: DtACI run apart in each tail state of the previous minute), ``faci``
        (DtACI), ``aci``, ``caci`` or ``none`` (:data:`tasks.minute_scoring.MINUTE_CALIBRATIONS`).
    calibration_warmup : int
        The last this many training bars are forecast too and run through the online calibration
        before the hold-out starts (their PITs are in-sample); 0 starts it at the nominal levels.
    aci_gamma : float | None
        One ACI step for every level; None: :func:`tasks.minute_scoring.aci_steps`.
    seasonality : SeasonalitySettings
        The profile's settings.
    compare_raw : bool
        Also fit each model on the raw returns (the ``raw`` variant).
    n_sims, seed
        ES-test simulations and their seed.
    """

    symbol: str
    timezone: str = "UTC"
    interval_minutes: int = 1
    test_fraction: float = 0.2
    models: tuple[str, ...] = DEFAULT_MINUTE_MODELS
    model_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    calibration: str = DEFAULT_CALIBRATION
    calibration_warmup: int = DEFAULT_CALIBRATION_WARMUP
    aci_gamma: float | None = None
    seasonality: SeasonalitySettings = field(default_factory=SeasonalitySettings)
    compare_raw: bool = True
    n_sims: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        tf = self.test_fraction
        if isinstance(tf, bool) or not isinstance(tf, int | float) or not 0.0 < tf < 1.0:
            raise ConfigError(f"test_fraction must be a number in (0, 1); got {tf!r}")
        bad = [m for m in self.models if m not in MINUTE_MODELS]
        if bad or not self.models:
            raise ConfigError(f"models must be among {sorted(MINUTE_MODELS)}; got {list(self.models)}")
        extra = sorted(set(self.model_config) - set(MINUTE_MODELS))
        if extra:
            raise ConfigError(f"model_config names unknown model(s) {extra}; known: {sorted(MINUTE_MODELS)}")
        if self.calibration not in MINUTE_CALIBRATIONS:
            raise ConfigError(
                f"calibration must be one of {list(MINUTE_CALIBRATIONS)}; got {self.calibration!r}"
            )
        w = self.calibration_warmup
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ConfigError(f"calibration_warmup must be a whole number of bars >= 0; got {w!r}")
        g = self.aci_gamma
        if g is not None and not (isinstance(g, int | float) and 0 < g < 1):
            raise ConfigError(f"aci_gamma must be None or in (0, 1); got {g!r}")
        for m in dict.fromkeys([*self.models, *self.model_config]):
            make_minute_model(m, self.model_config.get(m, {}))  # checks every key now, before any fit

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        out = asdict(self)
        out["models"] = list(self.models)
        out["model_config"] = {k: dict(v) for k, v in self.model_config.items()}
        return out


def model_settings(name: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full settings of minute model ``name``: its defaults overridden by ``config``."""
    base: dict[str, Any] = dict(MINUTE_DEFAULT_CONFIG) if name == "transformer" else {}
    return base | dict(config or {})


def make_minute_model(name: str, config: Mapping[str, Any] | None = None) -> Any:
    """An unfitted minute model (``MinuteForecaster``); unknown settings raise ``ConfigError``."""
    cfg = model_settings(name, config)
    if name == "transformer":
        from tasks.models.transformer import MinuteConfig, MinuteTransformer

        unknown = sorted(set(cfg) - set(MinuteConfig.__dataclass_fields__))
        if unknown:
            known = sorted(MinuteConfig.__dataclass_fields__)
            raise ConfigError(f"unknown transformer setting(s) {unknown}; known: {known}")
        return MinuteTransformer(**cfg)
    from tasks.models.minute_baselines import MinuteEwma, MinuteGarch
    from tasks.models.minute_range_har import MinuteRangeHar

    cls = {"ewma": MinuteEwma, "garch": MinuteGarch, "range_har": MinuteRangeHar}.get(name)
    if cls is None:
        raise ConfigError(f"unknown minute model {name!r}; known: {sorted(MINUTE_MODELS)}")
    known = {"ewma": ["family", "lam"], "garch": ["family"], "range_har": ["family", "windows"]}[name]
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ConfigError(f"unknown {name} setting(s) {unknown}; known: {known}")
    return cls(**cfg)


# ------------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class MinuteSeries:
    """The modelled one-minute returns, each return's bar range and the chronological split.

    ``log_range`` is ``ln(high / low)`` of the bar that closes each return (None when the bars have no
    high and low).
    """

    ts: pl.Series
    ret: np.ndarray
    n_train: int
    n_dropped: int
    log_range: np.ndarray | None = None

    @property
    def test(self) -> slice:
        """Positions of the hold-out."""
        return slice(self.n_train, self.ret.size)


def bar_log_range(bars: pl.DataFrame, symbol: str) -> np.ndarray | None:
    """``ln(high / low)`` of each bar after the first (None without ``high``/``low`` columns).

    A bar whose high or low is missing or not positive, or whose high is below its low, is a data
    error that names the first such bar.
    """
    if not {"high", "low"} <= set(bars.columns):
        return None
    hi = bars["high"].cast(pl.Float64).to_numpy()[1:]
    lo = bars["low"].cast(pl.Float64).to_numpy()[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(hi / lo)
    bad = ~np.isfinite(out) | (out < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0]) + 1
        raise DataError(
            f"{symbol}: {int(bad.sum())} bars have a missing, non-positive or inverted high/low, "
            f"first at {bars['ts'][i]} (high {float(hi[i - 1])!r}, low {float(lo[i - 1])!r})"
        )
    return out


def minute_series(bars: pl.DataFrame, spec: MinuteRiskSpec, min_returns: int = 200) -> MinuteSeries:
    """One-bar returns of ``bars`` (sorted ``ts``, ``close``) and the chronological split."""
    if bars.height < 3 or not {"ts", "close"} <= set(bars.columns):
        raise DataError(f"{spec.symbol}: minute mode needs bars with ts and close; got {bars.height} rows")
    frame = bars.sort("ts")
    rets = one_bar_returns(frame["ts"], frame["close"].cast(pl.Float64).to_numpy(), spec.interval_minutes)
    ranged = any(m in RANGE_MODELS for m in spec.models)  # a bad high or low stops only the range models
    log_range = bar_log_range(frame, spec.symbol) if ranged else None
    keep = rets["keep"].to_numpy()
    kept = rets.filter(pl.col("keep"))
    n = kept.height
    n_train = int(round(n * (1.0 - spec.test_fraction)))
    if n < min_returns or n_train < min_returns // 2 or n - n_train < min_returns // 4:
        raise DataError(
            f"{spec.symbol}: {n} one-minute returns ({rets.height - n} across gaps dropped) are too few "
            f"for a split at test_fraction={spec.test_fraction} (need >= {min_returns}, "
            f"{min_returns // 2} to train and {min_returns // 4} to test)"
        )
    return MinuteSeries(
        kept["ts"], kept["ret"].to_numpy(), n_train, rets.height - n,
        None if log_range is None else log_range[keep],
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ one model
def _fit_forecast(
    name: str, spec: MinuteRiskSpec, x: np.ndarray, rng: np.ndarray | None, first: int,
    n_train: int, progress: Progress | None, label: str,
) -> tuple[Any, np.ndarray, float]:  # fmt: skip
    """Fit ``name`` on ``x[:n_train]`` (and ``rng[:n_train]``); variance forecasts of positions ``>= first``.

    ``rng`` is the bars' log high-low range, passed to a model that ``needs_ranges``.
    """
    model = make_minute_model(name, spec.model_config.get(name, {}))
    if progress is not None and hasattr(model, "progress"):
        model.progress = lambda s: progress(f"train {label}", s.epoch + 1, s.epochs)
    needs = bool(getattr(model, "needs_ranges", False))
    if needs and rng is None:
        raise DataError(f"{spec.symbol}: model {name!r} needs the bars' high and low; these bars have none")
    t0 = time.perf_counter()
    model.fit(x[:n_train], **({"ranges": rng[:n_train]} if needs and rng is not None else {}))
    var = _forecast_from(model, x, rng if needs else None, first, progress, f"forecast {label}")
    return model, var[first:], time.perf_counter() - t0


def _forecast_from(
    model: Any, x: np.ndarray, rng: np.ndarray | None, first: int, progress: Progress | None, stage: str
) -> np.ndarray:
    """Variance forecasts of positions ``>= first`` (NaN before), in chunks for a windowed model.

    A windowed model (the transformer: ``out[p]`` from ``x[p - m : p]`` only) forecasts each chunk of
    :data:`FORECAST_CHUNK` positions from its own slice, which is the same number and reports progress;
    a recursive model (EWMA, GARCH, range HAR) runs once over the whole array.
    """
    out = np.full(x.size, np.nan)
    window = getattr(getattr(model, "cfg", None), "window", None)
    if window is None:
        kw = {} if rng is None else {"ranges": rng}
        out[first:] = np.asarray(model.forecast(x, **kw), dtype=float)[first : x.size]
        if progress is not None:
            progress(stage, 1, 1)
        return out
    starts = range(first, x.size, FORECAST_CHUNK)
    for i, c in enumerate(starts):
        end, lo = min(c + FORECAST_CHUNK, x.size), max(0, c - window)
        out[c:end] = np.asarray(model.forecast(x[lo:end]), dtype=float)[c - lo : end - lo]
        if progress is not None:
            progress(stage, i + 1, len(starts))
    return out


def _variant(
    s: MinuteSeries, var: np.ndarray, family: Any, method: str, spec: MinuteRiskSpec, n_warm: int
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Hold-out rows and scores of one forecast path.

    ``var`` covers the last ``n_warm`` training minutes and the hold-out: the training part only
    warms the online calibration up; rows and scores are of the hold-out.
    """
    ret_all = s.ret[s.n_train - n_warm :]
    sd_all = np.sqrt(var)
    levels = None
    if method != "none":
        pit = family_cdf(family, ret_all / sd_all)
        gamma = None if spec.aci_gamma is None else np.asarray(spec.aci_gamma)
        levels = working_levels(pit, method, gamma, warmup=n_warm)
    ret, sd = ret_all[n_warm:], sd_all[n_warm:]
    out = variant_quantiles(sd, family, levels)
    return variant_frame(s.ts[s.test], ret, sd**2, out), score_variant(
        ret, sd, family, out, spec.n_sims, spec.seed
    )


def _trim_warmup(var: np.ndarray, n_warm: int) -> tuple[np.ndarray, int]:
    """Drop the warm-up minutes up to the last one without a forecast (a windowed model's first)."""
    missing = np.flatnonzero(~np.isfinite(var[:n_warm]))
    skip = 0 if missing.size == 0 else int(missing[-1]) + 1
    return var[skip:], n_warm - skip


def _model_variants(
    name: str,
    s: MinuteSeries,
    factor: np.ndarray,
    z: np.ndarray,
    spec: MinuteRiskSpec,
    progress: Progress | None,
) -> tuple[list[pl.DataFrame], list[dict[str, Any]]]:
    """Every variant of one model: frames (with ``model``/``variant``) and summary rows."""
    frames, rows = [], []
    n_warm = min(spec.calibration_warmup, s.n_train)
    first = s.n_train - n_warm
    paths: list[tuple[str, Any, np.ndarray, str, float]] = []
    if spec.compare_raw:
        m_raw, v_raw, w_raw = _fit_forecast(
            name, spec, s.ret, s.log_range, first, s.n_train, progress, f"{name} raw"
        )
        paths.append(("raw", m_raw, v_raw, "none", w_raw))
    rng_z = None if s.log_range is None else s.log_range / factor
    model, v_z, wall = _fit_forecast(
        name, spec, z, rng_z, first, s.n_train, progress, f"{name} deseasonalised"
    )
    v_r = v_z * factor[first:] ** 2
    paths += [
        ("deseasonalised", model, v_r, "none", wall),
        ("calibrated", model, v_r, spec.calibration, wall),
    ]
    for variant, m, var_all, method, w in paths:
        var, warm = _trim_warmup(var_all, n_warm)
        ok = np.isfinite(var)
        if not ok.all():
            raise DataError(f"{name}: no variance forecast for {int((~ok).sum())} hold-out minutes")
        frame, row = _variant(s, var, m.family_fit, method, spec, warm)
        frames.append(frame.with_columns(model=pl.lit(name), variant=pl.lit(variant)))
        rows.append({"model": name, "variant": variant, "calibration": method, "fit_wall_s": w,
                     "family": m.family_fit.name, "config": m.config()} | row)  # fmt: skip
    return frames, rows


# ------------------------------------------------------------------------------------------ pipeline
@dataclass
class MinuteRiskResult:
    """Everything a minute backtest produced (the flow stores and reports it)."""

    spec: MinuteRiskSpec
    predictions: pl.DataFrame
    summary: list[dict[str, Any]]
    profile: SeasonalProfile
    meta: dict[str, Any]
    recommended: dict[str, Any] | None


#: What a summary row needs for :func:`tasks.risk_recommend.risk_checks`.
_CHECKED = ("var95_kupiec_p", "var95_cc_p", "var99_kupiec_p", "var99_cc_p", "cov80")


def with_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each summary row with the daily report's checks (:data:`tasks.risk_recommend.CHECKS`): one Boolean
    per check (Kupiec and CC at 95% and 99%, p > 0.05; 80% coverage within 3 pp) and ``checks_passed``.
    """
    if not rows:
        return []
    frame = pl.DataFrame(
        [{c: r.get(c) for c in _CHECKED} for r in rows], schema=dict.fromkeys(_CHECKED, pl.Float64)
    )
    checked = risk_checks(frame).select(*CHECKS, "checks_passed").to_dicts()
    return [r | c for r, c in zip(rows, checked, strict=True)]


def _rank(row: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key of a checked row: checks passed, then lower QLIKE (NaN last), then calibrated."""
    qlike = row.get("qlike")
    qlike = qlike if isinstance(qlike, float) and np.isfinite(qlike) else np.inf
    return (row["checks_passed"], -qlike, row.get("variant") == "calibrated")


def recommend(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The (model, variant) to use: most of the five checks passed, then lowest QLIKE (on a tie, the
    calibrated variant, which keeps adapting online).

    The daily report's rule and checks (:mod:`tasks.risk_recommend`): backtest passes first, QLIKE
    second. ``candidates`` and ``candidates_passing`` say how many rows it chose from and how many pass
    every check, since the choice is made on the same hold-out the rows are scored on.
    """
    if not rows:
        return None
    checked = with_checks(rows)
    best = max(checked, key=_rank)
    keys = ("model", "variant", "var99_pass", "var95_pass", "cov80", "var99_rate", "var95_rate", "qlike",
            "checks_passed")  # fmt: skip
    passing = sum(r["checks_passed"] == len(CHECKS) for r in checked)
    return {k: best.get(k) for k in keys} | {"candidates": len(checked), "candidates_passing": passing}


def minute_risk_backtest(
    bars: pl.DataFrame, spec: MinuteRiskSpec, progress: Progress | None = None
) -> MinuteRiskResult:
    """The minute-mode pipeline of the module docstring.

    Parameters
    ----------
    bars : pl.DataFrame
        One symbol's minute bars (``ts`` UTC, ``close``).
    spec : MinuteRiskSpec
        What to run.
    progress : Progress | None
        ``progress(stage, done, total)`` after each training epoch and forecast.

    Returns
    -------
    MinuteRiskResult
        Hold-out predictions (one row per model, variant and minute), one summary row per (model,
        variant), the profile, run facts (sizes, span, wall time) and the recommendation.
    """
    t0 = time.perf_counter()
    s = minute_series(bars, spec)
    train = slice(0, s.n_train)
    profile = fit_profile(s.ret[train], s.ts[train], spec.timezone, spec.seasonality)
    factor = seasonal_factor(profile, s.ts)
    z = deseasonalise(s.ret, s.ts, profile)
    frames, rows = [], []
    for name in spec.models:
        f, r = _model_variants(name, s, factor, z, spec, progress)
        frames += f
        rows += r
    preds = pl.concat(frames, how="vertical").with_columns(
        season=pl.Series(np.tile(factor[s.test], len(frames)))
    )
    meta = {
        "symbol": spec.symbol, "n_returns": int(s.ret.size), "n_train": s.n_train,
        "n_test": int(s.ret.size - s.n_train), "dropped_gap_returns": s.n_dropped,
        "train_start": str(s.ts[0]), "train_end": str(s.ts[s.n_train - 1]),
        "test_start": str(s.ts[s.n_train]), "test_end": str(s.ts[-1]), "split": "chronological",
        "calibration_warmup": min(spec.calibration_warmup, s.n_train),
        "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    return MinuteRiskResult(spec, preds, rows, profile, meta, recommend(rows))
