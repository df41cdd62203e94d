"""Tiny, randomly initialised foundation models, built with the packages' own classes and saved as the
published snapshots are (``config.json`` + ``model.safetensors``), for the registry-wide tests and
``test_foundation.py``. Without the ``foundation`` extra the tests that need them are skipped.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tasks.models.foundation_weights import FOUNDATION, missing_packages

#: Chronos-2's published quantile levels.
CHRONOS_LEVELS = [0.01, 0.05, *[round(0.1 * i, 1) for i in range(1, 10)], 0.95, 0.99]
_DIR: dict[str, Path] = {}


def save_tiny_chronos2(path: Path, seed: int = 0) -> Path:
    """A 1-layer Chronos-2 (d_model 16) with random weights, saved with ``save_pretrained``."""
    import torch
    from chronos import Chronos2Model
    from chronos.chronos2.config import Chronos2CoreConfig

    chronos_config = {
        "context_length": 64, "input_patch_size": 4, "output_patch_size": 4, "input_patch_stride": 4,
        "quantiles": CHRONOS_LEVELS, "use_reg_token": True, "use_arcsinh": True, "max_output_patches": 4,
    }  # fmt: skip
    cfg = Chronos2CoreConfig(
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        dropout_rate=0.0,
        chronos_config=chronos_config,
    )
    cfg.architectures = ["Chronos2Model"]
    torch.manual_seed(seed)
    Chronos2Model(cfg).save_pretrained(path)
    return path


def tiny_kronos_modules(seed: int = 0, bits: int = 4) -> tuple[Any, Any]:
    """A tiny KronosTokenizer and Kronos (``bits`` + ``bits`` codes) with random weights."""
    import torch
    from kronos_finance._vendor.kronos_model import Kronos, KronosTokenizer

    torch.manual_seed(seed)
    drop = {"ffn_dropout_p": 0.0, "attn_dropout_p": 0.0, "resid_dropout_p": 0.0}
    tok = KronosTokenizer(
        d_in=6, d_model=16, n_heads=2, ff_dim=32, n_enc_layers=2, n_dec_layers=2, s1_bits=bits,
        s2_bits=bits, beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4, **drop,
    )  # fmt: skip
    net = Kronos(
        s1_bits=bits, s2_bits=bits, n_layers=1, d_model=16, n_heads=2, ff_dim=32, token_dropout_p=0.0,
        learn_te=True, **drop,
    )  # fmt: skip
    return tok, net


def save_tiny_kronos(root: Path, seed: int = 0) -> Path:
    """``Kronos-base`` and ``Kronos-Tokenizer-base`` under ``root``, saved with ``save_pretrained``."""
    tok, net = tiny_kronos_modules(seed)
    tok.save_pretrained(root / "Kronos-Tokenizer-base")
    net.save_pretrained(root / "Kronos-base")
    return root


def need_extra(model: str = "chronos2") -> None:
    """Skip the calling test when ``model``'s packages (the ``foundation`` extra) are not installed."""
    missing = missing_packages(model)
    if missing:
        pytest.skip(f"the foundation extra is not installed ({', '.join(missing)})")


def tiny_models_dir() -> Path:
    """A process-wide folder laid out as ``$VOLRISK_MODELS_DIR`` with every tiny model (built once)."""
    need_extra("chronos2")
    need_extra("kronos")
    if "root" not in _DIR:
        root = Path(tempfile.mkdtemp(prefix="volrisk-tiny-weights-"))
        atexit.register(shutil.rmtree, root, True)
        save_tiny_chronos2(root / FOUNDATION["chronos2"].folders["weights"])
        save_tiny_kronos(root)
        _DIR["root"] = root
    return _DIR["root"]


def tiny_config(name: str) -> dict[str, Any]:
    """Settings that point ``name`` at the tiny weights (absolute folders) and keep it fast."""
    root = tiny_models_dir()
    folders = {k: str(root / v) for k, v in FOUNDATION[name].folders.items()}
    small = {"context": 32, "device": "cpu", "threads": 1} | ({"samples": 8} if name != "chronos2" else {})
    return folders | small
