"""Shared fixtures of the model tests: real daily features, the registry sweep, garbage injection.

Every test that takes a ``model_name`` argument runs once per registry entry (``model_names()``), so a
new model is covered by the contract and no-look-ahead tests the moment it is registered. Give it a
small configuration in ``model_helpers.FAST``; list it in ``model_helpers.SLOW`` only if it
still takes over 20 s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from model_helpers import N_ORIGINS, SLOW, TRAIN_END, make_model
from repo_paths import REPO

from tasks.features import build_daily_features
from tasks.models.base import Forecaster, ModelData, model_names
from tasks.sources.files import read_bars_file

SAMPLES = REPO / "data" / "samples"
EVENTS = REPO / "data" / "events"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``model_name`` over every registry entry."""
    if "model_name" in metafunc.fixturenames:
        params = [
            pytest.param(name, id=name, marks=[pytest.mark.slow] if name in SLOW else [])
            for name in model_names()
        ]
        metafunc.parametrize("model_name", params)


def _daily(path: Path, symbol: str, calendar: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    bars = read_bars_file(path, symbol=symbol).bars
    return bars, build_daily_features(bars, calendar, "1h")


@pytest.fixture(scope="session")
def btc_hourly() -> tuple[pl.DataFrame, pl.DataFrame]:
    """BTC/USDT hourly bars (Binance 2017-2024) and their ~2,440 daily feature rows."""
    return _daily(SAMPLES / "BTC_USDT-1h_binance_2017_2024.csv", "BTC-USDT", "24x7")


@pytest.fixture(scope="session")
def btc_daily(btc_hourly: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    """BTC/USDT daily features (UTC-day sessions)."""
    return btc_hourly[1]


@pytest.fixture(scope="session")
def eurusd_daily() -> pl.DataFrame:
    """EUR/USD daily features (17:00 New York roll), 2007-2018."""
    return _daily(SAMPLES / "eurusd_oanda_hour.csv.gz", "EUR-USD", "fx")[1]


@pytest.fixture(scope="session")
def spy_daily() -> pl.DataFrame:
    """SPY daily features (XNYS regular hours), 1998-2021."""
    return _daily(SAMPLES / "spy_hour_1998_2021.csv", "SPY", "XNYS")[1]


@pytest.fixture(scope="session")
def fomc_events() -> pl.DataFrame | None:
    """The shipped FOMC decision dates as an events frame (None if the loader or file is absent)."""
    path = EVENTS / "fomc_decision_dates_2015_2026.csv"
    try:
        from tasks.events import read_fomc_dates
    except ImportError:
        return None
    return read_fomc_dates(path) if path.exists() else None


@pytest.fixture(scope="session")
def btc_data(btc_hourly: tuple[pl.DataFrame, pl.DataFrame], fomc_events: pl.DataFrame | None) -> ModelData:
    """BTC daily features, hourly bars and FOMC events, as a model sees them."""
    bars, daily = btc_hourly
    return ModelData(features=daily, bars=bars, events=fomc_events)


@pytest.fixture(scope="session")
def origins(btc_daily: pl.DataFrame) -> list[date]:
    """The first N_ORIGINS BTC sessions after TRAIN_END."""
    after = btc_daily.filter(pl.col("session_date") > TRAIN_END)["session_date"]
    return after.head(N_ORIGINS).to_list()


@pytest.fixture(scope="session")
def clean_runs(btc_data: ModelData, origins: list[date]) -> Callable[[str], tuple[Forecaster, pl.DataFrame]]:
    """Per model (cached): fitted on clean BTC data through TRAIN_END, and its predictions at ``origins``."""
    cache: dict[str, tuple[Forecaster, pl.DataFrame]] = {}

    def run(name: str) -> tuple[Forecaster, pl.DataFrame]:
        if name not in cache:
            model = make_model(name).fit(btc_data, TRAIN_END)
            cache[name] = (model, model.predict(btc_data, origins, horizon=1))
        return cache[name]

    return run
