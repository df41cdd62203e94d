"""``quantile`` and ``quantile_event``: next-session return quantiles from a small MLP and pinball loss.

Inputs at origin ``t`` (one symbol; its rows are its sessions with bars, sorted)
------------------------------------------------------------------------------
``s_t``
    Scale: ``sqrt`` of the EWMA (decay ``ewma_lambda``, polars ``adjust=True``) of ``ret_cc^2`` over
    the sessions ``<= t``, undefined before ``min_scale_obs`` returns. Everything below is measured in
    units of ``s_t``, so one network serves calm and turbulent regimes and several symbols.
window (the ``m = window`` rows ending at t)
    ``ret_cc / s_t`` (null -> 0, clipped to +-10) and ``0.5 * log(rv_d) - log(s_t)`` of each row;
    ``0.5 * log(rv_w) - log(s_t)``, ``0.5 * log(rv_m) - log(s_t)`` and ``log(s_t)`` at t. Null realized
    measures are forward-filled (earlier rows only). Inputs are standardized by a
    :class:`~.torch_data.Scaler` fitted on the training split only.
event inputs (``quantile_event`` only, from :func:`tasks.events.event_features`)
    Per event type: the scheduled flag of the TARGET session ``sched``, and ``zd = clip(z, +-z_clip) *
    2^(-age / z_halflife_days)`` of the latest surprise released by the origin's ``session_end`` (0 when
    none), plus ``|zd|``. Flags are 0 where the calendar does not reach (``known_*``).

Target and output
-----------------
The target is the session ``horizon`` sessions after t on the symbol's session calendar (``calendar``:
one name, a ``{symbol: name}`` map, or ``None`` to infer 24x7 / fx / XNYS from ``session_end``); a
training sample needs that session's ``ret_cc``. The network predicts nine standardized quantiles ``u``
at :data:`~tasks.models.base.QUANTILES`, monotone by construction: ``u_50 = o_0``, then
``u_50 +- cumsum(softplus(o_k) + 1e-4)`` outwards; return quantiles are ``q = s_t * u``. The loss is the
pinball loss of ``ret_cc(target) / s_t`` averaged over the nine levels (each sample weighs the same
whatever its scale).

``quantile_event`` is the same base network (same seed, same fit: identical to ``quantile``) plus a
zero-initialized linear event head ``a = W e`` without bias: ``u_50 += a_0`` and the lower/upper
spreads are multiplied by ``exp(a_1)`` / ``exp(a_2)`` (clamped to +-2). The head is fitted afterwards,
base frozen, on the training samples whose target the event calendar covers (any ``known_*``), by
full-batch Adam with an L2 penalty. A calendar that starts after the feature history (FOMC file: 2015)
therefore cannot bias the base network with unlabelled event days, and with no event signal the two
models agree exactly.

Derived columns
---------------
``mean``
    ``q50`` (the model estimates quantiles only).
``variance``
    Normal approximation from the 10-90 range: ``((q90 - q10) / (2 * 1.2816))^2``.
``rv``
    ``variance / c``, ``c = mean(ret_cc^2) / mean(rv_d)`` over the symbol's training sessions (close-to-close
    vs intraday realized variance; pooled over symbols for a symbol unseen at fit).

Training (:func:`.torch_fit.fit_torch`): chronological split of the training samples by origin date
(:func:`.torch_data.chronological_split`, the last ``val_fraction`` of dates validate, ``horizon - 1``
dates dropped in between), AdamW, minibatches shuffled inside the training split with a seeded
generator, early stopping on validation pinball with the best weights restored. Same data, config and
seed give identical forecasts on the CPU (with the same ``threads``).

Checkpoints: both models implement :class:`~tasks.models.checkpoint.Checkpointable`. The checkpoint holds the
weights (event head included), the config, the input list (:meth:`QuantileForecaster.input_names`,
which follows from ``window`` and ``event_types``), the scaler, the RV ratios and the training
history, so ``restore_run`` loads a run instead of refitting it; a checkpoint whose input list differs
from the configuration's is refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import Any, Self

import numpy as np
import polars as pl
import torch
from scipy.stats import norm
from torch import nn

from core.errors import ConfigError, DataError
from core.schema import QUANTILE_COLUMNS, QUANTILES, empty_predictions
from tasks.events import EVENT_TYPES, check_events, event_features, target_windows
from tasks.models.base import ModelData, register
from tasks.models.frames import (
    check_calendar,
    check_date,
    check_horizon,
    check_origins,
    concat_predictions,
    require_columns,
    symbol_calendar,
)
from tasks.models.torch_data import Scaler, chronological_split
from tasks.models.torch_fit import EpochStats, History, LoopSettings, fit_torch
from tasks.models.torch_runtime import pick_device, seeded, torch_threads

_Z90 = float(norm.ppf(0.9))
_MEDIAN = QUANTILES.index(0.5)
_EPS = 1e-4
_RET_CLIP = 10.0
_LOG_WIDTH_CLIP = 2.0
_COLUMNS = ("symbol", "session_date", "session_end", "ret_cc", "rv_d", "rv_w", "rv_m")


@dataclass(frozen=True)
class QuantileConfig(LoopSettings):
    """Configuration of :class:`QuantileForecaster` (all JSON-able).

    Attributes
    ----------
    window : int
        Sessions of history per sample (m).
    hidden, depth : int
        MLP width and number of hidden layers.
    dropout : float
        Dropout after each hidden layer.
    epochs, batch_size, patience : int
        Most epochs, minibatch size, epochs without validation improvement before stopping.
    lr, weight_decay : float
        AdamW settings.
    val_fraction : float
        Share of the training origin dates (the latest) used for early stopping.
    ewma_lambda : float
        Decay of the EWMA scale ``s_t``.
    min_scale_obs : int
        Returns needed before ``s_t`` is defined.
    horizon : int
        Sessions ahead (the target is ``origin + horizon``).
    calendar : str | dict[str, str] | None
        Session calendar, per symbol or for all; ``None`` infers it from ``session_end``.
    seed : int
        Seed of the weights and the minibatch order.
    device : str
        ``"auto"`` (cuda, mps, cpu), ``"cpu"``, ``"cuda"`` or ``"mps"``; bit-identity holds on the CPU.
    threads : int | None
        torch intra-op threads while fitting and predicting (restored afterwards); tiny MLPs are
        fastest on one. ``None`` leaves torch's setting alone.
    event_types : tuple[str, ...]
        Event types of ``quantile_event``.
    z_halflife_days, z_clip : float
        Half-life (days) of a surprise's effect; clip of surprise z-scores.
    event_epochs, event_lr, event_l2 : int, float, float
        Full-batch epochs, Adam learning rate and L2 penalty of the event head.
    min_train : int
        Fewest usable training samples.
    """

    window: int = 10
    hidden: int = 32
    depth: int = 2
    dropout: float = 0.0
    epochs: int = 200
    batch_size: int = 256
    patience: int = 25
    lr: float = 3e-3
    val_fraction: float = 0.2
    ewma_lambda: float = 0.94
    min_scale_obs: int = 20
    horizon: int = 1
    calendar: str | dict[str, str] | None = None
    threads: int | None = 1
    event_types: tuple[str, ...] = field(default=EVENT_TYPES)
    z_halflife_days: float = 5.0
    z_clip: float = 5.0
    event_epochs: int = 300
    event_lr: float = 0.01
    event_l2: float = 1e-3
    min_train: int = 100

    def __post_init__(self) -> None:
        ints = {
            "window": 1,
            "hidden": 1,
            "depth": 1,
            "epochs": 1,
            "batch_size": 1,
            "patience": 1,
            "min_scale_obs": 2,
            "horizon": 1,
            "event_epochs": 1,
            "min_train": 10,
        }
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ConfigError(f"threads must be None or an integer >= 1; got {self.threads!r}")
        ranges = {
            "dropout": (0.0, 1.0, True),
            "lr": (0.0, math.inf, False),
            "weight_decay": (0.0, math.inf, True),
            "val_fraction": (0.0, 0.9, False),
            "ewma_lambda": (0.0, 1.0, False),
            "z_halflife_days": (0.0, math.inf, False),
            "z_clip": (0.0, math.inf, False),
            "event_lr": (0.0, math.inf, False),
            "event_l2": (0.0, math.inf, True),
        }
        for name, (bottom, top, closed) in ranges.items():
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or not ((value >= bottom) if closed else (value > bottom)) or not value < top:
                bracket = "[" if closed else "("
                raise ConfigError(f"{name} must be a number in {bracket}{bottom}, {top}); got {value!r}")
        if not self.event_types or not all(isinstance(t, str) and t for t in self.event_types):
            raise ConfigError(f"event_types must be non-empty strings; got {self.event_types!r}")
        object.__setattr__(self, "event_types", tuple(t.upper() for t in self.event_types))
        object.__setattr__(self, "calendar", check_calendar(self.calendar))
        self.train_config()  # validates the loop settings (device, seed)


# ---------------------------------------------------------------------------------------- helpers
def pinball_loss(y: np.ndarray, q: np.ndarray, levels: Sequence[float] = QUANTILES) -> float:
    """Mean pinball (quantile) loss over samples and levels.

    Parameters
    ----------
    y : np.ndarray
        Outcomes, shape ``(n,)``.
    q : np.ndarray
        Quantile forecasts, shape ``(n, len(levels))``.
    levels : Sequence[float]
        Quantile levels.

    Returns
    -------
    float
        ``mean over n and levels of max(tau * (y - q), (tau - 1) * (y - q))``.
    """
    tau = np.asarray(levels, dtype=float)[None, :]
    u = np.asarray(y, dtype=float)[:, None] - np.asarray(q, dtype=float)
    return float(np.mean(np.maximum(tau * u, (tau - 1.0) * u)))


def pinball_torch(q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss of quantiles ``q`` (n, 9) at :data:`QUANTILES` against ``y`` (n,)."""
    tau = torch.as_tensor(QUANTILES, dtype=q.dtype, device=q.device)
    u = y.to(q.dtype)[:, None] - q
    return torch.maximum(tau * u, (tau - 1.0) * u).mean()


def infer_calendar(features: pl.DataFrame) -> str:
    """Session calendar of one symbol's daily rows, from the clock time of ``session_end``.

    Midnight UTC on every row -> ``"24x7"``; 17:00 New York -> ``"fx"``; 16:00 or 13:00 (early close)
    New York -> ``"XNYS"``. Anything else raises :class:`ConfigError` (pass ``calendar=``).
    """
    ends = features["session_end"].drop_nulls()
    if ends.len() == 0:
        raise ConfigError("cannot infer the session calendar from rows without session_end; pass calendar=")
    utc = set(ends.dt.strftime("%H:%M").unique().to_list())
    ny = set(ends.dt.convert_time_zone("America/New_York").dt.strftime("%H:%M").unique().to_list())
    if utc == {"00:00"}:
        return "24x7"
    if ny == {"17:00"}:
        return "fx"
    if ny <= {"16:00", "13:00"}:
        return "XNYS"
    raise ConfigError(
        f"cannot infer the session calendar from session_end times {sorted(ny)} (New York); "
        "pass calendar='XNYS', 'fx', '24x7' or another exchange_calendars name"
    )


@dataclass
class _Samples:
    """Model inputs of one or more symbols, aligned row by row."""

    symbol: list[str]
    origin: list[date]
    target: list[date]
    x: np.ndarray  # (n, k) window inputs
    e: np.ndarray  # (n, j) event inputs (j = 0 for the base model)
    scale: np.ndarray  # (n,) s_t
    y: np.ndarray  # (n,) ret_cc(target) / s_t, nan when unknown
    flags: list[dict[str, int]]  # target-session scheduled flags per event type
    covered: np.ndarray  # (n,) the event calendar reaches the target (False without events)

    @property
    def n(self) -> int:
        return len(self.origin)

    def take(self, idx: np.ndarray) -> _Samples:
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx
        return _Samples(
            [self.symbol[i] for i in idx],
            [self.origin[i] for i in idx],
            [self.target[i] for i in idx],
            self.x[idx],
            self.e[idx],
            self.scale[idx],
            self.y[idx],
            [self.flags[i] for i in idx],
            self.covered[idx],
        )

    @staticmethod
    def concat(parts: list[_Samples], k: int, j: int) -> _Samples:
        parts = [p for p in parts if p.n]
        if not parts:
            return _Samples(
                [],
                [],
                [],
                np.zeros((0, k)),
                np.zeros((0, j)),
                np.zeros(0),
                np.zeros(0),
                [],
                np.zeros(0, dtype=bool),
            )
        return _Samples(
            [s for p in parts for s in p.symbol],
            [d for p in parts for d in p.origin],
            [d for p in parts for d in p.target],
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.e for p in parts]),
            np.concatenate([p.scale for p in parts]),
            np.concatenate([p.y for p in parts]),
            [f for p in parts for f in p.flags],
            np.concatenate([p.covered for p in parts]),
        )


def _window_inputs(rows: pl.DataFrame, cfg: QuantileConfig) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, 2m + 3), scale (n,)) of one symbol's sorted rows; rows without a full window are nan.

    Row ``i`` uses rows ``<= i`` only (EWMA, forward fill and the trailing window all look back).
    """
    frame = rows.select(
        pl.col("ret_cc").cast(pl.Float64),
        (pl.col("ret_cc").cast(pl.Float64) ** 2)
        .ewm_mean(alpha=1.0 - cfg.ewma_lambda, adjust=True, min_samples=cfg.min_scale_obs, ignore_nulls=True)
        .forward_fill()
        .alias("s2"),
        *[pl.col(c).cast(pl.Float64).forward_fill().alias(c) for c in ("rv_d", "rv_w", "rv_m")],
    )
    r = frame["ret_cc"].fill_null(0.0).to_numpy()
    s2 = frame["s2"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(s2 > 0, np.sqrt(s2), np.nan)
        log_s = np.log(scale)
        half = {c: 0.5 * np.log(np.maximum(frame[c].to_numpy(), 1e-20)) for c in ("rv_d", "rv_w", "rv_m")}
    n, m = rows.height, cfg.window
    x = np.full((n, 2 * m + 3), np.nan)
    if n >= m:
        end = np.arange(m - 1, n)
        with np.errstate(invalid="ignore"):
            win_r = np.lib.stride_tricks.sliding_window_view(r, m)  # window i holds rows i .. i + m - 1
            win_v = np.lib.stride_tricks.sliding_window_view(half["rv_d"], m)
            x[end, :m] = np.clip(win_r / scale[end, None], -_RET_CLIP, _RET_CLIP)
            x[end, m : 2 * m] = win_v - log_s[end, None]
        x[:, 2 * m] = half["rv_w"] - log_s
        x[:, 2 * m + 1] = half["rv_m"] - log_s
        x[:, 2 * m + 2] = log_s
    return x, scale


def _event_inputs(
    ev: pl.DataFrame, cfg: QuantileConfig
) -> tuple[np.ndarray, list[dict[str, int]], np.ndarray]:
    """Event head inputs ``[sched..., zd..., |zd|...]``, the flags per row, and whether any type is known."""
    keys = [t.lower() for t in cfg.event_types]
    sched = np.column_stack([ev[f"sched_{k}"].to_numpy().astype(float) for k in keys])
    covered = np.asarray(np.column_stack([ev[f"known_{k}"].to_numpy() for k in keys]).any(axis=1), dtype=bool)
    zd = []
    for k in keys:
        z = ev[f"z_{k}"].fill_null(0.0).fill_nan(0.0).to_numpy().astype(float)
        age = ev[f"z_age_{k}"].fill_null(0.0).to_numpy().astype(float)
        zd.append(np.clip(z, -cfg.z_clip, cfg.z_clip) * np.exp2(-age / cfg.z_halflife_days))
    zd_arr = np.column_stack(zd)
    flags = [dict(zip(keys, (int(v) for v in row), strict=True)) for row in sched]
    return np.hstack([sched, zd_arr, np.abs(zd_arr)]), flags, covered


class _QuantileNet(nn.Module):
    """MLP -> monotone standardized quantiles, with an optional zero-initialized event head."""

    def __init__(self, n_in: int, n_event: int, cfg: QuantileConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), nn.GELU()]
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
            width = cfg.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, len(QUANTILES))
        # Start at standard-normal quantiles: centre 0, increments softplus^-1(gap - eps).
        z = norm.ppf(np.asarray(QUANTILES))
        up = np.diff(z[_MEDIAN:]) - _EPS
        down = np.diff(z[: _MEDIAN + 1])[::-1] - _EPS
        bias = np.zeros(len(QUANTILES))
        bias[_MEDIAN + 1 :] = np.log(np.expm1(up))
        bias[:_MEDIAN] = np.log(np.expm1(down))[::-1]
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.copy_(torch.as_tensor(bias, dtype=self.head.bias.dtype))
        self.event: nn.Linear | None = None
        if n_event:
            self.event = nn.Linear(n_event, 3, bias=False)
            nn.init.zeros_(self.event.weight)

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Base ``(centre (n, 1), downward spreads (n, 4), upward spreads (n, 4))``; spreads > 0."""
        o = self.head(self.body(x))
        centre = o[:, _MEDIAN : _MEDIAN + 1]
        up = torch.cumsum(nn.functional.softplus(o[:, _MEDIAN + 1 :]) + _EPS, dim=1)
        # o[:, :_MEDIAN] are the downward increments, lowest level first: accumulate outwards from q50.
        steps_down = torch.flip(nn.functional.softplus(o[:, :_MEDIAN]) + _EPS, [1])
        down = torch.flip(torch.cumsum(steps_down, dim=1), [1])
        return centre, down, up

    def combine(
        self, parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor], e: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Quantiles ``(n, 9)`` from :meth:`parts`, shifted and rescaled by the event head when ``e``."""
        centre, down, up = parts
        if self.event is not None and e is not None:
            a = self.event(e)
            centre = centre + a[:, 0:1]
            down = down * torch.exp(torch.clamp(a[:, 1:2], -_LOG_WIDTH_CLIP, _LOG_WIDTH_CLIP))
            up = up * torch.exp(torch.clamp(a[:, 2:3], -_LOG_WIDTH_CLIP, _LOG_WIDTH_CLIP))
        return torch.cat([centre - down, centre, centre + up], dim=1)

    def forward(self, x: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        return self.combine(self.parts(x), e)


def _fit_event_head(
    net: _QuantileNet, x: torch.Tensor, e: torch.Tensor, y: torch.Tensor, cfg: QuantileConfig
) -> list[float]:
    """Fit only the event head on top of the frozen base network; returns the pinball loss per epoch.

    Full-batch Adam on pinball loss plus ``event_l2 * |W|^2`` for a fixed ``event_epochs`` (no early
    stopping: a validation span inside the calendar's coverage holds only a handful of events).
    """
    assert net.event is not None
    net.eval()
    with torch.no_grad():
        centre, down, up = net.parts(x)
    weight = net.event.weight
    opt = torch.optim.Adam([weight], lr=cfg.event_lr)
    history: list[float] = []
    for _ in range(cfg.event_epochs):
        pinball = pinball_torch(net.combine((centre, down, up), e), y)
        loss = pinball + cfg.event_l2 * (weight**2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(pinball.detach()))
    return history


def _rv_ratios(features: pl.DataFrame) -> tuple[dict[str, float], float]:
    """Per symbol ``mean(ret_cc^2) / mean(rv_d)`` over the given (training) rows, and the pooled one."""
    ok = features.filter(
        pl.col("ret_cc").is_finite() & pl.col("rv_d").is_finite() & (pl.col("rv_d") > 0)
    ).select("symbol", (pl.col("ret_cc") ** 2).alias("r2"), "rv_d")
    ratios: dict[str, float] = {}
    for (symbol,), part in ok.group_by("symbol", maintain_order=True):
        num, den = float(part["r2"].sum()) / part.height, float(part["rv_d"].sum()) / part.height
        if num > 0 and den > 0:
            ratios[str(symbol)] = num / den
    if not ok.height:
        return ratios, 1.0
    num, den = float(ok["r2"].sum()), float(ok["rv_d"].sum())
    return ratios, (num / den if num > 0 and den > 0 else 1.0)


def _history(state: object) -> History | None:
    """A :class:`~.torch_fit.History` from its ``as_dict`` form (None when absent)."""
    if not isinstance(state, Mapping):
        return None
    h = dict(state)
    h["best_loss"] = math.inf if h.get("best_loss") is None else h["best_loss"]
    return History(**h)


# ------------------------------------------------------------------------------------------ model
@register("quantile")
class QuantileForecaster:
    """Next-session return quantiles from an MLP over the last ``window`` sessions (module docstring).

    Parameters
    ----------
    **config
        Fields of :class:`QuantileConfig`; unknown names raise :class:`ConfigError`.

    Attributes
    ----------
    progress : callable or None
        Called with :class:`~.torch_fit.EpochStats` after each epoch of the base network's fit.
    history : History or None
        Losses per epoch of the base network's last fit (``train_loss``, ``val_loss``).
    event_history : list[float]
        Pinball loss per epoch of the event head (``quantile_event``).
    """

    name = "quantile"
    use_events = False

    def __init__(self, **config: Any) -> None:
        known = {f.name for f in fields(QuantileConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"unknown {self.name} config key(s) {unknown}; known: {sorted(known)}")
        values = dict(config)
        if isinstance(values.get("event_types"), list | tuple):
            values["event_types"] = tuple(values["event_types"])
        try:
            self.cfg = QuantileConfig(**values)
        except TypeError as exc:
            raise ConfigError(f"bad {self.name} config: {exc}") from None
        self.progress: Callable[[EpochStats], None] | None = None
        self.history: History | None = None
        self.event_history: list[float] = []
        self.event_samples = 0
        self.net: _QuantileNet | None = None
        self.scaler: Scaler | None = None
        self.rv_ratio: dict[str, float] = {}
        self.rv_ratio_pooled = 1.0
        self.train_end: date | None = None
        self.device = torch.device("cpu")

    # -- interface -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able configuration, with the model name."""
        out = asdict(self.cfg)
        out["event_types"] = list(self.cfg.event_types)
        return {"model": self.name, **out}

    def fit(self, data: ModelData, train_end: date) -> Self:
        """Fit on the samples whose origin and target sessions are ``<= train_end``.

        Raises
        ------
        DataError
            Missing columns or events, fewer than ``min_train`` usable samples, or (``quantile_event``)
            an event calendar that covers no training target.
        """
        train_end = check_date(train_end, "train_end")
        cfg = self.cfg
        cut = data.upto(train_end)
        samples = self._samples(cut, origins=None, with_target=True)
        samples = samples.take(np.isfinite(samples.y))
        if samples.n < cfg.min_train:
            raise DataError(
                f"model {self.name!r}: {samples.n} usable training samples up to {train_end}, fewer than "
                f"min_train={cfg.min_train} (each needs window={cfg.window} sessions and "
                f"min_scale_obs={cfg.min_scale_obs} returns of history)"
            )
        dates = np.array(samples.origin, dtype="datetime64[D]")
        tr, va = chronological_split(dates, cfg.val_fraction, gap=cfg.horizon - 1)
        self.scaler = Scaler.fit(samples.x[tr])
        self.rv_ratio, self.rv_ratio_pooled = _rv_ratios(cut.features)
        self.device = pick_device(cfg.device)
        with torch_threads(cfg.threads):
            with seeded(cfg.seed):
                net = _QuantileNet(samples.x.shape[1], samples.e.shape[1], cfg).to(self.device)
                x = self._x(samples)
                y = torch.as_tensor(samples.y, dtype=torch.float32, device=self.device)
                tr_t = torch.as_tensor(tr, device=self.device)
                va_t = torch.as_tensor(va, device=self.device)
                self.history = fit_torch(
                    net,
                    pinball_torch,
                    (x[tr_t], y[tr_t]),
                    (x[va_t], y[va_t]) if va.size else None,
                    cfg.train_config(),
                    self.progress,
                )
            if self.use_events:
                covered = np.flatnonzero(samples.covered)
                if covered.size == 0:
                    raise DataError(
                        f"model {self.name!r}: the event calendar covers none of the training targets up to "
                        f"{train_end}; give ModelData.events that overlap the training window"
                    )
                idx = torch.as_tensor(covered, device=self.device)
                self.event_history = _fit_event_head(net, x[idx], self._e(samples)[idx], y[idx], cfg)
                self.event_samples = int(covered.size)
        self.net = net.eval()
        self.train_end = train_end
        return self

    def predict(self, data: ModelData, origins: Sequence[date], horizon: int = 1) -> pl.DataFrame:
        """Quantile forecasts of the session ``horizon`` after each listed origin, per symbol.

        An origin that is not a session of the symbol, or lacks ``window`` sessions of history and a
        defined scale, gets no row. A forecast at ``t`` reads rows ``<= t``, events released by the end
        of ``t`` and the scheduled calendar of the target session only.
        """
        if self.net is None or self.scaler is None:
            raise ConfigError(f"model {self.name!r}: call fit() before predict()")
        horizon = check_horizon(horizon)
        if horizon != self.cfg.horizon:
            raise ConfigError(
                f"model {self.name!r} was fitted for horizon={self.cfg.horizon}; got horizon={horizon}"
            )
        wanted = check_origins(origins)
        if not wanted:
            return empty_predictions()
        s = self._samples(data, origins=set(wanted), with_target=False)
        if s.n == 0:
            return empty_predictions()
        with torch_threads(self.cfg.threads), torch.no_grad():
            u = self.net(self._x(s), self._e(s) if self.use_events else None).double().cpu().numpy()
        q = u * s.scale[:, None]
        var = ((q[:, QUANTILES.index(0.9)] - q[:, QUANTILES.index(0.1)]) / (2.0 * _Z90)) ** 2
        ratio = np.array([self.rv_ratio.get(sym, self.rv_ratio_pooled) for sym in s.symbol])
        params = [
            json.dumps(
                {
                    "scale": float(s.scale[i]),
                    "z_quantiles": [round(float(v), 6) for v in u[i]],
                    "var_method": "normal_q10_q90",
                    "rv_ratio": float(ratio[i]),
                    **({"events": s.flags[i]} if self.use_events else {}),
                },
                sort_keys=True,
            )
            for i in range(s.n)
        ]
        frame = pl.DataFrame(
            {
                "model": [self.name] * s.n,
                "symbol": s.symbol,
                "origin": s.origin,
                "target": s.target,
                "horizon": [horizon] * s.n,
                "variance": var,
                "rv": var / ratio,
                "mean": q[:, _MEDIAN],
                **{c: q[:, i] for i, c in enumerate(QUANTILE_COLUMNS)},
                "family": ["quantile"] * s.n,
                "params": params,
            },
            schema=empty_predictions().schema,
        )
        return concat_predictions([frame])

    # -- checkpoints -----------------------------------------------------------------------------
    def input_names(self) -> list[str]:
        """The network's inputs in column order (the checkpoint's feature list).

        ``ret_lag{k}`` / ``log_vol_d_lag{k}``: scaled return and log daily volatility ``k`` sessions
        before the origin (oldest first); then the weekly and monthly log volatilities and the log
        scale; for ``quantile_event`` the target-session flags and surprises of each event type.
        """
        lags = range(self.cfg.window - 1, -1, -1)
        names = [f"ret_lag{k}" for k in lags] + [f"log_vol_d_lag{k}" for k in lags]
        names += ["log_vol_w", "log_vol_m", "log_scale"]
        if self.use_events:
            for prefix in ("sched", "surprise", "abs_surprise"):
                names += [f"{prefix}_{t.lower()}" for t in self.cfg.event_types]
        return names

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Weights and plain metadata for :func:`tasks.models.checkpoint.save_checkpoint`.

        Raises
        ------
        ConfigError
            When the model is not fitted.
        """
        if self.net is None or self.scaler is None or self.train_end is None:
            raise ConfigError(f"model {self.name!r} is not fitted: nothing to checkpoint")
        meta = {
            "model": self.name,
            "config": self.config(),
            "features": self.input_names(),
            "train_end": self.train_end.isoformat(),
            "scaler": self.scaler.state(),
            "rv_ratio": dict(self.rv_ratio),
            "rv_ratio_pooled": self.rv_ratio_pooled,
            "history": None if self.history is None else self.history.as_dict(),
            "event_history": list(self.event_history),
            "event_samples": self.event_samples,
        }
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items()}, meta

    def restore_checkpoint(self, weights: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Self:
        """Load what :meth:`checkpoint_state` gave (the same config must have built ``self``).

        Raises
        ------
        ConfigError
            A checkpoint of another model, or one trained on other inputs (window, event types).
        """
        if meta.get("model") != self.name:
            raise ConfigError(f"checkpoint is of model {meta.get('model')!r}, not {self.name!r}")
        stored = list(meta.get("features") or [])
        if stored != self.input_names():
            raise ConfigError(
                f"model {self.name!r}: the checkpoint was trained on {len(stored)} inputs {stored}, but this "
                f"configuration feeds {len(self.input_names())}: {self.input_names()}. Retrain the model "
                "for this configuration."
            )
        n_event = 3 * len(self.cfg.event_types) if self.use_events else 0
        with seeded(self.cfg.seed):  # the initial weights are overwritten; keep the caller's RNG as is
            net = _QuantileNet(len(stored) - n_event, n_event, self.cfg)
        net.load_state_dict(dict(weights), strict=True)
        self.device = pick_device(self.cfg.device)
        self.net = net.to(self.device).eval()
        self.scaler = Scaler.from_state(meta["scaler"])
        self.rv_ratio = {str(k): float(v) for k, v in dict(meta["rv_ratio"]).items()}
        self.rv_ratio_pooled = float(meta["rv_ratio_pooled"])
        self.train_end = date.fromisoformat(str(meta["train_end"]))
        self.event_history = [float(v) for v in meta.get("event_history") or []]
        self.event_samples = int(meta.get("event_samples") or 0)
        self.history = _history(meta.get("history"))
        return self

    # -- internals -------------------------------------------------------------------------------
    def _x(self, s: _Samples) -> torch.Tensor:
        assert self.scaler is not None
        return torch.as_tensor(self.scaler.transform(s.x), dtype=torch.float32, device=self.device)

    def _e(self, s: _Samples) -> torch.Tensor:
        return torch.as_tensor(s.e, dtype=torch.float32, device=self.device)

    def _samples(self, data: ModelData, *, origins: set[date] | None, with_target: bool) -> _Samples:
        feats = data.features
        require_columns(feats, _COLUMNS, self.name)
        events: pl.DataFrame | None = None
        if self.use_events:
            if data.events is None:
                raise DataError(f"model {self.name!r} needs ModelData.events (see tasks.events)")
            events = check_events(data.events)
        k, j = 2 * self.cfg.window + 3, (3 * len(self.cfg.event_types) if self.use_events else 0)
        parts = []
        for (symbol,), rows in feats.sort("symbol", "session_date").group_by("symbol", maintain_order=True):
            if rows["session_date"].is_duplicated().any():
                raise DataError(f"features repeat a session_date for symbol {symbol!r}")
            calendar = data.calendar_of(str(symbol))
            parts.append(self._symbol_samples(str(symbol), rows, events, origins, with_target, j, calendar))
        return _Samples.concat(parts, k, j)

    def _symbol_samples(
        self,
        symbol: str,
        rows: pl.DataFrame,
        events: pl.DataFrame | None,
        origins: set[date] | None,
        with_target: bool,
        j: int,
        registered: str | None = None,
    ) -> _Samples:
        cfg = self.cfg
        calendar = symbol_calendar(cfg.calendar, symbol) or registered or infer_calendar(rows)
        x, scale = _window_inputs(rows, cfg)
        usable = np.isfinite(x).all(axis=1) & np.isfinite(scale)
        if origins is not None:
            usable &= rows["session_date"].is_in(list(origins)).to_numpy()
        sel = rows.filter(pl.Series(usable))
        if sel.height == 0:
            return _Samples.concat([], x.shape[1], j)
        windows = target_windows(calendar, sel["session_date"], cfg.horizon)
        sel = sel.join(
            windows.select("session_date", "target"), on="session_date", how="left", maintain_order="left"
        )
        scale_sel = scale[usable]
        y = np.full(sel.height, np.nan)
        if with_target:
            ret = rows.select(pl.col("session_date").alias("target"), pl.col("ret_cc").alias("y_ret"))
            y_ret = sel.join(ret, on="target", how="left", maintain_order="left")["y_ret"]
            y = y_ret.cast(pl.Float64).fill_null(np.nan).to_numpy() / scale_sel
        if events is not None:
            ev = event_features(
                sel.select("symbol", "session_date", "session_end"),
                events,
                calendar,
                horizon=cfg.horizon,
                types=cfg.event_types,
            )
            e, flags, covered = _event_inputs(ev, cfg)
        else:
            e, flags = np.zeros((sel.height, 0)), [{} for _ in range(sel.height)]
            covered = np.zeros(sel.height, dtype=bool)
        return _Samples(
            [symbol] * sel.height,
            sel["session_date"].to_list(),
            sel["target"].to_list(),
            x[usable],
            e,
            scale_sel,
            y,
            flags,
            covered,
        )


@register("quantile_event")
class QuantileEventForecaster(QuantileForecaster):
    """:class:`QuantileForecaster` plus an event head over ``ModelData.events`` (module docstring)."""

    name = "quantile_event"
    use_events = True
