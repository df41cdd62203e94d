"""The torch training loop every neural model shares.

:func:`fit_torch`: AdamW, seeded shuffling inside the training split, bf16 autocast on CUDA (and,
with ``cpu_amp``, on a CPU with native bf16), gradient clipping, early stopping on the validation
loss with the best weights restored, and a per-epoch history; :func:`plot_history` draws it
(matplotlib's Agg canvas, no pyplot state). With ``keep_initial`` the weights the model starts from
are a candidate too: a residual model that starts at its baseline (HAR) keeps the baseline unless an
epoch beats it on the validation split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import ConfigError, DataError
from tasks.models.torch_data import Batches, TensorXY
from tasks.models.torch_runtime import check_seed, pick_device


# ------------------------------------------------------------------------------------------ training loop
@dataclass(frozen=True)
class LoopSettings:
    """The training-loop settings every torch model's config shares, with :class:`TrainConfig`'s defaults.

    A model's config subclasses this and overrides only the defaults it tunes; :meth:`train_config`
    hands every loop setting (and ``cpu_amp``, ``num_threads``... when the config has them) to
    :func:`fit_torch`. The attributes are documented on :class:`TrainConfig`.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    min_delta: float = 0.0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True

    def train_config(self) -> TrainConfig:
        """The loop settings as a :class:`TrainConfig` (fields it does not know are ignored)."""
        return TrainConfig.from_mapping(asdict(self))


@dataclass(frozen=True)
class TrainConfig(LoopSettings):
    """Optimizer and loop settings of :func:`fit_torch`.

    Attributes
    ----------
    epochs : int
        Most passes over the training split.
    batch_size : int
        Training minibatch size.
    lr, weight_decay : float
        AdamW settings.
    patience : int
        Epochs without a validation improvement (by more than ``min_delta``) before stopping.
    min_delta : float
        Smallest decrease of the validation loss that counts as an improvement.
    grad_clip : float | None
        Max gradient norm, or None.
    seed : int
        Seed of the weights' initialization (by the caller, see :func:`seeded`) and of the shuffling.
    device : str
        See :func:`pick_device`.
    amp : bool
        bf16 autocast on CUDA (training and validation passes).
    cpu_amp : bool
        With ``amp``, bf16 autocast of the training steps on a CPU that computes in bf16 natively
        (AVX512-BF16 or AMX, see :func:`cpu_bf16_native`); elsewhere the CPU runs float32. Weights,
        optimizer state, the loss, validation passes and predictions stay float32.
    eval_batch_size : int
        Batch size of validation and prediction passes.
    shuffle : bool
        Shuffle the batch order inside the training split each epoch.
    num_threads : int | None
        CPU threads torch uses during the fit (restored afterwards); None keeps torch's setting. Small
        models gain nothing from intra-op threads, and on a shared machine extra threads cost a lot.
    """

    cpu_amp: bool = False
    eval_batch_size: int = 2048
    shuffle: bool = True
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.num_threads is not None:
            _positive_int(self.num_threads, "num_threads")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            _positive_int(getattr(self, name), name)
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 0:
            raise ConfigError(f"patience must be an integer >= 0; got {self.patience!r}")
        for name in ("lr", "weight_decay", "min_delta"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(f"{name} must be a finite number >= 0; got {value!r}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0; got {self.lr!r}")
        for name in ("amp", "cpu_amp", "shuffle"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if self.grad_clip is not None and not (
            isinstance(self.grad_clip, int | float) and self.grad_clip > 0
        ):
            raise ConfigError(f"grad_clip must be None or a number > 0; got {self.grad_clip!r}")
        check_seed(self.seed)
        pick_device(self.device) if self.device != "auto" else None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> TrainConfig:
        """The fields of ``config`` that name a :class:`TrainConfig` attribute (others are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1; got {value!r}")
    return value


@dataclass(frozen=True)
class EpochStats:
    """What the ``progress`` callback of :func:`fit_torch` receives after each epoch."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    best_epoch: int
    seconds: float


@dataclass
class History:
    """Per-epoch losses and the outcome of :func:`fit_torch` (plain values: checkpoint-safe)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_loss: float = math.inf
    stopped_early: bool = False
    wall_s: float = 0.0
    samples_per_s: float = 0.0
    device: str = "cpu"
    initial_loss: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (``inf`` best loss becomes None)."""
        out = asdict(self)
        out["best_loss"] = None if not math.isfinite(self.best_loss) else self.best_loss
        return out

    @property
    def kept_initial(self) -> bool:
        """True when the starting weights were scored (``keep_initial``) and no epoch beat them."""
        return self.initial_loss is not None and self.best_epoch < 0


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _as_batches(xy: Batches | tuple[torch.Tensor, torch.Tensor] | None) -> Batches | None:
    if xy is None:
        return None
    if isinstance(xy, tuple):
        return TensorXY(*xy)
    return xy


@lru_cache(maxsize=1)
def cpu_bf16_native() -> bool:
    """Whether this CPU has bf16 arithmetic instructions (AVX512-BF16 or AMX tiles).

    Without them bf16 matrix products are emulated in float32 and autocast only adds conversions.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _autocast(device: torch.device, amp: bool, cpu_amp: bool = False) -> Any:
    """bf16 autocast on CUDA with ``amp``; on the CPU with ``amp`` and ``cpu_amp`` when bf16 is native."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and amp and cpu_amp and cpu_bf16_native():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, loss_fn: LossFn, data: Batches, batch_size: int, amp: bool = False
) -> float:
    """Mean of ``loss_fn`` over ``data`` in eval mode (weighted by batch size)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    n = len(data)
    for lo in range(0, n, batch_size):
        idx = torch.arange(lo, min(lo + batch_size, n), device=device)
        x, y = data.batch(idx)
        with _autocast(device, amp):
            out = model(x)
        total += loss_fn(out.float(), y).double() * idx.numel()
    model.train(was_training)
    return float(total.item() / max(n, 1))


@torch.no_grad()
def predict_batches(model: nn.Module, data: Batches, batch_size: int = 2048) -> torch.Tensor:
    """Model outputs for every sample of ``data`` in order (eval mode, float32, on the CPU)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for lo in range(0, len(data), batch_size):
        idx = torch.arange(lo, min(lo + batch_size, len(data)), device=device)
        x, _ = data.batch(idx)
        outs.append(model(x).float().cpu())
    model.train(was_training)
    if not outs:
        return torch.empty(0)
    return torch.cat(outs)


def _train_epoch(
    model: nn.Module,
    loss_fn: LossFn,
    train: Batches,
    opt: torch.optim.Optimizer,
    order: torch.Tensor,
    cfg: TrainConfig,
) -> float:
    """One pass over ``train`` in ``order``; returns the mean training loss (one host sync)."""
    device = order.device
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    for lo in range(0, len(order), cfg.batch_size):
        idx = order[lo : lo + cfg.batch_size]
        x, y = train.batch(idx)
        opt.zero_grad(set_to_none=True)
        with _autocast(device, cfg.amp, cfg.cpu_amp):
            out = model(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        total += loss.detach().double() * idx.numel()
    return float(total.item() / len(order))


def _checked_splits(
    train_xy: Batches | tuple[torch.Tensor, torch.Tensor],
    val_xy: Batches | tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[Batches, Batches | None]:
    """The training and validation batches; an empty validation split becomes None."""
    train = _as_batches(train_xy)
    val = _as_batches(val_xy)
    if train is None or len(train) == 0:
        raise DataError("fit_torch: the training split is empty")
    return train, None if val is None or len(val) == 0 else val


def _record_epoch(
    hist: History, epoch: int, train_loss: float, val_loss: float | None, min_delta: float
) -> bool:
    """Append an epoch's losses to ``hist``; True (and the new best) when the monitored loss improved.

    The validation loss is monitored when there is one, else the training loss.
    """
    hist.train_loss.append(train_loss)
    if val_loss is not None:
        hist.val_loss.append(val_loss)
    monitored = val_loss if val_loss is not None else train_loss
    if math.isfinite(monitored) and monitored < hist.best_loss - min_delta:
        hist.best_loss, hist.best_epoch = monitored, epoch
        return True
    return False


def _score_initial(
    model: nn.Module, loss_fn: LossFn, val: Batches, cfg: TrainConfig, hist: History
) -> dict[str, torch.Tensor] | None:
    """Validation loss of the starting weights as the best so far (epoch -1); their copy, or None."""
    hist.initial_loss = evaluate_loss(model, loss_fn, val, cfg.eval_batch_size, cfg.amp)
    if not math.isfinite(hist.initial_loss):
        return None
    hist.best_loss = hist.initial_loss
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fit_torch(
    model: nn.Module,
    loss_fn: LossFn,
    train_xy: Batches | tuple[torch.Tensor, torch.Tensor],
    val_xy: Batches | tuple[torch.Tensor, torch.Tensor] | None,
    config: TrainConfig | Mapping[str, Any],
    progress: Callable[[EpochStats], None] | None = None,
    keep_initial: bool = False,
) -> History:
    """Train ``model`` in place with early stopping on the validation loss; restore the best weights.

    Parameters
    ----------
    model : nn.Module
        Already on the device of the data.
    loss_fn : callable
        ``loss_fn(output, y) -> scalar`` (the output is cast to float32 first).
    train_xy, val_xy : Batches or (x, y)
        Training and validation samples resident on the device. Without validation samples the
        training loss is monitored instead.
    config : TrainConfig or mapping
        Loop settings (a mapping is read with :meth:`TrainConfig.from_mapping`).
    progress : callable, optional
        Called with an :class:`EpochStats` after every epoch (CLI progress bars, Prefect logs).
    keep_initial : bool
        With validation data, the starting weights are scored first and kept unless an epoch beats them.

    Returns
    -------
    History
        Losses per epoch, best epoch, whether it stopped early, wall time and samples/s.

    Raises
    ------
    DataError
        When the training split is empty.
    ConfigError
        When the loss becomes non-finite (diverged: lower ``lr``).
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_mapping(config)
    train, val = _checked_splits(train_xy, val_xy)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(train)
    hist = History(device=str(device))
    best_state = _score_initial(model, loss_fn, val, cfg, hist) if keep_initial and val is not None else None
    wait = 0
    t0 = time.perf_counter()
    seen = 0
    for epoch in range(cfg.epochs):
        te = time.perf_counter()
        order = torch.randperm(n, generator=gen) if cfg.shuffle else torch.arange(n)
        train_loss = _train_epoch(model, loss_fn, train, opt, order.to(device), cfg)
        seen += n
        if not math.isfinite(train_loss):
            raise ConfigError(
                f"training diverged at epoch {epoch}: the loss is {train_loss}; lower lr (now {cfg.lr})"
            )
        val_loss = (
            evaluate_loss(model, loss_fn, val, cfg.eval_batch_size, cfg.amp) if val is not None else None
        )
        improved = _record_epoch(hist, epoch, train_loss, val_loss, cfg.min_delta)
        if improved:
            wait, best_state = 0, {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
        if progress is not None:
            progress(
                EpochStats(epoch, cfg.epochs, train_loss, val_loss, hist.best_epoch, time.perf_counter() - te)
            )
        if wait and wait >= cfg.patience:
            hist.stopped_early = epoch + 1 < cfg.epochs
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    hist.wall_s = time.perf_counter() - t0
    hist.samples_per_s = seen / hist.wall_s if hist.wall_s > 0 else 0.0
    return hist


def plot_history(
    history: History | Mapping[str, Any], path: str | Path, title: str = "training history"
) -> Path:
    """Write a PNG of the training (and validation) loss per epoch, marking the best epoch.

    Uses matplotlib's Agg canvas directly, so it needs no display and touches no global pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h = history.as_dict() if isinstance(history, History) else dict(history)
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(range(len(h["train_loss"])), h["train_loss"], label="train")
    if h.get("val_loss"):
        ax.plot(range(len(h["val_loss"])), h["val_loss"], label="validation")
    best = h.get("best_epoch", -1)
    if isinstance(best, int) and best >= 0:
        ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
