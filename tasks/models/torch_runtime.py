"""Where and how torch runs: device choice, seeds and thread counts.

- :func:`pick_device`: ``"auto"`` takes CUDA, then MPS, then the CPU; an explicit device that is not
  available raises :class:`~core.errors.ConfigError`.
- :func:`set_seed` / :func:`seeded`: seeds (python, numpy, torch) and deterministic cuDNN settings. On
  the CPU the same data, config and seed give bit-identical weights and forecasts (same torch build and
  thread count). :func:`seeded` restores the caller's RNG state afterwards.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from core.errors import ConfigError

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
def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    return int(seed)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (every device) and make cuDNN deterministic.

    On the CPU, torch's kernels are deterministic for a given build and thread count, so the same
    data, config and seed give bit-identical results. On CUDA the cuDNN flags remove the usual
    sources of run-to-run noise; bit-identity is promised on the CPU only.
    """
    seed = check_seed(seed)
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


