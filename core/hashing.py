"""Content hashing: the one way volrisk turns inputs and source files into short, stable keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import polars as pl

#: Characters kept of a sha256 hex digest: 64 bits, plenty for cache keys and run ids.
HASH_CHARS = 16


def content_hash(*parts: object) -> str:
    """Stable short hash of JSON-able parts (non-JSON values hash by ``str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:HASH_CHARS]


def files_hash(root: Path, paths: Iterable[Path | str]) -> str:
    """Short hash of the names and bytes of ``paths`` (relative to ``root``), in the order given.

    A path that is missing hashes by its name alone, so a deleted file still changes the key.
    """
    digest = hashlib.sha256()
    for rel in paths:
        path = root / rel
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(rel)
        digest.update(name.encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:HASH_CHARS]


def source_root() -> Path:
    """The folder that holds the ``core``, ``tasks``, ``warehouse`` and ``flows`` packages."""
    return Path(__file__).resolve().parent.parent


def frame_hash(frame: pl.DataFrame) -> str:
    """Short content hash of a frame's rows (its data version), independent of row order."""
    return content_hash(frame.height, int(frame.hash_rows(seed=0).sum()) if frame.height else 0)
