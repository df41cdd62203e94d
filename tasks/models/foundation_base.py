"""What the zero-shot foundation forecasters (``chronos2``, ``kronos``, ``kronos_event``) share.

A foundation model is not trained here: ``fit(data, train_end)`` loads the local weights (so a missing
or wrong checkpoint answers at once) and estimates, per symbol and on sessions ``<= train_end`` only,
the few numbers that map its raw forecast onto the prediction schema: the variance scale
``c = mean(r^2) / mean(RV)`` (close-to-close return variance per unit of realized variance, as the
variance baselines) and whatever the subclass adds (``kronos_event``'s event effects).

``predict(data, origins, horizon)`` builds, per (symbol, origin ``t``), a context of at most
``context`` rows ending at ``t`` (never a row after it: the frame handed to the subclass stops at the
last requested origin, and each window at its own origin), starting no earlier than the first training
session, and asks the subclass for the return variance, RV, mean and return quantiles of session
``t + horizon``. Targets are dated as every daily model dates them (:func:`.frames.target_sessions`).

Checkpoints (:class:`~.checkpoint.Checkpointable`): the "weights" of a fitted adapter are the
per-symbol mapping numbers only (plain metadata, no tensors); the foundation weights stay in their
folder, named by the content hash the configuration carries. As torch models, the evaluation runs
their folds under the torch lock (one torch user at a time in a thread runner), so Kronos's sampling
is reproducible.

Devices follow the other torch models (:func:`.torch_runtime.pick_device`): ``auto`` takes CUDA, then
MPS, then the CPU; an explicit device that is missing is a :class:`~core.errors.ConfigError`.
Loaded weights are kept per process (keyed on folder and device), so the folds of one evaluation load
them once.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from tasks.models.base import ModelData
from tasks.models.families import fit_variance_scale
from tasks.models.foundation_weights import (
    FOUNDATION,
    check_weights_folder,
    fingerprint,
    require_packages,
    weights_path,
)
from tasks.models.frames import (
    BASE_COLUMNS,
    check_calendar,
    check_date,
    check_horizon,
    check_origins,
    concat_predictions,
    daily_returns,
    origin_positions,
    prediction_frame,
    require_columns,
    split_symbols,
    symbol_calendar,
    target_sessions,
)

_CACHE: dict[tuple[Any, ...], Any] = {}
_CACHE_LOCK = threading.Lock()


def cached_load(key: tuple[Any, ...], loader: Callable[[], Any]) -> Any:
    """``loader()`` once per process and ``key`` (weights folder(s) and device)."""
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = loader()
        return _CACHE[key]


def check_positive_int(value: object, name: str, low: int = 1) -> int:
    """``value`` as an int ``>= low``; else :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


@dataclass
class SymbolState:
    """Per-symbol fitted numbers: first training session, variance scale, subclass extras."""

    first: date
    var_scale: float
    n_train: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Forecast:
    """One symbol's forecasts at its origins, in schema units (return variance, RV, mean, quantiles)."""

    variance: np.ndarray
    rv: np.ndarray
    mean: np.ndarray
    quantiles: np.ndarray
    family: str
    params: dict[str, Any]


class FoundationForecaster(ABC):
    """Base of the foundation adapters (see the module docstring).

    Parameters
    ----------
    weights : str | None
        Weights folder (absolute, or under ``$VOLRISK_MODELS_DIR``); None: the default folder.
    context : int
        Most sessions of history per forecast.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    batch_size : int
        Forecast windows per forward pass.
    calendar : str | Mapping[str, str] | None
        Session calendar used only to date targets past the data's end.
    threads : int | None
        CPU threads for torch while forecasting (None: torch's default; 1 is fastest for tiny models
        on a shared machine).
    weights_fingerprint : str | None
        Content hash the weights must have (:func:`~.foundation_weights.fingerprint`); a stored run's
        configuration carries it, so replaying the run on other weights is refused. None: any.
    """

    name: str = "foundation"
    #: Feature columns the model reads.
    columns: ClassVar[tuple[str, ...]] = BASE_COLUMNS
    #: Fewest training sessions per symbol (for the variance scale).
    min_train: ClassVar[int] = 30

    def __init__(
        self,
        weights: str | None = None,
        context: int = 256,
        device: str = "auto",
        batch_size: int = 64,
        calendar: str | Mapping[str, str] | None = None,
        threads: int | None = None,
        weights_fingerprint: str | None = None,
    ) -> None:
        weights_path(self.name, "weights", weights)  # type check only; the folder is read at fit
        self.threads = None if threads is None else check_positive_int(threads, "threads")
        if weights_fingerprint is not None and not isinstance(weights_fingerprint, str):
            raise ConfigError(f"weights_fingerprint must be a string or None; got {weights_fingerprint!r}")
        self.expected_fingerprint = weights_fingerprint
        self.weights = weights
        self.context = check_positive_int(context, "context", 2)
        if not isinstance(device, str):
            raise ConfigError(f"device must be a string such as 'auto' or 'cpu'; got {device!r}")
        self.device = device
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.calendar = check_calendar(calendar)
        self._states: dict[str, SymbolState] = {}
        self._train_end: date | None = None

    # -- subclass interface ------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        """Model-specific settings for :meth:`config`."""
        return {}

    @abstractmethod
    def _load(self) -> Any:
        """Load (or take from the process cache) the weights; raise ``ConfigError``/``DataError``."""

    def _fit_extra(self, symbol: str, frame: pl.DataFrame, data: ModelData) -> dict[str, Any]:
        """Per-symbol extras estimated on the training rows ``frame`` (default: none)."""
        return {}

    @abstractmethod
    def _forecast(
        self,
        backend: Any,
        state: SymbolState,
        frame: pl.DataFrame,
        positions: np.ndarray,
        horizon: int,
        data: ModelData,
    ) -> Forecast:
        """Forecasts of the sessions ``horizon`` rows after ``positions``, each from rows ``<= position``."""

    # -- Forecaster --------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """JSON-able settings: the weights folder as given and the content hash of what it holds."""
        return {
            "weights": self.weights,
            "context": self.context,
            "device": self.device,
            "batch_size": self.batch_size,
            "calendar": self.calendar,
            "threads": self.threads,
            **self._settings(),
            "weights_fingerprint": self.expected_fingerprint or self.weights_fingerprint(),
        }

    def weight_folders(self) -> list[Path]:
        """Every weights folder of this model (``weights``, and ``tokenizer`` for Kronos)."""
        return [
            weights_path(self.name, key, self.weights if key == "weights" else getattr(self, key))
            for key in FOUNDATION[self.name].folders
        ]

    def weights_fingerprint(self) -> str | None:
        """The content hash of the weights found now (None when a folder is missing)."""
        return fingerprint(self.weight_folders())

    def _check_fingerprint(self) -> None:
        found = self.weights_fingerprint()
        if self.expected_fingerprint is not None and found != self.expected_fingerprint:
            raise ConfigError(
                f"{self.name}: the weights in {', '.join(map(str, self.weight_folders()))} have content "
                f"hash {found}, not the {self.expected_fingerprint} this configuration was made with; "
                "restore those weights or drop weights_fingerprint to use the new ones"
            )

    def folder(self, key: str = "weights") -> Any:
        """The checked weights folder of ``key`` (a :class:`ConfigError` with where to copy them)."""
        require_packages(self.name)
        value = self.weights if key == "weights" else getattr(self, key)
        path = weights_path(self.name, key, value)
        check_weights_folder(self.name, key, path)
        return path

    def fit(self, data: ModelData, train_end: date) -> Self:
        """Load the weights and estimate the per-symbol mapping numbers on sessions ``<= train_end``."""
        require_packages(self.name)
        train_end = check_date(train_end, "train_end")
        require_columns(data.features, self.columns, self.name)
        train = data.features.filter(pl.col("session_date") <= train_end).select(self.columns)
        if train.height == 0:
            raise DataError(f"model {self.name!r}: no feature rows on or before train_end {train_end}")
        self._load()
        self._check_fingerprint()
        states: dict[str, SymbolState] = {}
        for symbol, frame in split_symbols(train).items():
            if frame.height < self.min_train:
                raise DataError(
                    f"model {self.name!r} needs at least {self.min_train} training sessions for "
                    f"{symbol!r}; got {frame.height}"
                )
            ret = daily_returns(frame)
            scale = fit_variance_scale(ret, frame["rv_d"].cast(pl.Float64).to_numpy())
            extra = self._fit_extra(symbol, frame, data)
            states[symbol] = SymbolState(frame["session_date"][0], scale, frame.height, extra)
        self._states, self._train_end = states, train_end
        return self

    def predict(self, data: ModelData, origins: Sequence[date], horizon: int = 1) -> pl.DataFrame:
        """One row per (fitted symbol, origin session) in ``PREDICTION_SCHEMA``, from rows ``<= origin``."""
        from tasks.models.torch_runtime import torch_threads

        if self._train_end is None:
            raise ConfigError(f"model {self.name!r} is not fitted: call fit(data, train_end) first")
        horizon = check_horizon(horizon)
        wanted = check_origins(origins)
        require_columns(data.features, self.columns, self.name)
        backend = self._load()
        out: list[pl.DataFrame] = []
        for symbol, full in split_symbols(data.features.select(self.columns)).items():
            state = self._states.get(symbol)
            if state is None:
                continue
            full = full.filter(pl.col("session_date") >= state.first)
            pos, used = origin_positions(full["session_date"], wanted)
            if not pos.size:
                continue
            frame = full.head(int(pos.max()) + 1)  # nothing after the last origin is passed on
            with torch_threads(self.threads):
                fc = self._forecast(backend, state, frame, pos, horizon, data)
            calendar = symbol_calendar(self.calendar, symbol) or data.calendar_of(symbol)
            out.append(
                prediction_frame(
                    model=self.name,
                    symbol=symbol,
                    origins=used,
                    targets=target_sessions(full["session_date"], pos, horizon, calendar),
                    horizon=horizon,
                    variance=fc.variance,
                    rv=fc.rv,
                    mean=fc.mean,
                    quantiles=fc.quantiles,
                    family=fc.family,
                    params=fc.params,
                )
            )
        return concat_predictions(out)

    # -- Checkpointable ---------------------------------------------------------------------------

    def input_names(self) -> list[str]:
        """The feature columns the model reads."""
        return list(self.columns)

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """No tensors (the weights stay in their folder) and the fitted per-symbol numbers as metadata."""
        if self._train_end is None:
            raise ConfigError(f"model {self.name!r} is not fitted: nothing to checkpoint")
        states = {
            s: {
                "first": st.first.isoformat(),
                "var_scale": st.var_scale,
                "n_train": st.n_train,
                "extra": st.extra,
            }
            for s, st in self._states.items()
        }
        meta = {
            "features": self.input_names(),
            "config": self.config(),
            "train_end": self._train_end.isoformat(),
        }
        return {}, meta | {"states": states}

    def restore_checkpoint(self, weights: Mapping[str, Any], meta: Mapping[str, Any]) -> Self:
        """Restore what :meth:`checkpoint_state` gave; the weights folder must still hold the same weights."""
        if list(meta.get("features") or []) != self.input_names():
            raise ConfigError(f"checkpoint features {meta.get('features')} differ from {self.input_names()}")
        self._load()
        self._check_fingerprint()
        self._states = {
            str(s): SymbolState(
                date.fromisoformat(v["first"]),
                float(v["var_scale"]),
                int(v["n_train"]),
                dict(v.get("extra") or {}),
            )
            for s, v in dict(meta.get("states") or {}).items()
        }
        self._train_end = date.fromisoformat(str(meta["train_end"]))
        return self

    def windows(self, values: np.ndarray, positions: np.ndarray) -> list[np.ndarray]:
        """The context of each position: at most :attr:`context` values ending at (and including) it."""
        return [values[max(0, int(p) + 1 - self.context) : int(p) + 1] for p in positions]

    @property
    def published(self) -> dict[str, str]:
        """The published repositories of this model's weights."""
        return dict(FOUNDATION[self.name].published)
