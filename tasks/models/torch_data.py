"""Training data for torch models: chronological splits, scalers and device-resident batches.

- :func:`chronological_split`: the validation split is the LAST ``val_fraction`` of the distinct
  sample dates, optionally after a ``gap`` of dropped dates (``horizon - 1`` keeps a multi-step training
  target out of the validation targets). Never random: shuffling happens only inside the training
  split, batch by batch.
- :class:`Scaler`: per-feature mean/std fitted on training rows only; its state is plain lists.
- :class:`TensorXY` / :class:`WindowXY`: data that lives ON THE DEVICE; a batch is ``x[idx]`` (or,
  for windows, one gather ``series[ends[idx, None] - offsets]``), so no per-sample ``__getitem__`` or
  ``DataLoader`` runs in the hot loop. Host arrays go to CUDA through pinned memory with
  ``non_blocking=True``; everything is then prefetched, i.e. resident, for the whole fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from core.errors import ConfigError, DataError
from tasks.models.torch_runtime import to_device


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


