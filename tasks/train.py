"""Training utilities shared by every torch model, then the Prefect entry points ``train_model``/``predict``.

Pure part (no I/O except checkpoints and plots, no Prefect)
-----------------------------------------------------------
- :func:`pick_device`: ``"auto"`` takes CUDA, then MPS, then the CPU; an explicit device that is not
  available raises :class:`~core.errors.ConfigError`.
- :func:`set_seed` / :func:`seeded`: seeds (python, numpy, torch) and deterministic cuDNN settings. On
  the CPU the same data, config and seed give bit-identical weights and forecasts (same torch build and
  thread count). :func:`seeded` restores the caller's RNG state afterwards.
- :func:`chronological_split`: the validation split is the LAST ``val_fraction`` of the distinct
  sample dates, optionally after a ``gap`` of dropped dates (``horizon - 1`` keeps a multi-step training
  target out of the validation targets). Never random: shuffling happens only inside the training
  split, batch by batch.
- :class:`Scaler`: per-feature mean/std fitted on training rows only; its state is plain lists.
- :class:`TensorXY` / :class:`WindowXY`: data that lives ON THE DEVICE; a batch is ``x[idx]`` (or,
  for windows, one gather ``series[ends[idx, None] - offsets]``), so no per-sample ``__getitem__`` or
  ``DataLoader`` runs in the hot loop. Host arrays go to CUDA through pinned memory with
  ``non_blocking=True``; everything is then prefetched, i.e. resident, for the whole fit.
- :func:`fit_torch`: AdamW, seeded shuffling inside the training split, bf16 autocast on CUDA (and,
  with ``cpu_amp``, on a CPU with native bf16), gradient clipping, early stopping on the validation
  loss with the best weights restored, and a per-epoch history; :func:`plot_history` draws it
  (matplotlib's Agg canvas, no pyplot state).
- :func:`save_checkpoint` / :func:`load_checkpoint`: weights plus plain metadata (config, feature
  list, scaler state, data version, code version), read back with ``torch.load(weights_only=True)``,
  so a checkpoint that carries code (any pickled object beyond tensors and plain containers) is
  refused before anything in it runs.

Prefect entry points (end of the module)
----------------------------------------
``train_model`` fits any registry model on warehouse features, measures it on a held-out validation
tail, stores the checkpoint (torch models) under ``<VOLRISK_HOME>/models/<model_run>/`` and records a
``model_runs`` row; ``predict`` rebuilds a run and writes its forecasts to ``predictions``.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import pickle
import random
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from core.errors import ConfigError, DataError

CHECKPOINT_FORMAT = "volrisk-checkpoint"
CHECKPOINT_VERSION = 1
_DEVICES = ("auto", "cpu", "cuda", "mps")


# ------------------------------------------------------------------------------------------ devices
def pick_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``.

    Parameters
    ----------
    name : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        For an unknown name, or a device that this machine does not have.
    """
    if not isinstance(name, str):
        raise ConfigError(f"device must be one of {list(_DEVICES)} (or 'cuda:N'); got {name!r}")
    kind, _, index = name.partition(":")
    if kind not in _DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"device must be one of {list(_DEVICES)} (or 'cuda:N'); got {name!r}")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if kind == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if kind == "cuda":
        if not cuda:
            raise ConfigError(
                f"device={name!r} was requested but CUDA is not available here; use 'auto' or 'cpu'"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not mps:
        raise ConfigError(f"device={name!r} was requested but MPS is not available here; use 'auto' or 'cpu'")
    return torch.device(name)


def to_device(
    array: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Copy a host array to ``device``: through pinned memory with a non-blocking copy on CUDA."""
    t = array if isinstance(array, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(array))
    t = t.to(dtype)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


# ------------------------------------------------------------------------------------------ seeds
def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    return int(seed)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (every device) and make cuDNN deterministic.

    On the CPU, torch's kernels are deterministic for a given build and thread count, so the same
    data, config and seed give bit-identical results. On CUDA the cuDNN flags remove the usual
    sources of run-to-run noise; bit-identity is promised on the CPU only.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n)`` and restore the previous count (None: no change)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under :func:`set_seed` and restore the caller's torch/python/numpy RNG state."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        set_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


# ------------------------------------------------------------------------------------------ splits
def chronological_split(
    dates: np.ndarray | Sequence[Any], val_fraction: float, gap: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation sample indices, split by time (never at random).

    Parameters
    ----------
    dates : array-like
        One date (or any orderable time stamp) per sample, e.g. its origin session; samples of several
        symbols may share a date.
    val_fraction : float
        Share of the distinct dates, the LAST ones, that form the validation split; 0 gives none.
    gap : int
        Distinct dates dropped between the splits (``horizon - 1`` for an h-step target), so no
        training target is a validation target.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        Sorted int64 indices; every validation date is strictly after every training date.

    Raises
    ------
    ConfigError
        ``val_fraction`` outside ``[0, 1)`` or a negative ``gap``.
    DataError
        When the split leaves no training sample.
    """
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, int | float)
        or not 0 <= val_fraction < 1
    ):
        raise ConfigError(f"val_fraction must be a number in [0, 1); got {val_fraction!r}")
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise ConfigError(f"gap must be an integer >= 0; got {gap!r}")
    arr = np.asarray(dates)
    if arr.ndim != 1:
        raise DataError(f"dates must be one-dimensional; got shape {arr.shape}")
    uniq = np.unique(arr)
    n_val = int(math.floor(len(uniq) * val_fraction)) if val_fraction > 0 else 0
    if val_fraction > 0 and n_val == 0 and len(uniq) > 1:
        n_val = 1
    n_train_dates = len(uniq) - n_val - (gap if n_val else 0)
    if n_train_dates <= 0:
        raise DataError(
            f"chronological split of {len(uniq)} dates with val_fraction={val_fraction} and gap={gap} "
            "leaves no training dates"
        )
    order = np.arange(arr.size, dtype=np.int64)
    if n_val == 0:
        return order, np.empty(0, dtype=np.int64)
    last_train, first_val = uniq[n_train_dates - 1], uniq[len(uniq) - n_val]
    return order[arr <= last_train], order[arr >= first_val]


# ------------------------------------------------------------------------------------------ scaler
@dataclass(frozen=True)
class Scaler:
    """Per-column standardization ``(x - mean) / std`` fitted on training rows only.

    Attributes
    ----------
    mean, std : tuple[float, ...]
        Column means and standard deviations (a constant or empty column gets std 1).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray, min_std: float = 1e-12) -> Scaler:
        """Fit on the finite values of each column of ``x`` (shape ``(rows, columns)``)."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise DataError(f"Scaler.fit expects a 2-d array; got shape {arr.shape}")
        finite = np.isfinite(arr)
        count = finite.sum(axis=0)
        safe = np.where(finite, arr, 0.0)
        mean = np.divide(safe.sum(axis=0), count, out=np.zeros(arr.shape[1]), where=count > 0)
        var = np.divide(
            (np.where(finite, arr - mean, 0.0) ** 2).sum(axis=0),
            count,
            out=np.ones(arr.shape[1]),
            where=count > 0,
        )
        std = np.sqrt(var)
        std = np.where(std > min_std, std, 1.0)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` column by column."""
        return (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """``z * std + mean`` column by column."""
        return np.asarray(z, dtype=np.float64) * np.asarray(self.std) + np.asarray(self.mean)

    def state(self) -> dict[str, list[float]]:
        """Plain lists, safe for a ``weights_only`` checkpoint."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_state(cls, state: Mapping[str, Sequence[float]]) -> Scaler:
        """Inverse of :meth:`state`."""
        try:
            mean, std = [float(v) for v in state["mean"]], [float(v) for v in state["std"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"scaler state must hold 'mean' and 'std' lists of numbers: {exc}") from None
        if len(mean) != len(std) or not all(s > 0 for s in std):
            raise DataError("scaler state has mean/std of different lengths or a non-positive std")
        return cls(tuple(mean), tuple(std))


# ------------------------------------------------------------------------------------------ data on device
@runtime_checkable
class Batches(Protocol):
    """Samples resident on one device; a batch is gathered by an index tensor."""

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class TensorXY:
    """Materialized inputs ``x`` (n, ...) and targets ``y`` (n, ...) on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0] or self.x.device != self.y.device:
            raise DataError(
                f"x and y must share length and device; got {tuple(self.x.shape)}, {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]


@dataclass(frozen=True)
class WindowXY:
    """Sliding windows gathered on the fly from one resident series (no m-fold copy of the data).

    Attributes
    ----------
    series : torch.Tensor
        ``(T, features)``; several symbols may be stacked, windows never cross their borders.
    ends : torch.Tensor
        ``(n,)`` int64 row of each window's LAST element (the origin).
    y : torch.Tensor
        ``(n, ...)`` targets.
    window : int
        Rows per window; a batch is ``(b, window, features)``, oldest row first.
    """

    series: torch.Tensor
    ends: torch.Tensor
    y: torch.Tensor
    window: int
    offsets: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.series.ndim != 2:
            raise DataError(f"series must be (rows, features); got shape {tuple(self.series.shape)}")
        if self.ends.shape[0] != self.y.shape[0]:
            raise DataError(
                f"ends and y must have one length; got {self.ends.shape[0]} and {self.y.shape[0]}"
            )
        if self.ends.numel() and int(self.ends.min()) < self.window - 1:
            raise DataError(f"every window end must be >= window - 1 = {self.window - 1}")
        offs = torch.arange(self.window - 1, -1, -1, device=self.series.device, dtype=torch.long)
        object.__setattr__(self, "offsets", offs)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.ends[idx].unsqueeze(1) - self.offsets
        return self.series[rows], self.y[idx]


def make_windows(
    series: np.ndarray, ends: np.ndarray, y: np.ndarray, window: int, device: torch.device
) -> WindowXY:
    """Put a series, window ends and targets on ``device`` as a :class:`WindowXY` (float32)."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ConfigError(f"window must be an integer >= 1; got {window!r}")
    s = np.asarray(series, dtype=np.float32)
    if s.ndim == 1:
        s = s[:, None]
    e = torch.from_numpy(np.ascontiguousarray(ends, dtype=np.int64))
    return WindowXY(
        to_device(s, device), e.to(device), to_device(np.asarray(y, dtype=np.float32), device), window
    )


# ------------------------------------------------------------------------------------------ training loop
@dataclass(frozen=True)
class TrainConfig:
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
        _check_seed(self.seed)
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

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (``inf`` best loss becomes None)."""
        out = asdict(self)
        out["best_loss"] = None if not math.isfinite(self.best_loss) else self.best_loss
        return out


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


def fit_torch(
    model: nn.Module,
    loss_fn: LossFn,
    train_xy: Batches | tuple[torch.Tensor, torch.Tensor],
    val_xy: Batches | tuple[torch.Tensor, torch.Tensor] | None,
    config: TrainConfig | Mapping[str, Any],
    progress: Callable[[EpochStats], None] | None = None,
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
    train = _as_batches(train_xy)
    val = _as_batches(val_xy)
    if train is None or len(train) == 0:
        raise DataError("fit_torch: the training split is empty")
    if val is not None and len(val) == 0:
        val = None
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(train)
    hist = History(device=str(device))
    best_state: dict[str, torch.Tensor] | None = None
    wait = 0
    t0 = time.perf_counter()
    seen = 0
    for epoch in range(cfg.epochs):
        te = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen) if cfg.shuffle else torch.arange(n)
        order = order.to(device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for lo in range(0, n, cfg.batch_size):
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
        seen += n
        train_loss = float(total.item() / n)  # one host sync per epoch
        if not math.isfinite(train_loss):
            raise ConfigError(
                f"training diverged at epoch {epoch}: the loss is {train_loss}; lower lr (now {cfg.lr})"
            )
        val_loss = (
            evaluate_loss(model, loss_fn, val, cfg.eval_batch_size, cfg.amp) if val is not None else None
        )
        hist.train_loss.append(train_loss)
        if val_loss is not None:
            hist.val_loss.append(val_loss)
        monitored = val_loss if val_loss is not None else train_loss
        if math.isfinite(monitored) and monitored < hist.best_loss - cfg.min_delta:
            hist.best_loss, hist.best_epoch, wait = monitored, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
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


# ------------------------------------------------------------------------------------------ checkpoints
@lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe --always --dirty`` of the source tree, else the installed package version."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv
            ["git", "describe", "--always", "--dirty", "--tags"],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return "git:" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return "volrisk " + importlib.metadata.version("volrisk")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_PLAIN = (str, int, float, bool, type(None))


def check_plain(value: Any, where: str = "meta") -> None:
    """Raise ``ConfigError`` unless ``value`` is tensors, str/int/float/bool/None, lists, str-keyed dicts."""
    if isinstance(value, _PLAIN) or isinstance(value, torch.Tensor):
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"checkpoint {where} has a non-string key {k!r}")
            check_plain(v, f"{where}.{k}")
        return
    raise ConfigError(
        f"checkpoint {where} holds a {type(value).__name__}; only tensors, str/int/float/bool/None, lists "
        "and dicts are allowed (weights_only loading refuses anything else)"
    )


def save_checkpoint(
    path: str | Path, state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> Path:
    """Write weights and plain metadata to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    path : str | Path
        Target file (its folder is created).
    state_dict : Mapping[str, torch.Tensor]
        Weights; copied to the CPU.
    meta : Mapping[str, Any]
        Config, ``features`` (list of names), scaler state, data version... Plain values only (see
        :func:`check_plain`); ``code_version`` is added when absent.

    Returns
    -------
    Path
        The written file.
    """
    weights = {str(k): v.detach().cpu().clone() for k, v in state_dict.items()}
    info = dict(meta)
    info.setdefault("code_version", code_version())
    check_plain(info)
    blob = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "weights": weights, "meta": info}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    torch.save(blob, tmp)
    os.replace(tmp, out)
    return out


def load_checkpoint(
    path: str | Path,
    expected_features: Sequence[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path : str | Path
        The checkpoint file.
    expected_features : Sequence[str] | None
        The feature list the caller will feed; a checkpoint trained on another list is refused.
    map_location : str | torch.device
        Where the weights are loaded.

    Returns
    -------
    tuple[dict[str, torch.Tensor], dict[str, Any]]
        Weights and metadata.

    Raises
    ------
    DataError
        Missing file, or a file that is not a safe volrisk checkpoint: a pickle that carries code or
        arbitrary objects is refused by the ``weights_only`` unpickler before anything in it runs.
    ConfigError
        When the checkpoint's feature list differs from ``expected_features``.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("checkpoint file not found", location=str(p))
    try:
        blob = torch.load(p, map_location=map_location, weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        AttributeError,
        ImportError,
        OSError,  # a file cut inside its zip body
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            "refused: not a safe volrisk checkpoint, or a truncated one (only tensors and plain values "
            f"may be loaded; weights_only loading rejected it: {first}). Retrain the model "
            "(`volrisk train`) to write a new one",
            location=str(p),
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"not a volrisk checkpoint (expected format {CHECKPOINT_FORMAT!r})", location=str(p))
    if blob.get("version") != CHECKPOINT_VERSION:
        raise DataError(
            f"checkpoint version {blob.get('version')!r} is not supported (expected {CHECKPOINT_VERSION})",
            location=str(p),
        )
    weights, meta = blob.get("weights"), blob.get("meta")
    if not isinstance(weights, dict) or not isinstance(meta, dict):
        raise DataError("checkpoint lacks its 'weights' or 'meta' dict", location=str(p))
    if expected_features is not None:
        stored = list(meta.get("features") or [])
        wanted = list(expected_features)
        if stored != wanted:
            missing = [f for f in wanted if f not in stored]
            extra = [f for f in stored if f not in wanted]
            raise ConfigError(
                f"checkpoint {p} was trained on features {stored}, but {wanted} were requested "
                f"(missing from the checkpoint: {missing}; not requested: {extra}"
                + ("; same names in another order" if not missing and not extra else "")
                + "). Retrain the model for this feature set."
            )
    return weights, meta


@runtime_checkable
class Checkpointable(Protocol):
    """A forecaster whose fitted state is torch weights plus plain metadata (the torch models)."""

    def input_names(self) -> list[str]: ...

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]: ...

    def restore_checkpoint(self, weights: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Any: ...


# ------------------------------------------------------------------------------------------ metrics
def volatility_metrics(
    actual: np.ndarray, forecast: np.ndarray, naive: np.ndarray | None = None
) -> dict[str, float | int | None]:
    """QLIKE and MSE on the variance scale (Patton 2011), and R² against a naive forecast.

    ``qlike = mean(RV/f - log(RV/f) - 1)``; ``mse = mean((RV - f)^2)``; ``r2_vs_naive = 1 -
    SSE(f) / SSE(naive)`` (negative when the model loses). Pairs with a non-finite or non-positive
    member are left out; ``n`` counts the pairs used.
    """
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(f) & (a > 0) & (f > 0)
    nv = None if naive is None else np.asarray(naive, dtype=np.float64)
    if nv is not None:
        ok &= np.isfinite(nv) & (nv > 0)
    if not ok.any():
        return {"n": 0, "qlike": None, "mse": None, "r2_vs_naive": None}
    ratio = a[ok] / f[ok]
    out: dict[str, float | int | None] = {
        "n": int(ok.sum()),
        "qlike": float(np.mean(ratio - np.log(ratio) - 1.0)),
        "mse": float(np.mean((a[ok] - f[ok]) ** 2)),
        "r2_vs_naive": None,
    }
    if nv is not None:
        sse_naive = float(np.sum((a[ok] - nv[ok]) ** 2))
        out["r2_vs_naive"] = 1.0 - float(np.sum((a[ok] - f[ok]) ** 2)) / sse_naive if sse_naive > 0 else None
    return out


# ------------------------------------------------------------------------------------------ runs (pure)
def plain_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A model's stored config as constructor arguments (a ``model`` key, if any, is dropped)."""
    return {k: v for k, v in dict(config or {}).items() if k != "model"}


def build_model(model: str, config: Mapping[str, Any] | None) -> Any:
    """``get_model(model, **config)`` for a config read back from ``model_runs``.

    A model whose ``config()`` reports settings its constructor does not take (a class-level choice,
    e.g. HAR's ``jumps``) is rebuilt from the keys its constructor accepts; models that take
    ``**config`` get every key and report unknown ones themselves.
    """
    import inspect

    from tasks.models.base import get_model

    args = plain_config(config)
    try:
        return get_model(model, **args)
    except TypeError:
        params = inspect.signature(type(get_model(model))).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            raise
        names = {p.name for p in params}
        return get_model(model, **{k: v for k, v in args.items() if k in names})


def model_run_id(
    model: str,
    config: Mapping[str, Any],
    symbols: Sequence[str],
    train_start: date | None,
    train_end: date,
    data_version: str,
) -> str:
    """Deterministic run id ``<model>-<hash>`` of (model, config, symbols, window, data version).

    The same training inputs give the same id, so retraining upserts the same ``model_runs`` row and
    overwrites the same checkpoint instead of piling up copies.
    """
    from core.hashing import content_hash

    key = content_hash(model, dict(config), sorted(symbols), str(train_start), str(train_end), data_version)
    return f"{model}-{key}"


def _as_date(value: date | str, name: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{name} must be an ISO date (YYYY-MM-DD); got {value!r}") from None
    if not isinstance(value, date):
        raise ConfigError(f"{name} must be a date or an ISO date string; got {value!r}")
    return value


def holdout_metrics(
    model_name: str,
    config: Mapping[str, Any],
    data: Any,
    train_end: date,
    val_fraction: float = 0.15,
) -> dict[str, Any]:
    """Validation metrics of a registry model on the last ``val_fraction`` of its training window.

    A copy of the model is fitted on the sessions before the hold-out tail only and forecasts each
    tail session one step ahead; the tail's realized RV scores it (QLIKE, MSE on the variance scale,
    R² against the naive last-RV forecast). The tail never enters that fit, whatever the model does
    internally (the torch models' own early-stopping split lies inside the shortened window).

    Parameters
    ----------
    model_name : str
        Registry name.
    config : Mapping[str, Any]
        Its configuration.
    data : ModelData
        Data through ``train_end`` (later rows are ignored).
    train_end : date
        Last session of the training window.
    val_fraction : float
        Share of the window's sessions in the hold-out tail (0 skips the measurement).

    Returns
    -------
    dict
        ``holdout_start``, ``holdout_end``, ``n``, ``qlike``, ``mse``, ``r2_vs_naive`` (or only
        ``holdout: "none"``).
    """
    import polars as pl

    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, int | float)
        or not 0 <= val_fraction < 0.9
    ):
        raise ConfigError(f"val_fraction must be a number in [0, 0.9); got {val_fraction!r}")
    if val_fraction == 0:
        return {"holdout": "none"}
    feats = data.features.filter(pl.col("session_date") <= train_end)
    sessions = feats["session_date"].unique().sort()
    n_tail = max(int(len(sessions) * val_fraction), 2)
    if len(sessions) - n_tail < 2:
        raise DataError(f"training window of {len(sessions)} sessions is too short for a hold-out tail")
    cut = sessions[len(sessions) - n_tail - 1]
    model = build_model(model_name, config).fit(data.upto(cut), cut)
    origins = sessions.filter(sessions >= cut)[:-1].to_list()
    pred = model.predict(data.upto(train_end), origins, horizon=1)
    realized = feats.select(
        "symbol", pl.col("session_date").alias("target"), pl.col("rv").alias("_actual"), "low_coverage"
    )
    naive = feats.select("symbol", pl.col("session_date").alias("origin"), pl.col("rv_d").alias("_naive"))
    scored = (
        pred.join(realized, on=["symbol", "target"], how="inner")
        .join(naive, on=["symbol", "origin"], how="left")
        .filter(~pl.col("low_coverage"))
    )
    metrics = volatility_metrics(
        scored["_actual"].to_numpy(), scored["rv"].to_numpy(), scored["_naive"].to_numpy()
    )
    return {"holdout_start": str(origins[0]), "holdout_end": str(train_end), **metrics}


def load_model_data(
    con: Any,
    model: Any,
    symbols: Sequence[str],
    start: date | None,
    end: date,
    events_csv: str | None = None,
) -> Any:
    """The :class:`~tasks.models.base.ModelData` a model needs, read from the warehouse.

    Features always; cross-asset rows when the model's config asks for them (``cross_asset``); the
    events of ``events_csv`` (default: :func:`tasks.events.default_event_calendar`, the shipped FOMC
    dates plus a ForexFactory export under the data roots) when the model has ``use_events``; the
    ensemble always gets the cross-asset rows (its ``corr`` regime feature).
    """
    from tasks.models.base import ModelData
    from warehouse.features import read_cross_asset, read_features

    feats = read_features(con, list(symbols), start, end)
    if feats.height == 0:
        raise DataError(
            f"no features_daily rows for {list(symbols)} in {start}..{end}; run `volrisk features` first"
        )
    cross = None
    cfg = getattr(model, "cfg", None)
    if getattr(cfg, "cross_asset", False):
        cross = read_cross_asset(con, list(symbols), start, end)
    events = None
    if getattr(model, "use_events", False):
        from tasks.events import default_event_calendar, read_events_csv

        events = read_events_csv(Path(events_csv)) if events_csv else default_event_calendar()
    elif getattr(model, "name", "") == "ensemble":
        from warehouse.features import read_cross_asset as _read_cross

        cross = _read_cross(con, list(symbols), start, end, any_partner=True)  # its `corr` feature
    return ModelData(features=feats, cross_asset=cross, events=events)


def _models_dir(models_dir: str | None) -> Path:
    if models_dir:
        return Path(models_dir)
    from tasks.config import get_settings

    return get_settings().home / "models"


def train_and_record(
    warehouse_path: str,
    model: str,
    symbols: Sequence[str],
    train_end: date | str,
    config: Mapping[str, Any] | None,
    data_version: str,
    train_start: date | str | None = None,
    val_fraction: float = 0.15,
    models_dir: str | None = None,
    progress: Callable[[EpochStats], None] | None = None,
) -> dict[str, Any]:
    """What ``train_model`` does, without Prefect (the CLI calls it with a progress bar).

    Reads the features of ``symbols`` in the window, measures the model on a hold-out tail
    (:func:`holdout_metrics`), fits it on the whole window, saves a torch model's checkpoint and
    history plot under ``<models_dir>/<model_run>/`` and upserts the ``model_runs`` row.

    Returns
    -------
    dict
        ``model_run``, ``model``, ``metrics``, ``device``, ``wall_s``, ``checkpoint``.
    """
    from tasks.models.base import get_model
    from warehouse.db import session, writer
    from warehouse.models import write_model_run

    t0 = time.perf_counter()
    end = _as_date(train_end, "train_end")
    start = None if train_start is None else _as_date(train_start, "train_start")
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    if not names:
        raise ConfigError("symbols must name at least one symbol")
    fitted = get_model(model, **plain_config(config))
    cfg = plain_config(fitted.config())
    run_id = model_run_id(model, cfg, names, start, end, data_version)
    with session(warehouse_path, read_only=True) as con:
        data = load_model_data(con, fitted, names, start, end)
    metrics = holdout_metrics(model, cfg, data, end, val_fraction)
    if progress is not None and hasattr(fitted, "progress"):
        fitted.progress = progress
    fitted.fit(data, end)
    internal = getattr(fitted, "validation", None)
    if internal:
        metrics["early_stopping_split"] = dict(internal)
    checkpoint = None
    device = "cpu"
    if isinstance(fitted, Checkpointable):
        folder = _models_dir(models_dir) / run_id
        weights, meta = fitted.checkpoint_state()
        meta = {**meta, "data_version": data_version, "symbols_trained": names}
        checkpoint = str(save_checkpoint(folder / "model.pt", weights, meta))
        history = getattr(fitted, "history", None)
        if isinstance(history, History):
            plot_history(history, folder / "history.png", title=f"{model} {run_id}")
        device = str(getattr(fitted, "device", "cpu"))
    wall = time.perf_counter() - t0
    first = data.features["session_date"].min()
    with writer(warehouse_path) as con:
        write_model_run(
            con,
            {
                "model_run": run_id,
                "model": model,
                "symbols": names,
                "train_start": first,
                "train_end": end,
                "config": cfg,
                "data_version": data_version,
                "metrics": metrics,
                "device": device,
                "wall_s": wall,
                "checkpoint": checkpoint,
            },
        )
    return {
        "model_run": run_id,
        "model": model,
        "metrics": metrics,
        "device": device,
        "wall_s": wall,
        "checkpoint": checkpoint,
    }


def restore_run(warehouse_path: str, run: Mapping[str, Any]) -> Any:
    """Rebuild the fitted model of a ``model_runs`` row.

    A torch model loads its checkpoint (``weights_only``; its feature list must match the config's).
    Other models are deterministic functions of (config, training window, data), so they are refitted
    on the same window read from the warehouse.
    """
    from warehouse.db import session

    model = build_model(str(run["model"]), run.get("config"))
    if run.get("checkpoint"):
        if not isinstance(model, Checkpointable):
            raise ConfigError(
                f"model_run {run['model_run']!r} has a checkpoint but {run['model']!r} cannot load one"
            )
        weights, meta = load_checkpoint(str(run["checkpoint"]), expected_features=model.input_names())
        model.restore_checkpoint(weights, meta)
        return model
    end = run["train_end"]
    with session(warehouse_path, read_only=True) as con:
        data = load_model_data(con, model, list(run["symbols"]), run.get("train_start"), end)
    return model.fit(data, end)


def predict_and_record(
    warehouse_path: str,
    model_run: str,
    origin_dates: Sequence[date | str],
    horizon: int = 1,
    fold: int | None = None,
) -> dict[str, Any]:
    """What ``predict`` does, without Prefect: forecasts of a stored run written to ``predictions``."""
    from warehouse.db import session, writer
    from warehouse.models import read_model_run, write_predictions

    origins = sorted({_as_date(d, "origin_dates") for d in origin_dates})
    if not origins:
        raise ConfigError("origin_dates must hold at least one date")
    with session(warehouse_path, read_only=True) as con:
        run = read_model_run(con, model_run)
    if run is None:
        raise ConfigError(f"model_run {model_run!r} is not recorded in model_runs; train it first")
    model = restore_run(warehouse_path, run)
    with session(warehouse_path, read_only=True) as con:
        data = load_model_data(con, model, list(run["symbols"]), None, origins[-1])
    frame = model.predict(data, origins, horizon=horizon)
    with writer(warehouse_path) as con:
        rows = write_predictions(con, frame, model_run, fold=fold)
    return {"model_run": model_run, "rows": rows, "origins": len(origins)}


# ------------------------------------------------------------------------------------------ Prefect
from prefect import get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows.orchestration import TASK_DEFAULTS  # noqa: E402


@task(name="train-model", task_run_name="train-{model}-{train_end}", **TASK_DEFAULTS)
def train_model(
    warehouse_path: str,
    model: str,
    symbols: list[str],
    train_end: str,
    config: dict[str, Any] | None,
    data_version: str,
    train_start: str | None = None,
    val_fraction: float = 0.15,
    models_dir: str | None = None,
) -> dict[str, Any]:
    """Fit a registry model on ``symbols`` through ``train_end`` and record the run.

    Cached on its plain inputs, i.e. (model, config, symbols, training window, data version, where
    it writes) plus the task's source; nothing run-specific enters the key, so the same training
    inputs are trained once. Retried only on transient errors (a locked warehouse). Logs one line
    per epoch for torch models.
    """
    logger = get_run_logger()

    def log_epoch(st: EpochStats) -> None:
        val = "n/a" if st.val_loss is None else f"{st.val_loss:.5f}"
        logger.info(f"{model} epoch {st.epoch + 1}/{st.epochs}: train {st.train_loss:.5f} val {val}")

    return train_and_record(
        warehouse_path,
        model,
        symbols,
        train_end,
        config,
        data_version,
        train_start,
        val_fraction,
        models_dir,
        progress=log_epoch,
    )


@task(
    name="predict",
    task_run_name="predict-{model_run}",
    **{**TASK_DEFAULTS, "cache_policy": NO_CACHE, "persist_result": False},
)
def predict(
    warehouse_path: str, model_run: str, origin_dates: list[str], horizon: int = 1, fold: int | None = None
) -> dict[str, Any]:
    """Forecast ``origin_dates`` with a stored run and upsert them into ``predictions``.

    Not cached: it reads the warehouse's current features, and the upsert is idempotent.
    """
    return predict_and_record(warehouse_path, model_run, origin_dates, horizon, fold)
