"""Where the foundation models' weights live, and whether a foundation model can run here.

Weights are never downloaded: a user (a bank's model-risk team, say) copies approved snapshots of the
published repositories into one local folder, ``$VOLRISK_MODELS_DIR`` (default
``<VOLRISK_HOME>/weights``), under the repository's own name:

=================  ===========================================  ==============================
model              folders (each ``config.json`` + ``model.safetensors``)   published as
=================  ===========================================  ==============================
``chronos2``       ``chronos-2``                                ``amazon/chronos-2``
``kronos``,        ``Kronos-base`` and ``Kronos-Tokenizer-base``  ``NeoQuasar/Kronos-base``,
``kronos_event``                                                ``NeoQuasar/Kronos-Tokenizer-base``
=================  ===========================================  ==============================

A model's ``weights=PATH`` (``--set weights=PATH``, ``--config``) names another folder: an absolute
path, or one relative to the models folder (also ``tokenizer=PATH`` for Kronos).

This module imports neither torch nor the foundation packages (``volrisk models`` and the command-line
checks use it): a package's presence is checked with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError

#: The optional extra that installs the foundation packages.
EXTRA_HINT = "pip install -e '.[foundation]'"


@dataclass(frozen=True)
class FoundationSpec:
    """What one foundation model needs: import names, weight folders and their published names."""

    packages: tuple[str, ...]
    folders: dict[str, str]  # config key -> default folder name
    published: dict[str, str]  # config key -> published repository


FOUNDATION: dict[str, FoundationSpec] = {
    "chronos2": FoundationSpec(
        ("chronos", "transformers"), {"weights": "chronos-2"}, {"weights": "amazon/chronos-2"}
    ),
    "kronos": FoundationSpec(
        ("kronos_finance", "huggingface_hub", "safetensors"),
        {"weights": "Kronos-base", "tokenizer": "Kronos-Tokenizer-base"},
        {"weights": "NeoQuasar/Kronos-base", "tokenizer": "NeoQuasar/Kronos-Tokenizer-base"},
    ),
}
FOUNDATION["kronos_event"] = FOUNDATION["kronos"]


def models_dir() -> Path:
    """``$VOLRISK_MODELS_DIR``, else ``<VOLRISK_HOME>/weights`` (read at every call)."""
    raw = os.environ.get("VOLRISK_MODELS_DIR")
    if raw:
        return Path(raw).expanduser()
    from tasks.config import get_settings

    return get_settings().home / "weights"


def weights_path(model: str, key: str = "weights", value: str | os.PathLike[str] | None = None) -> Path:
    """The folder of ``model``'s ``key`` (``weights``/``tokenizer``): ``value`` or the default name.

    A relative ``value`` is taken under :func:`models_dir`.
    """
    spec = FOUNDATION[model]
    if value is not None and not isinstance(value, str | os.PathLike):
        raise ConfigError(f"{model}: {key} must be a folder path; got {value!r}")
    path = Path(value if value is not None else spec.folders[key]).expanduser()
    return path if path.is_absolute() else models_dir() / path


def missing_packages(model: str) -> list[str]:
    """Import names of ``model``'s packages that are not installed (nothing is imported)."""
    missing = []
    for name in FOUNDATION[model].packages:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def missing_weights_message(model: str, key: str, path: Path) -> str:
    """One line: where ``model``'s ``key`` folder was looked for and what to copy there."""
    published = FOUNDATION[model].published[key]
    return (
        f"{model}: no {key} at {path} (config.json + model.safetensors); copy the {published} snapshot "
        f"there, or set VOLRISK_MODELS_DIR / --set {key}=PATH"
    )


def check_weights_folder(model: str, key: str, path: Path) -> None:
    """Raise :class:`ConfigError` (:func:`missing_weights_message`) unless ``path`` holds a snapshot."""
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise ConfigError(missing_weights_message(model, key, path))


def availability(model: str, config: dict[str, object] | None = None) -> tuple[bool, str]:
    """Whether ``model`` can run here, and why not (``""`` when it can).

    Parameters
    ----------
    model : str
        A registry name; models that are not foundation models are always available.
    config : dict | None
        The model's settings (``weights``/``tokenizer`` override the default folders).
    """
    if model not in FOUNDATION:
        return True, ""
    missing = missing_packages(model)
    if missing:
        return False, f"needs the foundation extra ({', '.join(missing)} not installed): {EXTRA_HINT}"
    for key in FOUNDATION[model].folders:
        try:
            check_weights_folder(model, key, weights_path(model, key, (config or {}).get(key)))  # type: ignore[arg-type]
        except ConfigError as exc:
            return False, str(exc)
    return True, ""


def require_packages(model: str) -> None:
    """Raise :class:`ConfigError` naming the extra when ``model``'s packages are missing."""
    missing = missing_packages(model)
    if missing:
        raise ConfigError(
            f"model {model!r} needs the foundation extra ({', '.join(missing)} not installed): {EXTRA_HINT}"
        )


def runnable(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The models of ``names`` that can run here, and why each other one cannot.

    For "every model" defaults (``flows.evaluate_flow.default_models``): a foundation model without
    its extra or its weights is left out with the reason, instead of failing every fold.
    """
    keep: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        ok, why = availability(name)
        if ok:
            keep.append(name)
        else:
            skipped[name] = why
    return keep, skipped


_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


def _file_digest(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime): a weights file is hashed once per process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _DIGEST_LOCK:
        if key not in _DIGESTS:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
            _DIGESTS[key] = h.hexdigest()
        return _DIGESTS[key]


def fingerprint(folders: Sequence[Path]) -> str | None:
    """Content hash of the weight folders (``config.json``, every ``*.safetensors``); None if one is missing.

    Stored with every model run's configuration, so a run names the exact weights it used and a run
    replayed on other weights is refused.
    """
    h = hashlib.sha256()
    for folder in folders:
        files = [folder / "config.json", *sorted(folder.glob("*.safetensors"))]
        if len(files) < 2 or not files[0].is_file():
            return None
        for f in files:
            h.update(f"{f.name}:{_file_digest(f)};".encode())
    return h.hexdigest()[:16]
