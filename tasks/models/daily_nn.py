"""Shared machinery of the daily torch forecasters: ``voltransformer``, ``prob_lstm``, ``lstm_point``.

Each of them reads a window of the last ``window`` sessions of derived daily features of one symbol
and forecasts the log realized variance of session ``t + horizon``. They differ only in the network
(:meth:`DailyTorchForecaster.build_net`), the default features and the loss.

Residual over HAR (``residual=True``, the default)
-------------------------------------------------
The log-RV forecast is HAR's plus a learned correction: ``mu = offset + y_std * net(x)``. Per symbol,
a log-HAR (``tasks.models.har``: ``har_design`` and ``fit_har``, the same OLS as the ``har`` model) is
fitted ONCE on every pair of the training window (rows ``<= train_end``, the validation tail
included) and its forecast from each origin row is the offset: ``x'b`` (its log-median), plus
``s2 / 2`` under ``qlike`` (the log of HAR's bias-corrected E[RV] forecast, which QLIKE targets).
Using the in-sample fitted values of one window-wide fit as training offsets is a deliberate
simplification: each training row's offset uses coefficients estimated with later rows of the same
window (never rows after ``train_end``), so the validation tail scores the network against an
in-sample HAR, which favours keeping HAR. The network's targets are the HAR residuals, scaled by
HAR's residual standard deviation (not scaled under ``qlike``, whose loss needs log units); the head's
output layer starts at zero (and the scale output at exactly 1 in those units), so an untrained
network forecasts HAR's ``rv`` exactly under ``qlike`` and ``gaussian_nll`` (to float32 rounding of
the scale) and HAR's median times the smearing factor under ``mse`` and ``student_t_nll``. Early
stopping scores the starting weights too (``fit_torch(keep_initial=True)``): unless some epoch beats
HAR on the validation tail, the fitted model IS HAR (``validation["kept_har"]``).

Inputs (all known at the end of session ``t``; see :data:`FEATURES`)
--------------------------------------------------------------------
A symbol's sessions are its rows of ``features_daily`` (``tasks.models.frames``). Each feature is a
polars expression over that symbol's rows that reads the row itself and earlier rows only (rolling
and EWM windows end at the row). Features are standardized PER SYMBOL with a :class:`~.torch_data.Scaler`
fitted on the rows that the training split's windows cover (sessions up to the last training origin),
clipped to +-``clip_inputs`` and non-finite values become 0 (the training mean). Optional cross-asset
inputs (``cross_asset=True``) are the mean over partners of the rolling return and log-RV correlations
of ``cross_asset_daily`` on the session. An input with no finite value in the rows the scaler is fitted
on, for any fitted symbol (``neg_share`` and ``jump_share`` of realized measures without semivariances
or bipower variation; the range and volume inputs of data without bars), is DROPPED rather than fed as
a constant 0: the network is built on the remaining inputs (:attr:`DailyTorchForecaster.inputs`,
recorded in ``validation["inputs"]`` / ``["inputs_dropped"]`` and in the checkpoint) and predictions
read the same set.

Pooled training and the market factor
-------------------------------------
A model fits every symbol in ``data`` as one panel: the samples of all symbols share one network,
each symbol's inputs standardized on its own training rows and its targets scaled by its own HAR
residual scale, and the validation tail is the last origin DATES of the whole panel. ``pool``
(``none``/``class``/``all``) tells the walk-forward which symbols to give it: with ``class`` or
``all``, one fit per fold on a date axis common to the panel serves every member
(``flows.steps.evaluate_panel``). A member with fewer than ``min_train`` training samples is left
out of the fit (:attr:`DailyTorchForecaster.too_short`) and gets no forecast; a lone short symbol is
an error. The ``mkt_rv`` input is the lagged cross-sectional market factor of
:func:`tasks.models.market_factor.with_market_factor` over every symbol in ``data`` (``relative``:
per-symbol standardized log EWMA of RV, averaged over symbols as of their last session dated before
the row's), so no market that closes later on a date leaks into one that closes earlier.

Samples
-------
Origin row ``i`` of a symbol (``i >= window - 1``), input rows ``i - window + 1 .. i``, target
``log RV`` of row ``i + horizon``. ``fit(data, train_end)`` keeps only rows ``<= train_end`` before
anything else, so every target is known by then; targets on low-coverage sessions are dropped
(``drop_low_coverage_targets``). The validation split is the last ``val_fraction`` of the origin
dates, pooled over symbols, after a gap of ``horizon - 1`` dates (:func:`~.torch_data.chronological_split`):
the chronologically last part of the training window, never shuffled; training batches are shuffled
inside the training split only, and the epoch with the best validation loss is restored. Without
``residual``, targets are standardized per symbol on the training split (only centred for
``loss="qlike"``, whose loss needs log units).

Heads and losses (standardized log-RV units)
--------------------------------------------
``mse``
    One output ``mu``; squared error (the research's loss).
``qlike``
    One output ``mu``; QLIKE of ``RV`` against ``f = exp(mu)``: ``exp(y - mu) - (y - mu) - 1``.
``gaussian_nll``
    ``mu`` and ``s = softplus(.) + 1e-3``: the Gaussian negative log-likelihood of log RV.
``student_t_nll``
    ``mu``, ``s`` and one learned ``df = softplus(.) + 2`` for the whole model.

From a log-RV forecast to a :data:`~tasks.models.base.PREDICTION_SCHEMA` row
--------------------------------------------------------------------------
``rv`` is the forecast of E[RV]:

- ``gaussian_nll``: ``exp(mu + s^2 / 2)``, the log-normal mean;
- ``qlike``: ``exp(mu)`` (QLIKE is minimized by the conditional mean of RV, so no correction);
- ``mse`` and ``student_t_nll``: ``exp(mu) * smear``. ``exp(mu)`` is the median of RV; the Student-t
  has no finite E[exp(.)], so the median is corrected by Duan's smearing factor
  ``smear = mean(exp(y - mu))`` over the validation samples (all training samples without a
  validation split), the same correction for both.

``var = c * rv`` with the per-symbol variance scale ``c = mean(r^2) / mean(RV)`` of the training rows
(:func:`~tasks.models.families.fit_variance_scale`); ``mean`` is 0 (``mean="zero"``) or the training
mean return; the quantiles come from the configured family (gaussian, student_t, skew_t, fhs) fitted on the
standardized residuals ``(r(t+h) - mean) / sqrt(var_t)`` of all training samples (pooled symbols).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ConfigError, DataError
from tasks.models.base import ModelData
from tasks.models.families import Family, family_names, fit_variance_scale, get_family
from tasks.models.frames import (
    RV_FLOOR,
    check_calendar,
    check_date,
    check_horizon,
    check_origins,
    concat_predictions,
    origin_positions,
    prediction_frame,
    split_symbols,
    symbol_calendar,
    target_sessions,
)
from tasks.models.har import HarFit, fit_har, har_design
from tasks.models.market_factor import FACTOR, with_market_factor
from tasks.models.torch_data import Scaler, WindowXY, chronological_split, make_windows
from tasks.models.torch_fit import EpochStats, History, LoopSettings, fit_torch, predict_batches
from tasks.models.torch_runtime import pick_device, seeded, to_device, torch_threads
from tasks.train import volatility_metrics

_LOG_FLOOR = math.log(RV_FLOOR)


def _log_var(col: pl.Expr) -> pl.Expr:
    return col.cast(pl.Float64).clip(lower_bound=RV_FLOOR).log()


def _ret() -> pl.Expr:
    return pl.coalesce("ret_cc", "ret_oc").cast(pl.Float64)


def _rsi(period: int) -> pl.Expr:
    delta = pl.col("close").cast(pl.Float64).log().diff()
    up = delta.clip(lower_bound=0.0).ewm_mean(alpha=1.0 / period, adjust=False, ignore_nulls=True)
    down = (-delta).clip(lower_bound=0.0).ewm_mean(alpha=1.0 / period, adjust=False, ignore_nulls=True)
    return (up - down) / (up + down)  # = (RSI - 50) / 50, in [-1, 1]


#: Derived daily features: name -> (expression over one symbol's sorted rows, columns it reads).
#: Every expression uses the row itself and earlier rows only.
FEATURES: dict[str, tuple[Callable[[], pl.Expr], tuple[str, ...]]] = {
    "log_rv": (lambda: _log_var(pl.col("rv_d")), ("rv_d",)),
    "log_rv_w": (lambda: _log_var(pl.coalesce("rv_w", "rv_d")), ("rv_w", "rv_d")),
    "log_rv_m": (lambda: _log_var(pl.coalesce("rv_m", "rv_w", "rv_d")), ("rv_m", "rv_w", "rv_d")),
    "ret": (_ret, ("ret_cc", "ret_oc")),
    "abs_ret": (lambda: _ret().abs(), ("ret_cc", "ret_oc")),
    "neg_share": (
        lambda: (pl.col("rs_neg") / pl.col("rv_d").clip(lower_bound=RV_FLOOR)).clip(0.0, 1.0),
        ("rs_neg", "rv_d"),
    ),
    "jump_share": (
        lambda: (pl.col("jv") / pl.col("rv_d").clip(lower_bound=RV_FLOOR)).clip(0.0, 1.0),
        ("jv", "rv_d"),
    ),
    "log_range": (
        lambda: _log_var((pl.col("high").cast(pl.Float64) / pl.col("low")).log() ** 2),
        ("high", "low"),
    ),
    "vol_5": (lambda: _log_var(_ret().rolling_var(5, min_samples=3)), ("ret_cc", "ret_oc")),
    "vol_22": (lambda: _log_var(_ret().rolling_var(22, min_samples=10)), ("ret_cc", "ret_oc")),
    "rsi_14": (lambda: _rsi(14), ("close",)),
    "mkt_rv": (lambda: pl.col(FACTOR).cast(pl.Float64), (FACTOR,)),
    "log_volume_ratio": (
        lambda: (
            pl.col("volume").cast(pl.Float64).clip(lower_bound=1e-12)
            / pl.col("volume").cast(pl.Float64).clip(lower_bound=1e-12).rolling_mean(22, min_samples=5)
        ).log(),
        ("volume",),
    ),
}

#: Pooling settings (``DailyConfig.pool``).
POOLS: tuple[str, ...] = ("none", "class", "all")

#: Cross-asset inputs appended when ``cross_asset=True``.
CROSS_FEATURES: tuple[str, ...] = ("corr_ret_mean", "corr_logrv_mean")

#: Loss name -> number of raw head outputs.
LOSS_OUTPUTS: dict[str, int] = {"mse": 1, "qlike": 1, "gaussian_nll": 2, "student_t_nll": 3}
_QLIKE_CLAMP = 30.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------------------ heads, losses
def inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y`` (y > 0)."""
    return float(y + math.log(-math.expm1(-y)))


class DistHead(nn.Module):
    """MLP head: ``Linear(d, d) -> GELU -> Linear(d, k)`` plus, for Student-t, one learned df.

    The raw outputs are decoded by :func:`decode`: column 0 is the location ``mu``; column 1 (when
    present) becomes the scale ``softplus(.) + 1e-3``; for ``student_t_nll`` a third column carries
    ``df = softplus(df_raw) + 2`` (one parameter for the model, broadcast over the batch).
    """

    def __init__(self, d_in: int, loss: str, df_init: float = 8.0) -> None:
        super().__init__()
        k = LOSS_OUTPUTS[loss]
        self.mlp = nn.Sequential(nn.Linear(d_in, d_in), nn.GELU(), nn.Linear(d_in, min(k, 2)))
        self.df_raw = nn.Parameter(torch.tensor(inverse_softplus(df_init - 2.0))) if k == 3 else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.mlp(h)
        if self.df_raw is not None:
            out = torch.cat([out, self.df_raw.to(out.dtype).expand(out.shape[0], 1)], dim=1)
        return out

    @torch.no_grad()
    def start_at_zero(self) -> None:
        """Zero the output layer: location 0 and scale ``softplus(.) + 1e-3 = 1`` for every input."""
        last = self.mlp[-1]
        assert isinstance(last, nn.Linear)
        last.weight.zero_()
        last.bias.zero_()
        if last.out_features > 1:
            last.bias[1] = inverse_softplus(1.0 - 1e-3)


def start_heads_at_zero(net: nn.Module) -> None:
    """:meth:`DistHead.start_at_zero` on every head of ``net`` (a residual network starts at its offset)."""
    heads = [m for m in net.modules() if isinstance(m, DistHead)]
    if not heads:
        raise ConfigError(f"{type(net).__name__} has no DistHead: a residual model needs one")
    for head in heads:
        head.start_at_zero()


def decode(out: torch.Tensor, loss: str) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Raw head outputs -> ``(mu, scale or None, df or None)``."""
    mu = out[:, 0]
    if LOSS_OUTPUTS[loss] == 1:
        return mu, None, None
    s = F.softplus(out[:, 1]) + 1e-3
    df = F.softplus(out[:, 2]) + 2.0 if loss == "student_t_nll" else None
    return mu, s, df


def make_loss(loss: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of ``loss`` on raw outputs and standardized (or centred) log-RV targets."""
    if loss not in LOSS_OUTPUTS:
        raise ConfigError(f"loss must be one of {sorted(LOSS_OUTPUTS)}; got {loss!r}")

    def fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, s, df = decode(out, loss)
        if loss == "mse":
            return torch.mean((mu - y) ** 2)
        if loss == "qlike":
            d = torch.clamp(y - mu, max=_QLIKE_CLAMP)
            return torch.mean(torch.exp(d) - d - 1.0)
        assert s is not None
        z = (y - mu) / s
        if loss == "gaussian_nll":
            return torch.mean(_HALF_LOG_2PI + torch.log(s) + 0.5 * z**2)
        assert df is not None
        nll = (
            torch.lgamma(df / 2.0)
            - torch.lgamma((df + 1.0) / 2.0)
            + 0.5 * torch.log(df * math.pi)
            + torch.log(s)
            + (df + 1.0) / 2.0 * torch.log1p(z**2 / df)
        )
        return torch.mean(nll)

    return fn


# ------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class DailyConfig(LoopSettings):
    """Settings every daily torch forecaster shares (subclasses add their network's).

    Attributes
    ----------
    window : int
        Sessions per input window.
    horizon : int
        The model forecasts log RV of session ``t + horizon``; ``predict`` serves that horizon only.
    features : tuple[str, ...]
        Names from :data:`FEATURES` (``None`` takes the model's default list).
    loss : str
        ``mse``, ``qlike``, ``gaussian_nll`` or ``student_t_nll`` (each model allows some).
    family : str
        Return distribution family for the quantiles (``gaussian``, ``student_t``, ``skew_t``, ``fhs``).
    mean : str
        ``zero`` or ``train`` (training mean return per symbol).
    cross_asset : bool
        Append the cross-asset correlations (:data:`CROSS_FEATURES`) from ``ModelData.cross_asset``.
    cross_window : int | None
        Rolling window of the cross-asset rows to use (None: every window present, averaged).
    val_fraction : float
        Share of the last training origin dates used for validation and early stopping.
    min_train : int
        Fewest training samples per symbol.
    drop_low_coverage_targets : bool
        Leave out training samples whose target session is flagged ``low_coverage``.
    clip_inputs : float
        Standardized inputs are clipped to +- this.
    calendar : str | dict | None
        Session calendar used only to date targets past the end of the data (see ``frames``).
    residual : bool
        Forecast HAR's log RV plus a learned correction (module docstring); False learns log RV
        directly from the inputs (the research's models).
    pool : str
        ``none``: the walk-forward fits one model per symbol; ``class`` (default): one model per fold
        on every evaluated symbol of the symbol's asset class; ``all``: on every evaluated symbol
        (module docstring, "Pooled training"). The model itself always fits every symbol it is given.
        On the development panel (6 synthetic indices, 2019-2020, rolling 1000, refit 22) ``class``
        with ``mkt_rv`` took the median QLIKE ratio to HAR from 0.981/0.987/0.991 to 0.974/0.974/0.972
        (prob_lstm/lstm_point/voltransformer).
    epochs, batch_size, lr, weight_decay, patience, min_delta, grad_clip, seed, device, amp
        :class:`~.torch_fit.TrainConfig`.
    num_threads : int | None
        CPU threads during fit and predict (default 1: these networks are too small to gain from
        intra-op threads, and on a shared 2-core machine a second thread made a step 5x slower);
        None keeps torch's setting.
    """

    window: int = 22
    horizon: int = 1
    features: tuple[str, ...] | None = None
    loss: str = "gaussian_nll"
    family: str = "student_t"
    mean: str = "zero"
    cross_asset: bool = False
    cross_window: int | None = None
    val_fraction: float = 0.2
    min_train: int = 100
    drop_low_coverage_targets: bool = True
    clip_inputs: float = 10.0
    calendar: str | dict[str, str] | None = None
    residual: bool = True
    pool: str = "class"
    epochs: int = 40
    patience: int = 6
    num_threads: int | None = 1

    def check(self, allowed_losses: Sequence[str], default_features: Sequence[str]) -> DailyConfig:
        """Validate every field; return a copy with ``features`` filled in."""
        _int_at_least(self.window, "window", 1)
        check_horizon(self.horizon)
        _int_at_least(self.min_train, "min_train", 1)
        feats = tuple(default_features if self.features is None else self.features)
        if isinstance(self.features, str) or not feats:
            raise ConfigError(
                f"features must be a non-empty list of names from {sorted(FEATURES)}; got {self.features!r}"
            )
        unknown = [f for f in feats if f not in FEATURES]
        if unknown or len(set(feats)) != len(feats):
            raise ConfigError(
                f"features must be distinct names from {sorted(FEATURES)}; "
                f"got {list(feats)} (unknown: {unknown})"
            )
        if self.loss not in allowed_losses:
            raise ConfigError(f"loss must be one of {list(allowed_losses)}; got {self.loss!r}")
        if self.family not in family_names():
            raise ConfigError(f"family must be one of {family_names()}; got {self.family!r}")
        if self.mean not in ("zero", "train"):
            raise ConfigError(f"mean must be 'zero' or 'train'; got {self.mean!r}")
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {list(POOLS)}; got {self.pool!r}")
        for flag in ("cross_asset", "residual"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be true or false; got {getattr(self, flag)!r}")
        if self.cross_window is not None:
            _int_at_least(self.cross_window, "cross_window", 2)
        vf = self.val_fraction
        if isinstance(vf, bool) or not isinstance(vf, int | float) or not 0 <= vf < 0.9:
            raise ConfigError(f"val_fraction must be a number in [0, 0.9); got {vf!r}")
        if (
            isinstance(self.clip_inputs, bool)
            or not isinstance(self.clip_inputs, int | float)
            or self.clip_inputs <= 0
        ):
            raise ConfigError(f"clip_inputs must be a number > 0; got {self.clip_inputs!r}")
        check_calendar(self.calendar)
        self.train_config()  # validates the loop settings
        return _replace(self, features=feats)


def _replace(cfg: Any, **changes: Any) -> Any:
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    values.update(changes)
    return type(cfg)(**values)


def _int_at_least(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")
    return value


def build_config(cls: type[DailyConfig], config: Mapping[str, Any], model: str) -> Any:
    """``cls(**config)`` with unknown keys reported by name (lists become tuples)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(f"unknown {model} config key(s) {unknown}; known: {sorted(known)}")
    values = dict(config)
    if isinstance(values.get("features"), list):
        values["features"] = tuple(values["features"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"bad {model} config: {exc}") from None


def config_dict(cfg: Any) -> dict[str, Any]:
    """JSON-able dict of a config dataclass (tuples become lists)."""
    out = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


# ------------------------------------------------------------------------------------------ series
@dataclass(frozen=True)
class SymbolSeries:
    """One symbol's rows as arrays: raw inputs, log RV, RV, returns and coverage flags."""

    symbol: str
    dates: pl.Series
    x: np.ndarray  # (T, k) raw inputs
    log_rv: np.ndarray  # (T,)
    rv: np.ndarray  # (T,)
    ret: np.ndarray  # (T,)
    low_coverage: np.ndarray  # (T,) bool
    har_x: np.ndarray | None = None  # (T, 4) HAR regressors, gaps filled (forecast inputs)
    har_fit_x: np.ndarray | None = None  # (T, 4) HAR regressors, NaN where one is missing (fit)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def columns(self, keep: Sequence[int]) -> SymbolSeries:
        """The same series with only the input columns ``keep`` (positions in ``x``)."""
        return replace(self, x=self.x[:, list(keep)])


def required_columns(features: Sequence[str], har: bool = False) -> list[str]:
    """Feature-frame columns that ``features`` (and the HAR offset, with ``har``) read, plus bookkeeping."""
    cols = ["symbol", "session_date", "rv_d", "ret_cc", "ret_oc", "low_coverage"]
    cols += ["rv_w", "rv_m"] if har else []
    for name in features:
        cols += [c for c in FEATURES[name][1] if c not in cols]
    return cols


def _cross_frame(cross: pl.DataFrame | None, symbol: str, window: int | None) -> pl.DataFrame | None:
    if cross is None or cross.height == 0:
        return None
    rows = cross.filter((pl.col("symbol_a") == symbol) | (pl.col("symbol_b") == symbol))
    if window is not None:
        rows = rows.filter(pl.col("window") == window)
    if rows.height == 0:
        return None
    return (
        rows.group_by("session_date")
        .agg(
            pl.col("corr_ret").cast(pl.Float64).mean().alias(CROSS_FEATURES[0]),
            pl.col("corr_logrv").cast(pl.Float64).mean().alias(CROSS_FEATURES[1]),
        )
        .sort("session_date")
    )


def symbol_series(
    frame: pl.DataFrame,
    symbol: str,
    features: Sequence[str],
    cross: pl.DataFrame | None = None,
    cross_asset: bool = False,
    cross_window: int | None = None,
    har: bool = False,
) -> SymbolSeries:
    """Arrays of one symbol's sorted rows (``frame`` holds that symbol only); ``har`` adds the HAR
    regressors of :func:`tasks.models.har.har_design` (``frame`` then needs ``rv_w`` and ``rv_m``).

    Raises
    ------
    DataError
        When ``cross_asset`` is set but no cross-asset rows name the symbol.
    """
    with np.errstate(all="ignore"):
        derived = frame.select(
            *[FEATURES[name][0]().alias(name) for name in features],
            _log_var(pl.col("rv_d")).alias("_log_rv"),
            pl.col("rv_d").cast(pl.Float64).alias("_rv"),
            _ret().alias("_ret"),
            pl.col("low_coverage").fill_null(True).alias("_low"),
            pl.col("session_date"),
        )
    cols = list(features)
    if cross_asset:
        cf = _cross_frame(cross, symbol, cross_window)
        if cf is None:
            raise DataError(
                f"cross_asset=True but ModelData.cross_asset holds no rows for symbol {symbol!r}"
                + ("" if cross_window is None else f" with window {cross_window}")
            )
        derived = derived.join(cf, on="session_date", how="left", maintain_order="left")
        cols += list(CROSS_FEATURES)
    x = derived.select(pl.col(c).cast(pl.Float64) for c in cols).to_numpy().astype(np.float64)
    return SymbolSeries(
        symbol=symbol,
        dates=frame["session_date"],
        x=np.where(np.isfinite(x), x, np.nan),
        log_rv=derived["_log_rv"].fill_null(np.nan).to_numpy().astype(np.float64),
        rv=derived["_rv"].fill_null(np.nan).to_numpy().astype(np.float64),
        ret=derived["_ret"].fill_null(np.nan).to_numpy().astype(np.float64),
        low_coverage=derived["_low"].to_numpy().astype(bool),
        har_x=har_design(frame, jumps=False, fill=True) if har else None,
        har_fit_x=har_design(frame, jumps=False, fill=False) if har else None,
    )


def fit_symbol_har(s: SymbolSeries, horizon: int) -> HarFit:
    """Log-HAR of one symbol on every complete pair of ``s`` (the ``har`` model's own OLS and data)."""
    assert s.har_fit_x is not None
    log_rv = np.log(np.maximum(s.rv, RV_FLOOR))  # as tasks.models.har does (NaN stays NaN)
    return fit_har(s.har_fit_x, log_rv, horizon)


def scaled_inputs(s: SymbolSeries, scaler: Scaler, clip: float) -> np.ndarray:
    """Standardized, clipped inputs; non-finite values become 0 (the training mean)."""
    with np.errstate(all="ignore"):
        z = scaler.transform(s.x)
    z = np.where(np.isfinite(z), z, 0.0)
    return np.clip(z, -clip, clip).astype(np.float32)


# ------------------------------------------------------------------------------------------ fitted state
@dataclass(frozen=True)
class SymbolState:
    """What a fitted daily model keeps per symbol (plain values)."""

    x_scaler: Scaler
    y_mean: float
    y_std: float
    var_scale: float
    mean: float
    har_coef: tuple[float, ...] = ()  # the residual model's HAR coefficients (empty: no offset)
    har_sigma2: float = 0.0  # HAR's residual variance

    def offsets(self, har_x: np.ndarray | None, loss: str) -> np.ndarray | None:
        """Log HAR forecasts from the rows ``har_x``: ``x'b``, plus ``s2 / 2`` under ``qlike``; None
        without an offset."""
        if not self.har_coef or har_x is None:
            return None
        base = har_x @ np.asarray(self.har_coef)
        return base + self.har_sigma2 / 2.0 if loss == "qlike" else base

    def state(self) -> dict[str, Any]:
        return {
            "x_scaler": self.x_scaler.state(),
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "var_scale": self.var_scale,
            "mean": self.mean,
            "har_coef": list(self.har_coef),
            "har_sigma2": self.har_sigma2,
        }

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> SymbolState:
        return cls(
            Scaler.from_state(d["x_scaler"]),
            float(d["y_mean"]),
            float(d["y_std"]),
            float(d["var_scale"]),
            float(d["mean"]),
            tuple(float(v) for v in d.get("har_coef") or ()),
            float(d.get("har_sigma2") or 0.0),
        )


def _covered(s: SymbolSeries, last: np.datetime64) -> np.ndarray:
    """Rows of ``s`` on or before ``last`` (the rows the input scaler is fitted on)."""
    covered: np.ndarray = s.dates.to_numpy().astype("datetime64[D]") <= last
    return covered


@dataclass
class _Samples:
    symbols: list[str]  # per sample
    rows: np.ndarray  # origin row within its symbol
    dates: np.ndarray  # origin date, datetime64[D]


# ------------------------------------------------------------------------------------------ base model
class DailyTorchForecaster(ABC):
    """Base of the daily torch forecasters (module docstring); subclasses supply the network.

    Parameters
    ----------
    **config
        Fields of :attr:`config_class`; unknown names raise :class:`~core.errors.ConfigError`.

    Attributes
    ----------
    progress : callable or None
        Called with :class:`~.torch_fit.EpochStats` after each epoch of :meth:`fit` (set it before
        fitting; CLI progress bars, Prefect logs).
    history : History or None
        Losses per epoch of the last fit.
    inputs : list[str] or None
        The input columns the fitted network reads: :meth:`input_names` less those without a finite
        value in the training rows (module docstring). None before ``fit``.
    """

    name: str = "daily_nn"
    config_class: ClassVar[type[DailyConfig]] = DailyConfig
    allowed_losses: ClassVar[tuple[str, ...]] = tuple(LOSS_OUTPUTS)
    default_features: ClassVar[tuple[str, ...]] = (
        "log_rv",
        "log_rv_w",
        "log_rv_m",
        "ret",
        "neg_share",
        "jump_share",
        "mkt_rv",
    )

    def __init__(self, **config: Any) -> None:
        raw = build_config(self.config_class, config, self.name)
        self.cfg = raw.check(self.allowed_losses, self.default_features)
        self.progress: Callable[[EpochStats], None] | None = None
        self.history: History | None = None
        self.net: nn.Module | None = None
        self.symbols: dict[str, SymbolState] = {}
        self.inputs: list[str] | None = None
        self.too_short: dict[str, int] = {}
        self.smear: float = 1.0
        self.family_fit: Family | None = None
        self.residuals: list[float] = []
        self.train_end: date | None = None
        self.validation: dict[str, Any] = {}
        self.device = torch.device("cpu")

    # -- subclass hooks ------------------------------------------------------------------------
    @abstractmethod
    def build_net(self, n_inputs: int) -> nn.Module:
        """The network: ``(batch, window, n_inputs)`` -> raw head outputs ``(batch, k)``."""

    @property
    def pool(self) -> str:
        """How the walk-forward pools symbols into one fit (``DailyConfig.pool``)."""
        return self.cfg.pool

    @property
    def panel_inputs(self) -> bool:
        """True when an input is a cross-section (``mkt_rv``): the model reads every evaluated symbol."""
        return "mkt_rv" in (self.cfg.features or ())

    # -- Forecaster ----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able configuration (hashed into cache keys, stored with checkpoints)."""
        return config_dict(self.cfg)

    def input_names(self) -> list[str]:
        """The configured input columns, in order (the checkpoint's feature list).

        The fitted network reads :attr:`inputs`, these less the ones dropped as empty at ``fit``.
        """
        return list(self.cfg.features) + (list(CROSS_FEATURES) if self.cfg.cross_asset else [])

    def _used_inputs(self) -> list[str]:
        return self.input_names() if self.inputs is None else list(self.inputs)

    def _series(
        self,
        data: ModelData,
        last: date,
        only: Sequence[str] | None = None,
        keep: Sequence[int] | None = None,
    ) -> dict[str, SymbolSeries]:
        """Each symbol's series up to ``last``; ``keep``: positions of the input columns to keep."""
        cfg = self.cfg
        cols = required_columns(cfg.features, har=cfg.residual)
        feats = data.features.filter(pl.col("session_date") <= last)
        if FACTOR in cols:  # the market factor of every symbol given, before ``only`` cuts them
            feats = with_market_factor(feats.drop(FACTOR, strict=False))
        missing = [c for c in cols if c not in feats.columns]
        if missing:
            raise DataError(f"model {self.name!r} needs feature columns {missing}")
        feats = feats.select(cols)
        if only is not None:
            feats = feats.filter(pl.col("symbol").is_in(list(only)))
        cross = data.cross_asset
        if cfg.cross_asset:
            if cross is None:
                raise DataError(f"model {self.name!r} with cross_asset=True needs ModelData.cross_asset")
            cross = cross.filter(pl.col("session_date") <= last)
        out = {
            sym: symbol_series(
                frame, sym, cfg.features, cross, cfg.cross_asset, cfg.cross_window, har=cfg.residual
            )
            for sym, frame in split_symbols(feats).items()
        }
        return out if keep is None else {sym: s.columns(keep) for sym, s in out.items()}

    def fit(self, data: ModelData, train_end: date) -> Self:
        """Fit on sessions ``<= train_end`` (rows after it are dropped before anything is computed).

        Raises
        ------
        DataError
            Missing columns, a symbol with fewer than ``min_train`` training samples, too few
            complete HAR pairs (``residual``), or no input with a value in the training rows.
        """
        with torch_threads(self.cfg.num_threads):
            return self._fit(data, train_end)

    def _fit(self, data: ModelData, train_end: date) -> Self:
        train_end = check_date(train_end, "train_end")
        cfg = self.cfg
        series = self._series(data, train_end)
        if not series:
            raise DataError(f"model {self.name!r}: no feature rows on or before train_end {train_end}")
        samples, targets = self._training_samples(series)
        tr, va = chronological_split(samples.dates, cfg.val_fraction, gap=cfg.horizon - 1)
        self.too_short = self._short_symbols(series, samples, tr)
        if self.too_short:
            series = self._without_short(series, train_end)
            samples, targets = self._training_samples(series)
            tr, va = chronological_split(samples.dates, cfg.val_fraction, gap=cfg.horizon - 1)
        last_train = samples.dates[tr].max()
        series = self._drop_empty_inputs(series, last_train)
        self.symbols = self._symbol_states(series, samples, targets, tr, last_train)
        offsets = self._sample_offsets(series, samples)
        usable = np.isfinite(offsets)  # a HAR offset needs rv_d at the origin
        tr, va = tr[usable[tr]], va[usable[va]]
        self.device = pick_device(cfg.device)
        windows, y_scaled = self._windows(series, samples, targets, offsets)
        with seeded(cfg.seed):
            net = self.build_net(len(self._used_inputs())).to(self.device)
            if cfg.residual:
                start_heads_at_zero(net)
            train_xy = windows(tr, y_scaled)
            val_xy = windows(va, y_scaled) if va.size else None
            self.history = fit_torch(
                net,
                make_loss(cfg.loss),
                train_xy,
                val_xy,
                cfg.train_config(),
                self.progress,
                keep_initial=cfg.residual,
            )
        self.net = net.eval()
        self.train_end = train_end
        self._calibrate(series, samples, targets, offsets, (tr, va), windows, y_scaled)
        return self

    def _short_symbols(
        self, series: Mapping[str, SymbolSeries], samples: _Samples, tr: np.ndarray
    ) -> dict[str, int]:
        """Symbols with fewer than ``min_train`` training samples, with their counts."""
        syms = np.asarray(samples.symbols)[tr]
        counts = {sym: int(np.count_nonzero(syms == sym)) for sym in series}
        return {sym: n for sym, n in counts.items() if n < self.cfg.min_train}

    def _without_short(self, series: Mapping[str, SymbolSeries], train_end: date) -> dict[str, SymbolSeries]:
        """``series`` less :attr:`too_short`: in a pooled fit a short member is left out (it still
        feeds the market factor); a lone symbol, or a panel of short ones only, is an error."""
        kept = {sym: s for sym, s in series.items() if sym not in self.too_short}
        if not kept or len(series) == 1:
            sym, n = next(iter(self.too_short.items()))
            raise DataError(
                f"model {self.name!r}: symbol {sym!r} has {n} training samples up to "
                f"{train_end}, fewer than min_train={self.cfg.min_train} (window={self.cfg.window}, "
                f"val_fraction={self.cfg.val_fraction})"
            )
        return kept

    def _drop_empty_inputs(
        self, series: Mapping[str, SymbolSeries], last_train: np.datetime64
    ) -> dict[str, SymbolSeries]:
        """Set :attr:`inputs` to the inputs with a finite value in every symbol's scaler rows and cut
        the series to them (an input null for a data source is dropped, not zero-filled)."""
        names = self.input_names()
        present = np.ones(len(names), dtype=bool)
        for s in series.values():
            present &= np.isfinite(s.x[_covered(s, last_train)]).any(axis=0)
        if not present.any():
            raise DataError(
                f"model {self.name!r}: none of its inputs {names} has a value in the training rows"
            )
        self.inputs = [n for n, p in zip(names, present, strict=True) if p]
        keep = np.flatnonzero(present).tolist()
        return {sym: s.columns(keep) for sym, s in series.items()}

    def _symbol_states(
        self,
        series: Mapping[str, SymbolSeries],
        samples: _Samples,
        targets: np.ndarray,
        tr: np.ndarray,
        last_train: np.datetime64,
    ) -> dict[str, SymbolState]:
        """Per symbol: input scaler (training split's rows), target scaling, variance scale, mean, HAR."""
        cfg = self.cfg
        syms = np.asarray(samples.symbols)
        states: dict[str, SymbolState] = {}
        for sym, s in series.items():
            y_tr = targets[tr[syms[tr] == sym]]
            ok = np.isfinite(s.ret) & np.isfinite(s.rv)
            state = SymbolState(
                x_scaler=Scaler.fit(s.x[_covered(s, last_train)]),
                y_mean=float(y_tr.mean()),
                y_std=1.0 if cfg.loss == "qlike" else float(max(y_tr.std(), 1e-6)),
                var_scale=fit_variance_scale(s.ret[ok], s.rv[ok]),
                mean=float(np.nanmean(s.ret)) if cfg.mean == "train" else 0.0,
            )
            states[sym] = self._with_har(state, s) if cfg.residual else state
        return states

    def _with_har(self, state: SymbolState, s: SymbolSeries) -> SymbolState:
        """``state`` with the symbol's HAR fit; targets become HAR residuals in units of HAR's residual
        standard deviation (log units under ``qlike``)."""
        fit = fit_symbol_har(s, self.cfg.horizon)
        return replace(
            state,
            y_mean=0.0,
            y_std=1.0 if self.cfg.loss == "qlike" else math.sqrt(max(fit.sigma2, 1e-12)),
            har_coef=tuple(float(c) for c in fit.coef),
            har_sigma2=float(fit.sigma2),
        )

    def _sample_offsets(self, series: Mapping[str, SymbolSeries], samples: _Samples) -> np.ndarray:
        """The HAR offset of each training sample's origin row (zeros without ``residual``)."""
        out = np.zeros(samples.rows.size)
        syms = np.asarray(samples.symbols)
        for sym, s in series.items():
            mine = syms == sym
            rows = samples.rows[mine]
            off = self.symbols[sym].offsets(None if s.har_x is None else s.har_x[rows], self.cfg.loss)
            if off is not None:
                out[mine] = off
        return out

    def _training_samples(self, series: Mapping[str, SymbolSeries]) -> tuple[_Samples, np.ndarray]:
        cfg = self.cfg
        syms: list[str] = []
        rows: list[np.ndarray] = []
        dates: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for sym, s in series.items():
            i = np.arange(cfg.window - 1, s.n - cfg.horizon)
            if i.size == 0:
                continue
            y = s.log_rv[i + cfg.horizon]
            keep = np.isfinite(y)
            if cfg.drop_low_coverage_targets:
                keep &= ~s.low_coverage[i + cfg.horizon]
            i = i[keep]
            syms += [sym] * i.size
            rows.append(i)
            dates.append(s.dates.to_numpy().astype("datetime64[D]")[i])
            ys.append(s.log_rv[i + cfg.horizon])
        if not rows or sum(r.size for r in rows) == 0:
            raise DataError(f"model {self.name!r}: no training samples (window={cfg.window})")
        return _Samples(syms, np.concatenate(rows), np.concatenate(dates)), np.concatenate(ys)

    def _windows(
        self,
        series: Mapping[str, SymbolSeries],
        samples: _Samples,
        targets: np.ndarray,
        offsets: np.ndarray,
    ) -> tuple[Callable[[np.ndarray, np.ndarray], WindowXY], np.ndarray]:
        """A function building the device-resident windows of a subset, and the scaled targets
        ``(y - y_mean - offset) / y_std``."""
        parts, offset = [], 0
        starts: dict[str, int] = {}
        for sym, s in series.items():
            starts[sym] = offset
            parts.append(scaled_inputs(s, self.symbols[sym].x_scaler, self.cfg.clip_inputs))
            offset += s.n
        stacked = np.concatenate(parts)
        sym_arr = np.asarray(samples.symbols)
        ends = samples.rows + np.asarray([starts[s] for s in samples.symbols], dtype=np.int64)
        y_mean = np.asarray([self.symbols[s].y_mean for s in sym_arr])
        y_std = np.asarray([self.symbols[s].y_std for s in sym_arr])
        y_scaled = (targets - y_mean - offsets) / y_std
        device = self.device
        window = self.cfg.window
        series_t = to_device(stacked, device)

        def build(idx: np.ndarray, y: np.ndarray) -> WindowXY:
            e = torch.from_numpy(np.ascontiguousarray(ends[idx])).to(device)
            return WindowXY(series_t, e, to_device(y[idx], device), window)

        return build, y_scaled

    def _log_params(
        self, out: torch.Tensor, syms: Sequence[str], offsets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw outputs -> (mu, s) in log-RV units per sample (``mu`` includes the HAR offset)."""
        mu_t, s_t, _ = decode(out, self.cfg.loss)
        y_mean = np.asarray([self.symbols[s].y_mean for s in syms])
        y_std = np.asarray([self.symbols[s].y_std for s in syms])
        mu = offsets + y_mean + y_std * mu_t.double().numpy()
        s = None if s_t is None else y_std * s_t.double().numpy()
        return mu, s

    def _rv_forecast(self, mu: np.ndarray, s: np.ndarray | None) -> np.ndarray:
        loss = self.cfg.loss
        if loss == "gaussian_nll":
            assert s is not None
            rv = np.exp(np.minimum(mu + 0.5 * s**2, 0.0))
        elif loss == "qlike":
            rv = np.exp(np.minimum(mu, 0.0))
        else:
            rv = np.exp(np.minimum(mu, 0.0)) * self.smear
        return np.maximum(rv, RV_FLOOR)

    def _calibrate(
        self,
        series: Mapping[str, SymbolSeries],
        samples: _Samples,
        targets: np.ndarray,
        offsets: np.ndarray,
        split: tuple[np.ndarray, np.ndarray],
        windows: Callable[[np.ndarray, np.ndarray], WindowXY],
        y_scaled: np.ndarray,
    ) -> None:
        """Smearing factor, return family, and the ``validation`` summary of the fitted model."""
        assert self.net is not None
        tr, va = split
        idx = np.arange(targets.size)
        out = predict_batches(self.net, windows(idx, y_scaled))
        mu, s = self._log_params(out, samples.symbols, offsets)
        ref = va if va.size else tr
        self.smear = float(np.mean(np.exp(np.clip(targets[ref] - mu[ref], -30, 30))))
        rv_hat = self._rv_forecast(mu, s)
        h = self.cfg.horizon
        r_next = np.asarray(
            [series[sym].ret[row + h] for sym, row in zip(samples.symbols, samples.rows, strict=True)]
        )
        var = np.asarray([self.symbols[sym].var_scale for sym in samples.symbols]) * rv_hat
        means = np.asarray([self.symbols[sym].mean for sym in samples.symbols])
        z = (r_next - means) / np.sqrt(var)
        self.residuals = [float(v) for v in z[np.isfinite(z)]]
        self.family_fit = get_family(self.cfg.family).fit(np.asarray(self.residuals))
        naive = np.asarray(
            [series[sym].rv[row] for sym, row in zip(samples.symbols, samples.rows, strict=True)]
        )
        self.validation = {
            "split": "validation" if va.size else "train",
            "samples": int(ref.size),
            "first": str(samples.dates[ref].min()),
            "last": str(samples.dates[ref].max()),
            "train_samples": int(tr.size),
            "train_first": str(samples.dates[tr].min()),
            "train_last": str(samples.dates[tr].max()),
            **volatility_metrics(np.exp(targets[ref]), rv_hat[ref], naive[ref]),
            **self._fit_summary(),
        }

    def _fit_summary(self) -> dict[str, Any]:
        """Inputs used and dropped, and whether the residual model kept HAR (no epoch beat it)."""
        used = self._used_inputs()
        return {
            "inputs": used,
            "inputs_dropped": [n for n in self.input_names() if n not in used],
            "residual": self.cfg.residual,
            "kept_har": bool(self.cfg.residual and self.history is not None and self.history.kept_initial),
            "best_epoch": None if self.history is None else self.history.best_epoch,
        }

    def predict(self, data: ModelData, origins: Sequence[date], horizon: int = 1) -> pl.DataFrame:
        """One row per (fitted symbol, origin session with ``window`` sessions of history).

        Raises
        ------
        ConfigError
            Not fitted, or ``horizon`` differs from the trained ``horizon``.
        """
        with torch_threads(self.cfg.num_threads):
            return self._predict(data, origins, horizon)

    def _predict(self, data: ModelData, origins: Sequence[date], horizon: int) -> pl.DataFrame:
        if self.net is None or self.family_fit is None:
            raise ConfigError(f"model {self.name!r} is not fitted: call fit(data, train_end) first")
        horizon = check_horizon(horizon)
        if horizon != self.cfg.horizon:
            raise ConfigError(
                f"model {self.name!r} was trained for horizon={self.cfg.horizon}; got horizon={horizon} "
                f"(train another model with config horizon={horizon})"
            )
        wanted = check_origins(origins)
        if not wanted:
            return concat_predictions([])
        names = self.input_names()
        keep = [names.index(n) for n in self._used_inputs()]
        series = self._series(data, max(wanted), only=list(self.symbols), keep=keep)
        out: list[pl.DataFrame] = []
        for sym, s in series.items():
            state = self.symbols.get(sym)
            if state is None:
                continue
            pos, used = origin_positions(s.dates, wanted, first=self.cfg.window - 1)
            if not pos.size:
                continue
            z = scaled_inputs(s, state.x_scaler, self.cfg.clip_inputs)
            xy = make_windows(z, pos, np.zeros(pos.size), self.cfg.window, self.device)
            raw = predict_batches(self.net, xy)
            off = state.offsets(None if s.har_x is None else s.har_x[pos], self.cfg.loss)
            mu, sc = self._log_params(raw, [sym] * pos.size, np.zeros(pos.size) if off is None else off)
            rv = self._rv_forecast(mu, sc)
            var = state.var_scale * rv
            q = self.family_fit.quantiles(state.mean, var)
            calendar = symbol_calendar(self.cfg.calendar, sym) or data.calendar_of(sym)
            targets = target_sessions(s.dates, pos, horizon, calendar)
            out.append(
                prediction_frame(
                    model=self.name,
                    symbol=sym,
                    origins=used,
                    targets=targets,
                    horizon=horizon,
                    variance=var,
                    rv=rv,
                    mean=np.full(pos.size, state.mean),
                    quantiles=q,
                    family=self.family_fit.name,
                    params=self.family_fit.params(),
                )
            )
        return concat_predictions(out)

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Weights and plain metadata for :func:`tasks.models.checkpoint.save_checkpoint`."""
        if self.net is None or self.train_end is None:
            raise ConfigError(f"model {self.name!r} is not fitted: nothing to checkpoint")
        meta = {
            "model": self.name,
            "config": self.config(),
            "features": self.input_names(),
            "inputs": self._used_inputs(),
            "train_end": self.train_end.isoformat(),
            "symbols": {k: v.state() for k, v in self.symbols.items()},
            "smear": self.smear,
            "family": self.cfg.family,
            "residuals": list(self.residuals),
            "history": None if self.history is None else self.history.as_dict(),
            "validation": dict(self.validation),
        }
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items()}, meta

    def restore_checkpoint(self, weights: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Self:
        """Load what :meth:`checkpoint_state` gave (the same config must have built ``self``)."""
        if meta.get("model") != self.name:
            raise ConfigError(f"checkpoint is of model {meta.get('model')!r}, not {self.name!r}")
        if list(meta.get("features") or []) != self.input_names():
            raise ConfigError(
                f"checkpoint features {meta.get('features')} differ from this model's {self.input_names()}"
            )
        inputs = [str(v) for v in meta.get("inputs") or self.input_names()]
        if not set(inputs) <= set(self.input_names()):
            raise ConfigError(f"checkpoint inputs {inputs} are not among this model's {self.input_names()}")
        self.inputs = inputs
        self.device = pick_device(self.cfg.device)
        net = self.build_net(len(inputs))
        net.load_state_dict(dict(weights), strict=True)
        self.net = net.to(self.device).eval()
        self.symbols = {k: SymbolState.from_state(v) for k, v in dict(meta["symbols"]).items()}
        self.smear = float(meta["smear"])
        self.residuals = [float(v) for v in meta["residuals"]]
        self.family_fit = get_family(str(meta["family"])).fit(np.asarray(self.residuals))
        self.train_end = date.fromisoformat(str(meta["train_end"]))
        self.validation = dict(meta.get("validation") or {})
        hist = meta.get("history")
        if isinstance(hist, Mapping):
            h = dict(hist)
            h["best_loss"] = math.inf if h.get("best_loss") is None else h["best_loss"]
            self.history = History(**h)
        return self
