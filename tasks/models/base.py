"""The one forecaster interface, its prediction schema, and the model registry.

Every model forecasts, per (symbol, origin session t, horizon h), the distribution of the return of
session t+h: a variance, its realized-variance forecast, a mean and the return quantiles in
:data:`QUANTILES`. VaR, ES, envelopes and strategy signals are all derived from that one output,
so every evaluation serves every model.

Time rules (DESIGN.md): ``fit(data, train_end)`` may use only sessions ``<= train_end``, and a
training target must itself be known by then; ``predict(data, origins)`` may use, for origin ``t``,
only sessions ``<= t``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, Self, runtime_checkable

import polars as pl

from core.errors import ConfigError
from tasks.model_catalog import MODEL_MODULES


@dataclass(frozen=True)
class ModelData:
    """What a model may read, all sorted by (symbol, session_date).

    Attributes
    ----------
    features : pl.DataFrame
        ``features_daily`` rows (see ``tasks.features.DAILY_FEATURES_SCHEMA``).
    cross_asset : pl.DataFrame | None
        ``cross_asset_daily`` rows, for models with cross-asset inputs.
    events : pl.DataFrame | None
        Economic events (``tasks.events``), for event-conditioned models.
    bars : pl.DataFrame | None
        Intraday bars, for minute-mode models.
    predictions : pl.DataFrame | None
        Out-of-fold predictions of other models (:data:`PREDICTION_SCHEMA` plus ``fold``), for the
        stacked ``ensemble``; a row is usable at its ``origin``.
    calendars : Mapping[str, str] | None
        Session calendar of each symbol (the instrument registry's). Targets past the last row of the
        data are dated from it; every warehouse read sets it, so targets are never guessed there.
    """

    features: pl.DataFrame
    cross_asset: pl.DataFrame | None = None
    events: pl.DataFrame | None = None
    bars: pl.DataFrame | None = None
    predictions: pl.DataFrame | None = None
    calendars: Mapping[str, str] | None = None

    def calendar_of(self, symbol: str) -> str | None:
        """The registered session calendar of ``symbol`` (None when the data carries none)."""
        return None if self.calendars is None else self.calendars.get(symbol)

    def upto(self, last: date) -> ModelData:
        """The same data cut to sessions ``<= last`` (bars: those ending by the session's end)."""
        feats = self.features.filter(pl.col("session_date") <= last)
        cross = None if self.cross_asset is None else self.cross_asset.filter(pl.col("session_date") <= last)
        bars = self.bars
        if bars is not None and feats.height:
            cutoff = feats["session_end"].max()
            bars = bars.filter(pl.col("ts") < cutoff)
        events = self.events
        preds = None if self.predictions is None else self.predictions.filter(pl.col("origin") <= last)
        return ModelData(feats, cross, events, bars, preds, self.calendars)


@runtime_checkable
class Forecaster(Protocol):
    """The interface every registry entry implements."""

    name: str

    def fit(self, data: ModelData, train_end: date) -> Self:
        """Fit on sessions ``<= train_end`` (targets included) and return ``self``."""
        ...

    def predict(self, data: ModelData, origins: Sequence[date], horizon: int = 1) -> pl.DataFrame:
        """One row per (symbol, origin) in :data:`PREDICTION_SCHEMA`, using sessions ``<= origin``."""
        ...

    def config(self) -> dict[str, Any]:
        """JSON-able configuration (hashed into cache keys and stored with checkpoints)."""
        ...


@runtime_checkable
class MinuteForecaster(Protocol):
    """The minute-mode interface: one chronological array of one-minute log returns, oldest first.

    ``forecast(returns)[p]`` is the variance forecast of ``returns[p]`` from returns before ``p`` only
    (NaN where there is too little history; one extra last entry for the next, unseen return), so a
    hold-out evaluation is a plain slice. ``family_fit`` is the fitted standardized-return
    distribution that turns a variance into quantiles, VaR and ES.
    """

    name: str
    family_fit: Any

    def fit(self, returns: Any) -> Self:
        """Fit on ``returns`` (every one of them is training data)."""
        ...

    def forecast(self, returns: Any) -> Any:
        """Variance forecasts aligned with ``returns`` (see the class docstring)."""
        ...

    def config(self) -> dict[str, Any]:
        """JSON-able configuration."""
        ...


_REGISTRY: dict[str, Callable[..., Forecaster]] = {}


def register(name: str) -> Callable[[Callable[..., Forecaster]], Callable[..., Forecaster]]:
    """Class decorator: make a forecaster available as ``get_model(name)``."""

    def deco(factory: Callable[..., Forecaster]) -> Callable[..., Forecaster]:
        if name in _REGISTRY:
            raise RuntimeError(f"model name {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def get_model(name: str, **config: Any) -> Forecaster:
    """A new, unfitted forecaster by registry name, with ``config`` overriding its defaults.

    A built-in model's module is imported the first time the model is asked for
    (:data:`tasks.model_catalog.MODEL_MODULES`), so naming one model never loads the others.
    """
    if name not in _REGISTRY and name in MODEL_MODULES:
        importlib.import_module(MODEL_MODULES[name])
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; registered: {model_names()}")
    return _REGISTRY[name](**config)


def model_names() -> list[str]:
    """Every registered model name (the built-in ones are imported first)."""
    for module in sorted(set(MODEL_MODULES.values())):
        importlib.import_module(module)
    return sorted(_REGISTRY)
