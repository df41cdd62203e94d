"""``chronos2``: Chronos-2 (Ansari et al. 2025, ``chronos-forecasting``), zero-shot on the log-RV history.

Weights come from a local folder only (:mod:`.foundation_weights`; default
``$VOLRISK_MODELS_DIR/chronos-2``, a copy of ``amazon/chronos-2``); the packages are the optional
``foundation`` extra and are imported only when the model is fitted.

Forecast, per (symbol, origin ``t``)
------------------------------------
The context is ``x = log(max(rv_d, 1e-12))`` of at most ``context`` sessions ending at ``t`` (missing
RV stays missing: Chronos-2 masks NaN). Chronos-2 returns quantiles ``L_k`` of ``log RV(t + h)`` at its
own levels ``u_k`` (``0.01, 0.05, 0.1, ..., 0.9, 0.95, 0.99`` for the published model), made monotone
by a running maximum.

Mapping to the prediction schema (documented, nothing tuned)
-----------------------------------------------------------
- The RV forecast is a discrete distribution: atom ``exp(L_k)`` with the mass Chronos itself gives a
  level, ``w_k = (u_{k+1} - u_{k-1}) / 2`` (``u_0 = 0``, ``u_{K+1} = 1``), normalised.
  ``rv = sum_k w_k exp(L_k)``, the predictive mean of RV.
- ``variance = c * rv`` with ``c = mean(r^2) / mean(RV)`` on the training sessions (as the variance
  baselines; :mod:`.foundation_base`).
- Returns: ``r = sqrt(c * RV) * z``, ``z ~ N(0, 1)`` independent of RV, zero mean (like the variance
  baselines, the model does not forecast direction: the strategy stays flat). The return quantiles are
  those of this Gaussian scale mixture, ``F(x) = sum_k w_k Phi(x / sqrt(c exp(L_k)))``, solved by
  bisection; the mixture is symmetric, so ``q50 = 0`` and ``q_{1-p} = -q_p``. Model uncertainty about
  RV therefore widens the tails, as it should. The family is ``quantile`` (ES is interpolated from the
  quantiles, not from a Gaussian formula).
- ``horizon = h`` asks Chronos-2 for ``h`` steps and keeps the last one.

A checkpoint whose ``config.json`` is not a Chronos-2 one (no ``chronos_config``, another
architecture), or whose weights do not fit that architecture exactly (missing, unexpected or
mis-shaped tensors), is refused with a :class:`~core.errors.ConfigError` naming the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.special import ndtr

from core.errors import ConfigError
from core.schema import QUANTILES
from tasks.models.base import ModelData, register
from tasks.models.foundation_base import Forecast, FoundationForecaster, SymbolState, cached_load
from tasks.models.frames import RV_FLOOR

#: The only architecture accepted.
ARCHITECTURE = "Chronos2Model"


def offline_hub() -> None:
    """Tell huggingface_hub and transformers never to reach the network (set before they load)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def quantile_masses(levels: np.ndarray) -> np.ndarray:
    """Chronos-2's probability mass per quantile level: ``(u_{k+1} - u_{k-1}) / 2``, normalised."""
    bounds = np.concatenate([[0.0], levels, [1.0]])
    mass = (bounds[2:] - bounds[:-2]) / 2.0
    return np.asarray(mass / mass.sum())


def mixture_quantiles(scales: np.ndarray, weights: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Quantiles of the zero-mean Gaussian scale mixture ``sum_k w_k N(0, scales[:, k]^2)``.

    Parameters
    ----------
    scales : np.ndarray
        Shape ``(n, K)``, positive standard deviations per row and atom.
    weights : np.ndarray
        Shape ``(K,)``, summing to one.
    levels : tuple[float, ...]
        Probability levels (each in (0, 1)).

    Returns
    -------
    np.ndarray
        Shape ``(n, len(levels))``; ``q(1 - p) = -q(p)`` and ``q(0.5) = 0`` by symmetry.
    """
    out = np.zeros((scales.shape[0], len(levels)))
    for j, p in enumerate(levels):
        upper = max(p, 1.0 - p)
        if upper == 0.5:
            continue
        lo, hi = np.zeros(scales.shape[0]), 10.0 * scales.max(axis=1)
        for _ in range(80):  # bisection on F(x) = upper; 80 halvings reach float resolution
            mid = 0.5 * (lo + hi)
            below = (ndtr(mid[:, None] / scales) @ weights) < upper
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        x = 0.5 * (lo + hi)
        out[:, j] = x if p > 0.5 else -x
    return out


def _read_config(path: Path) -> dict[str, Any]:
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"chronos2: {path / 'config.json'} is not readable JSON ({exc})") from None
    archs = cfg.get("architectures") if isinstance(cfg, dict) else None
    if not isinstance(cfg, dict) or "chronos_config" not in cfg or archs != [ARCHITECTURE]:
        raise ConfigError(
            f"chronos2: {path} is not a Chronos-2 checkpoint (config.json architectures={archs!r}, "
            f"chronos_config {'present' if isinstance(cfg, dict) and 'chronos_config' in cfg else 'absent'}; "
            f"expected [{ARCHITECTURE!r}] with a chronos_config, as in amazon/chronos-2)"
        )
    return cfg


def load_chronos2(path: Path, device: Any) -> Any:
    """A ``Chronos2Pipeline`` from the local folder ``path``, weights checked tensor by tensor.

    Raises
    ------
    ConfigError
        Not a Chronos-2 folder, or weights that do not match its architecture exactly.
    """
    offline_hub()
    _read_config(path)
    from chronos import Chronos2Model, Chronos2Pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, info = Chronos2Model.from_pretrained(path, output_loading_info=True, local_files_only=True)
    except (OSError, RuntimeError, ValueError, TypeError, KeyError, AssertionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"chronos2: the weights in {path} do not match the Chronos-2 architecture of its config.json "
            f"({first}); copy the complete amazon/chronos-2 snapshot"
        ) from None
    bad = {k: sorted(info.get(k) or [])[:3] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(bad.values()):
        raise ConfigError(
            f"chronos2: the weights in {path} do not match the Chronos-2 architecture of its config.json "
            f"(missing {bad['missing_keys']}, unexpected {bad['unexpected_keys']}, "
            f"mis-shaped {bad['mismatched_keys']}); copy the complete amazon/chronos-2 snapshot"
        )
    model = model.to(device).eval()
    return Chronos2Pipeline(model=model)


@register("chronos2")
class Chronos2(FoundationForecaster):
    """Chronos-2 on log RV (module docstring): ``weights``, ``context``, ``device``, ``batch_size``."""

    name = "chronos2"

    def _load(self) -> Any:
        from tasks.models.torch_runtime import pick_device

        path = self.folder()
        device = pick_device(self.device)
        return cached_load(
            ("chronos2", str(path.resolve()), str(device)), lambda: load_chronos2(path, device)
        )

    def _forecast(
        self,
        backend: Any,
        state: SymbolState,
        frame: pl.DataFrame,
        positions: np.ndarray,
        horizon: int,
        data: ModelData,
    ) -> Forecast:
        import torch

        rv = frame["rv_d"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        with np.errstate(invalid="ignore"):
            log_rv = np.where(np.isfinite(rv), np.log(np.maximum(rv, RV_FLOOR)), np.nan)
        contexts = [torch.tensor(w, dtype=torch.float32) for w in self.windows(log_rv, positions)]
        with torch.inference_mode():
            raw = backend.predict(contexts, prediction_length=horizon, batch_size=self.batch_size)
        levels = np.asarray(backend.quantiles, dtype=float)
        q_log = np.stack([r[0, :, horizon - 1].double().cpu().numpy() for r in raw])  # (n, K)
        q_log = np.maximum.accumulate(q_log, axis=1)
        weights = quantile_masses(levels)
        atoms = np.maximum(np.exp(q_log), RV_FLOOR)
        rv_mean = atoms @ weights
        quantiles = mixture_quantiles(np.sqrt(state.var_scale * atoms), weights, QUANTILES)
        params = {"var_scale": state.var_scale, "mapping": "gaussian scale mixture over log-RV quantiles"}
        return Forecast(
            variance=state.var_scale * rv_mean,
            rv=rv_mean,
            mean=np.zeros(positions.size),
            quantiles=quantiles,
            family="quantile",
            params=params,
        )
