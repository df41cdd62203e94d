"""``voltransformer``: the research Transformer, in daily mode (registry) and minute mode.

Network (:class:`VolTransformerNet`, research notebook 000)
-----------------------------------------------------------
``Linear(n_inputs, d)`` projection, sinusoidal positional encoding, ``nn.TransformerEncoder`` (batch
first, GELU, ``dim_feedforward = ff``), the LAST token's state, then an MLP head. In minute mode the
head ends in ``Softplus`` (a variance is positive), as in the research; in daily mode the head's
location output (log RV) is unbounded and ``Softplus`` makes its scale positive (see
``tasks.models.daily_nn``).

Only the last token feeds the head, so the last encoder layer is evaluated for that token only
(``last_token_only=True``): its queries, attention output, feed-forward block and norms run on one
position while keys and values still come from the whole window. The result equals
``encoder(z)[:, -1]`` (tested) at about ``(L - 1) / L`` of the cost of the last layer's per-token work.

Training path (``fast_train=True``, the default)
------------------------------------------------
In training mode the encoder layers run through :func:`_train_layer`: the same parameters and the
same computation as ``nn.TransformerEncoderLayer`` (equal to it with dropout off, tested), but
attention is formed directly (``softmax(q k^T / sqrt(d_head))``, dropped, times ``v``) and every
dropout draws its keep-mask from 16-bit random integers (:func:`fast_dropout`) instead of one
``bernoulli_`` double per element. On the CPU at research size dropout masks were about a fifth of a
step and the generic attention kernel's masking guards another 5%. Eval mode (validation,
predictions) runs the ``nn`` modules unchanged, so forecasts of given weights are what they were; only
the dropout masks drawn in training differ. The minute model also trains in bf16 autocast where the
CPU computes bf16 natively (``cpu_amp``; float32 master weights and loss). ``bench/train.py`` measures
both against the research's DataLoader loop.

Daily mode (``get_model("voltransformer")``)
-------------------------------------------
A window of the last ``window`` sessions of daily features (log rv_d, log rv_w, log rv_m, return,
downside share, jump share by default) forecasts next-session log RV, by default as a correction to
the log-HAR forecast (``residual=True``; see ``tasks.models.daily_nn``: the head starts at zero, so an
untrained network is HAR). Losses: ``qlike`` (the default: QLIKE of RV, the loss the evaluation ranks
by), ``mse`` (the research's) or ``gaussian_nll`` on log RV. Research size is
``d_model=64, heads=8, layers=4`` on a 60-step window; the daily default is smaller
(``d_model=32, heads=4, layers=2, ff=64``, window 22): about 2,000 training windows do not support
200k parameters, and a default fit takes well under a minute on two CPU cores.

Minute mode (:class:`MinuteTransformer`)
---------------------------------------
A window of ``m`` (60 or 120) one-minute log returns forecasts the next squared return: ``fit`` on a
return array (the training span, oldest first) with a chronological validation tail, ``forecast``
aligned so that ``out[p]`` uses ``r[p - m : p]`` only. Unlike the research notebook, the target is the
return right after the window (the notebook skipped one), returns are scaled by their training
standard deviation (squared returns of order 1e-7 starve MSE of gradient) and the split is never random.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ConfigError, DataError
from core.schema import QUANTILES
from tasks.models.base import register
from tasks.models.daily_nn import (
    DailyConfig,
    DailyTorchForecaster,
    DistHead,
    config_dict,
)
from tasks.models.families import Family, family_names, get_family
from tasks.models.torch_data import chronological_split, make_windows
from tasks.models.torch_fit import EpochStats, History, LoopSettings, fit_torch, predict_batches
from tasks.models.torch_runtime import pick_device, seeded, torch_threads


# ------------------------------------------------------------------------------------------ network
class SinusoidalPositionalEncoding(nn.Module):
    """``x + P[:, :len]`` with the fixed sine/cosine table of Vaswani et al."""

    P: torch.Tensor

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
        self.register_buffer("P", pe.unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.P[:, : x.size(1)].to(x.dtype)


def _last_token_layer(layer: nn.TransformerEncoderLayer, z: torch.Tensor) -> torch.Tensor:
    """``layer(z)[:, -1]`` computed for the last position only (keys/values from every position)."""
    q = z[:, -1:, :]

    def ff(x: torch.Tensor) -> torch.Tensor:
        return layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(x)))))

    if layer.norm_first:
        zn = layer.norm1(z)
        h = q + layer.dropout1(layer.self_attn(zn[:, -1:, :], zn, zn, need_weights=False)[0])
        h = h + ff(layer.norm2(h))
    else:
        h = layer.norm1(q + layer.dropout1(layer.self_attn(q, z, z, need_weights=False)[0]))
        h = layer.norm2(h + ff(h))
    return h[:, 0]


# ------------------------------------------------------------------------------------------ training path
_MASK_LEVELS = 1 << 16  # keep-masks come from 16-bit random integers


def keep_mask(x: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """A dropout keep-mask for ``x`` and the scale of kept elements.

    The mask comes from 16-bit uniform integers (four per ``int64`` of ``random_``): an element is
    dropped when its integer falls below ``round(p * 65536)``, i.e. with probability ``p`` to within
    ``2**-17``, and the scale is the exact inverse of the resulting keep probability. On the CPU this
    is several times faster than ``bernoulli_``, which draws one double per element.

    Parameters
    ----------
    x : torch.Tensor
        The tensor to drop from (its shape and device are used).
    p : float
        Drop probability in ``(0, 1)``.

    Returns
    -------
    tuple[torch.Tensor, float]
        A bool tensor shaped like ``x`` (True: keep) drawn from torch's default generator (seeded runs
        repeat), and ``1 / P(keep)``.
    """
    n = x.numel()
    threshold = round(p * _MASK_LEVELS)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    bits = words.view(torch.int16)[:n].view(x.shape)
    return bits >= threshold - _MASK_LEVELS // 2, _MASK_LEVELS / (_MASK_LEVELS - threshold)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the CPU keep-mask of :func:`keep_mask`.

    Identity in eval mode or for ``p == 0``; off the CPU (CUDA's fused dropout is already fast, MPS
    lacks 64-bit ``random_``) it is ``F.dropout`` itself. In float32/float64 the kept elements are
    multiplied by the scale folded into the mask (one multiply forward and backward); in a reduced
    precision (bf16 autocast) ``x * mask`` is rescaled in place so that each element is rounded once,
    as ``F.dropout`` does, instead of every element carrying the rounded scale.
    """
    if not training or p <= 0:
        return x
    if x.device.type != "cpu" or p >= 1:
        return F.dropout(x, p, True)
    keep, scale = keep_mask(x, p)
    if x.dtype in (torch.float32, torch.float64):
        return x * keep.to(x.dtype).mul_(scale)
    return (x * keep.to(x.dtype)).mul_(scale)


def _attention(attn: nn.MultiheadAttention, q_in: torch.Tensor, kv_in: torch.Tensor) -> torch.Tensor:
    """``attn(q_in, kv_in, kv_in)[0]`` (batch first, no masks) computed head by head with fast dropout.

    With attention dropout active on the CPU, the scores ``softmax(q k^T / sqrt(d_head))`` are formed
    directly and dropped with a :func:`keep_mask` (``scaled_dot_product_attention`` would take its
    generic math path, which also spends time guarding against fully masked rows that cannot occur
    here); otherwise the fused ``scaled_dot_product_attention`` kernel runs.
    """
    b, lq, d = q_in.shape
    heads = attn.num_heads
    w, bias = attn.in_proj_weight, attn.in_proj_bias
    if q_in is kv_in:
        q, k, v = F.linear(q_in, w, bias).chunk(3, dim=-1)
    else:
        q = F.linear(q_in, w[:d], None if bias is None else bias[:d])
        k, v = F.linear(kv_in, w[d:], None if bias is None else bias[d:]).chunk(2, dim=-1)
    q, k, v = (t.unflatten(-1, (heads, d // heads)).transpose(1, 2) for t in (q, k, v))
    p = attn.dropout if attn.training else 0.0
    if p > 0 and q.device.type == "cpu":
        probs = torch.softmax(torch.matmul(q * (d // heads) ** -0.5, k.transpose(-2, -1)), dim=-1)
        keep, scale = keep_mask(probs, p)
        # the dropout scale goes on the (heads x window) smaller output, not on every probability
        out = torch.matmul(probs * keep.to(probs.dtype), v) * scale
    else:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
    return attn.out_proj(out.transpose(1, 2).reshape(b, lq, d))


def _train_layer(layer: nn.TransformerEncoderLayer, z: torch.Tensor, last_only: bool) -> torch.Tensor:
    """``layer(z)`` (or its last position, ``(batch, 1, d)``) with :func:`fast_dropout` everywhere.

    The same computation as ``nn.TransformerEncoderLayer.forward`` without masks (post- or pre-norm),
    through :func:`_attention`; with dropout off it equals ``layer(z)`` to float rounding (tested).
    """

    def attend(xq: torch.Tensor, xkv: torch.Tensor) -> torch.Tensor:
        return fast_dropout(_attention(layer.self_attn, xq, xkv), layer.dropout1.p, layer.training)

    def ff(x: torch.Tensor) -> torch.Tensor:
        hidden = fast_dropout(layer.activation(layer.linear1(x)), layer.dropout.p, layer.training)
        return fast_dropout(layer.linear2(hidden), layer.dropout2.p, layer.training)

    q = z[:, -1:, :] if last_only else z
    if layer.norm_first:
        zn = layer.norm1(z)
        h = q + attend(zn[:, -1:, :] if last_only else zn, zn)
        return h + ff(layer.norm2(h))
    h = layer.norm1(q + attend(q, z))
    return layer.norm2(h + ff(h))


class VolTransformerNet(nn.Module):
    """Linear projection, sinusoidal PE, TransformerEncoder, last token, head.

    Parameters
    ----------
    n_inputs : int
        Features per time step (1 for returns).
    window : int
        Longest input sequence.
    d_model, heads, layers, ff : int
        Encoder width, attention heads, layers and feed-forward width.
    dropout : float
        Encoder dropout.
    head : nn.Module
        Maps the last token's ``(batch, d_model)`` state to the outputs.
    last_token_only : bool
        Evaluate the last encoder layer for the last position only (same result, less work).
    fast_train : bool
        In training mode, run the encoder layers through :func:`_train_layer` (direct attention,
        :func:`fast_dropout` for every dropout); same parameters and eval-mode outputs, only the
        dropout masks are drawn differently. False runs ``nn.TransformerEncoderLayer`` as is.
    """

    def __init__(
        self,
        n_inputs: int,
        window: int,
        d_model: int,
        heads: int,
        layers: int,
        ff: int,
        dropout: float,
        head: nn.Module,
        last_token_only: bool = True,
        fast_train: bool = True,
    ) -> None:
        super().__init__()
        if d_model % heads:
            raise ConfigError(f"d_model must be a multiple of heads; got d_model={d_model}, heads={heads}")
        self.proj = nn.Linear(n_inputs, d_model)
        self.pos = SinusoidalPositionalEncoding(d_model, window)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = head
        self.last_token_only = last_token_only
        self.fast_train = fast_train

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The last token's state ``(batch, d_model)`` for inputs ``(batch, steps, n_inputs)``."""
        z = self.pos(self.proj(x))
        if self.training and self.fast_train:
            return self._encode_train(z)
        if not self.last_token_only:
            return self.encoder(z)[:, -1]
        layers = self.encoder.layers
        for layer in layers[:-1]:
            z = layer(z)
        h = _last_token_layer(layers[-1], z)
        if self.encoder.norm is not None:
            h = self.encoder.norm(h)
        return h

    def _encode_train(self, z: torch.Tensor) -> torch.Tensor:
        """:meth:`encode`'s training-mode path through :func:`_train_layer`."""
        layers = self.encoder.layers
        for i, layer in enumerate(layers):
            z = _train_layer(layer, z, self.last_token_only and i == len(layers) - 1)
        h = z[:, -1]
        if self.encoder.norm is not None:
            h = self.encoder.norm(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))


def positive_head(d_model: int) -> nn.Module:
    """The research head: ``Linear(d, d) -> GELU -> Linear(d, 1) -> Softplus``, squeezed to ``(batch,)``."""
    return nn.Sequential(
        nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 1), nn.Softplus(), nn.Flatten(0)
    )


def _check_arch(d_model: object, heads: object, layers: object, ff: object, dropout: object) -> None:
    for name, value in (("d_model", d_model), ("heads", heads), ("layers", layers), ("ff", ff)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1; got {value!r}")
    assert isinstance(d_model, int) and isinstance(heads, int)
    if d_model % heads:
        raise ConfigError(f"d_model must be a multiple of heads; got d_model={d_model}, heads={heads}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be a number in [0, 1); got {dropout!r}")


def _check_flags(**flags: object) -> None:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false; got {value!r}")


# ------------------------------------------------------------------------------------------ daily mode
@dataclass(frozen=True)
class TransformerConfig(DailyConfig):
    """:class:`~tasks.models.daily_nn.DailyConfig` plus the encoder (daily defaults are small).

    Attributes
    ----------
    loss : str
        ``qlike`` (default), ``mse`` or ``gaussian_nll``.
    d_model, heads, layers, ff, dropout, last_token_only, fast_train
        Encoder (see :class:`VolTransformerNet`).
    cpu_amp : bool
        bf16 autocast of the training steps on a CPU with native bf16 (see
        :class:`~.torch_fit.TrainConfig`); float32 master weights, validation and predictions. Off
        by default here: the small daily network is no faster in bf16 (the minute model's default
        is on).
    """

    loss: str = "qlike"
    d_model: int = 32
    heads: int = 4
    layers: int = 2
    ff: int = 64
    dropout: float = 0.1
    last_token_only: bool = True
    fast_train: bool = True
    cpu_amp: bool = False


@register("voltransformer")
class VolTransformer(DailyTorchForecaster):
    """Daily-mode research Transformer: daily-feature window -> next-session log RV (module docstring)."""

    name: str = "voltransformer"
    config_class: ClassVar[type[DailyConfig]] = TransformerConfig
    allowed_losses: ClassVar[tuple[str, ...]] = ("mse", "qlike", "gaussian_nll")

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        c = self.cfg
        assert isinstance(c, TransformerConfig)
        _check_arch(c.d_model, c.heads, c.layers, c.ff, c.dropout)
        _check_flags(last_token_only=c.last_token_only, fast_train=c.fast_train)

    def build_net(self, n_inputs: int) -> nn.Module:
        c = self.cfg
        assert isinstance(c, TransformerConfig)
        return VolTransformerNet(
            n_inputs,
            c.window,
            c.d_model,
            c.heads,
            c.layers,
            c.ff,
            c.dropout,
            DistHead(c.d_model, c.loss),
            c.last_token_only,
            c.fast_train,
        )


# ------------------------------------------------------------------------------------------ minute mode
@dataclass(frozen=True)
class MinuteConfig(LoopSettings):
    """Settings of :class:`MinuteTransformer` (research size by default).

    Attributes
    ----------
    window : int
        Returns per input window (the research used 60 and 120).
    d_model, heads, layers, ff, dropout, last_token_only, fast_train
        Encoder (see :class:`VolTransformerNet`).
    loss : str
        ``mse`` on scaled squared returns (the research's) or ``qlike`` (``y / f + log f``).
    family : str
        Distribution of the standardized return for :meth:`MinuteTransformer.quantiles`.
    val_fraction : float
        Last share of the training windows used for early stopping.
    max_train_windows : int | None
        Keep only the most recent windows of the training span (CPU budgets); None keeps all.
    clip_inputs : float
        Scaled returns are clipped to +- this.
    epochs, batch_size, lr, weight_decay, patience, min_delta, grad_clip, seed, device, amp, cpu_amp
        :class:`~.torch_fit.TrainConfig` (``cpu_amp``: bf16 training steps on a CPU with native bf16).
    num_threads
        CPU threads during ``fit`` and ``forecast`` (None keeps torch's setting).
    """

    window: int = 60
    d_model: int = 64
    heads: int = 8
    layers: int = 4
    ff: int = 256
    dropout: float = 0.1
    last_token_only: bool = True
    fast_train: bool = True
    loss: str = "mse"
    family: str = "student_t"
    val_fraction: float = 0.2
    max_train_windows: int | None = None
    clip_inputs: float = 50.0
    epochs: int = 20
    batch_size: int = 128
    patience: int = 3
    cpu_amp: bool = True
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 2:
            raise ConfigError(f"window must be an integer >= 2; got {self.window!r}")
        _check_arch(self.d_model, self.heads, self.layers, self.ff, self.dropout)
        _check_flags(last_token_only=self.last_token_only, fast_train=self.fast_train)
        if self.loss not in ("mse", "qlike"):
            raise ConfigError(f"loss must be 'mse' or 'qlike'; got {self.loss!r}")
        if self.family not in family_names():
            raise ConfigError(f"family must be one of {family_names()}; got {self.family!r}")
        vf = self.val_fraction
        if isinstance(vf, bool) or not isinstance(vf, int | float) or not 0 <= vf < 0.9:
            raise ConfigError(f"val_fraction must be a number in [0, 0.9); got {vf!r}")
        if self.max_train_windows is not None and (
            isinstance(self.max_train_windows, bool)
            or not isinstance(self.max_train_windows, int)
            or self.max_train_windows < 10
        ):
            raise ConfigError(
                f"max_train_windows must be None or an integer >= 10; got {self.max_train_windows!r}"
            )
        self.train_config()


def minute_loss(loss: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss on scaled squared returns ``y`` and positive forecasts ``f``: MSE or QLIKE (``y/f + log f``)."""
    if loss == "mse":
        return lambda f, y: torch.mean((f - y) ** 2)
    if loss == "qlike":
        return lambda f, y: torch.mean(y / (f + 1e-6) + torch.log(f + 1e-6))
    raise ConfigError(f"loss must be 'mse' or 'qlike'; got {loss!r}")


def minute_returns(bars: pl.DataFrame, symbol: str | None = None) -> tuple[pl.Series, np.ndarray]:
    """Close-to-close log returns of consecutive bars, oldest first.

    Parameters
    ----------
    bars : pl.DataFrame
        Bars with ``ts`` and ``close`` (and ``symbol`` when several are present).
    symbol : str | None
        The symbol to use when ``bars`` holds several.

    Returns
    -------
    tuple[pl.Series, np.ndarray]
        The stamp of each return's bar and the returns ``log(close_i / close_{i-1})``. A return across a
        gap in the bars spans the gap (the caller decides whether that matters).
    """
    frame = bars
    if symbol is not None:
        frame = frame.filter(pl.col("symbol") == symbol)
    elif "symbol" in frame.columns and frame["symbol"].n_unique() > 1:
        raise ConfigError("bars hold several symbols: pass symbol=")
    frame = frame.sort("ts")
    close = frame["close"].cast(pl.Float64).to_numpy()
    if close.size < 2 or not np.all(np.isfinite(close) & (close > 0)):
        raise DataError("minute returns need at least two bars with positive finite closes")
    return frame["ts"][1:], np.log(close[1:] / close[:-1])


class MinuteTransformer:
    """Minute mode: a window of ``m`` one-minute log returns -> variance of the next return.

    ``fit(returns)`` trains on one chronological span (oldest first); its last ``val_fraction`` of
    windows is the validation split for early stopping. ``forecast(returns)[p]`` is the variance
    forecast of ``returns[p]`` from ``returns[p - m : p]`` (NaN for ``p < m``; the extra last entry is the
    next, unseen return), so hold-out evaluation is a plain slice.

    Parameters
    ----------
    **config
        Fields of :class:`MinuteConfig`.
    """

    name: str = "voltransformer_minute"

    def __init__(self, **config: Any) -> None:
        known = set(MinuteConfig.__dataclass_fields__)
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"unknown {self.name} config key(s) {unknown}; known: {sorted(known)}")
        self.cfg = MinuteConfig(**config)
        self.progress: Callable[[EpochStats], None] | None = None
        self.history: History | None = None
        self.net: VolTransformerNet | None = None
        self.sigma: float = 1.0
        self.family_fit: Family | None = None
        self.residuals: list[float] = []
        self.device = torch.device("cpu")

    def config(self) -> dict[str, Any]:
        """JSON-able configuration."""
        return config_dict(self.cfg)

    def input_names(self) -> list[str]:
        """The single input: scaled one-minute log returns."""
        return ["ret_1m"]

    def _net(self) -> VolTransformerNet:
        c = self.cfg
        return VolTransformerNet(
            1,
            c.window,
            c.d_model,
            c.heads,
            c.layers,
            c.ff,
            c.dropout,
            positive_head(c.d_model),
            c.last_token_only,
            c.fast_train,
        )

    def _scaled(self, r: np.ndarray) -> np.ndarray:
        return np.clip(
            np.nan_to_num(r / self.sigma, nan=0.0, posinf=0.0, neginf=0.0),
            -self.cfg.clip_inputs,
            self.cfg.clip_inputs,
        )

    def fit(self, returns: np.ndarray) -> Self:
        """Train on ``returns`` (one chronological span; nothing after it is ever passed in).

        Raises
        ------
        DataError
            Too few returns for one training window, or non-finite returns.
        """
        r = np.asarray(returns, dtype=np.float64).ravel()
        m = self.cfg.window
        if r.size < m + 20:
            raise DataError(f"{self.name}: {r.size} returns are too few for window={m}")
        if not np.isfinite(r).all():
            raise DataError(f"{self.name}: returns contain non-finite values")
        pos = np.arange(m, r.size)  # forecast target positions; window r[p - m : p]
        if self.cfg.max_train_windows is not None:
            pos = pos[-self.cfg.max_train_windows :]
        tr, va = chronological_split(pos, self.cfg.val_fraction)
        self.sigma = float(np.std(r[: pos[tr].max() + 1]))  # training span only
        if not self.sigma > 0:
            raise DataError(f"{self.name}: training returns have zero variance")
        z = self._scaled(r)
        y = (r / self.sigma) ** 2
        self.device = pick_device(self.cfg.device)
        cfg = self.cfg.train_config()
        with torch_threads(self.cfg.num_threads), seeded(self.cfg.seed):
            net = self._net().to(self.device)
            train_xy = make_windows(z, pos[tr] - 1, y[pos[tr]], m, self.device)
            val_xy = make_windows(z, pos[va] - 1, y[pos[va]], m, self.device) if va.size else None
            self.history = fit_torch(net, minute_loss(self.cfg.loss), train_xy, val_xy, cfg, self.progress)
        self.net = net.eval()
        with torch_threads(self.cfg.num_threads):
            var = self._forecast_positions(r, pos)
        std = r[pos] / np.sqrt(var)
        self.residuals = [float(v) for v in std[np.isfinite(std)]]
        self.family_fit = get_family(self.cfg.family).fit(np.asarray(self.residuals))
        return self

    def _forecast_positions(self, r: np.ndarray, pos: np.ndarray) -> np.ndarray:
        assert self.net is not None
        xy = make_windows(self._scaled(r), pos - 1, np.zeros(pos.size), self.cfg.window, self.device)
        f = predict_batches(self.net, xy).double().numpy()
        return np.maximum(f, 1e-12) * self.sigma**2

    def forecast(self, returns: np.ndarray) -> np.ndarray:
        """Variance forecasts aligned with ``returns``: ``out[p]`` from ``returns[p - m : p]``.

        Returns
        -------
        np.ndarray
            Length ``len(returns) + 1``; NaN for ``p < window``.
        """
        if self.net is None:
            raise ConfigError(f"{self.name} is not fitted: call fit(returns) first")
        r = np.asarray(returns, dtype=np.float64).ravel()
        out = np.full(r.size + 1, np.nan)
        pos = np.arange(self.cfg.window, r.size + 1)
        if pos.size:
            with torch_threads(self.cfg.num_threads):
                out[pos] = self._forecast_positions(r, pos)
        return out

    def quantiles(self, returns: np.ndarray, levels: Sequence[float] = QUANTILES) -> np.ndarray:
        """Return quantiles ``(len(returns) + 1, len(levels))`` with a zero mean and the fitted family."""
        if self.family_fit is None:
            raise ConfigError(f"{self.name} is not fitted: call fit(returns) first")
        var = self.forecast(returns)
        out = np.full((var.size, len(levels)), np.nan)
        ok = np.isfinite(var)
        out[ok] = self.family_fit.quantiles(0.0, var[ok], levels)
        return out

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Weights and plain metadata for :func:`tasks.models.checkpoint.save_checkpoint`."""
        if self.net is None:
            raise ConfigError(f"{self.name} is not fitted: nothing to checkpoint")
        meta = {
            "model": self.name,
            "config": self.config(),
            "features": self.input_names(),
            "sigma": self.sigma,
            "family": self.cfg.family,
            "residuals": list(self.residuals),
            "history": None if self.history is None else self.history.as_dict(),
        }
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items()}, meta

    def restore_checkpoint(self, weights: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Self:
        """Load what :meth:`checkpoint_state` gave."""
        if meta.get("model") != self.name:
            raise ConfigError(f"checkpoint is of model {meta.get('model')!r}, not {self.name!r}")
        net = self._net()
        net.load_state_dict(dict(weights), strict=True)
        self.device = pick_device(self.cfg.device)
        self.net = net.to(self.device).eval()
        self.sigma = float(meta["sigma"])
        self.residuals = [float(v) for v in meta["residuals"]]
        self.family_fit = get_family(str(meta["family"])).fit(np.asarray(self.residuals))
        return self
