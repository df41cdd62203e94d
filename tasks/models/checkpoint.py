"""Model checkpoints: weights plus plain metadata.

:func:`save_checkpoint` / :func:`load_checkpoint`: weights plus plain metadata (config, feature
list, scaler state, data version, code version), read back with ``torch.load(weights_only=True)``,
so a checkpoint that carries code (any pickled object beyond tensors and plain containers) is
refused before anything in it runs.
"""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import subprocess
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from core.errors import ConfigError, DataError

CHECKPOINT_FORMAT = "volrisk-checkpoint"
CHECKPOINT_VERSION = 1


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


