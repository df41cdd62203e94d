"""Settings and helpers of the registry-wide model tests (contract, no look-ahead).

Add your model's small test configuration to :data:`FAST`, and its name to :data:`SLOW` only if its
registry-wide tests still take over 20 s.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from tasks.models.base import Forecaster, ModelData, get_model
from tasks.models.foundation_weights import FOUNDATION

#: Training ends here in the registry-wide tests (BTC: about 1,400 training sessions).
TRAIN_END = date(2021, 6, 30)
#: Origins of the registry-wide tests: the first 30 sessions after TRAIN_END.
N_ORIGINS = 30

#: Small configurations for the registry-wide tests, by registry name. Add your model here.
FAST: dict[str, dict[str, Any]] = {
    # quantile models: a few epochs are enough to exercise fit/predict (their owners may tune these)
    "quantile": {"epochs": 3},
    "quantile_event": {"epochs": 3},
    # neural volatility models (tasks/models/transformer.py, prob_lstm.py, lstm_point.py): tiny nets
    "voltransformer": {"epochs": 2, "d_model": 16, "heads": 2, "layers": 1, "ff": 32, "window": 10},
    "prob_lstm": {"epochs": 2, "hidden": 8, "window": 10},
    "lstm_point": {"epochs": 2, "hidden": 8, "window": 10},
    # the stack (tasks/models/ensemble.py): two cheap bases, long internal folds
    "ensemble": {"base_models": ["ewma", "har"], "refit_every": 250, "n_estimators": 30},
}
#: Registry names whose registry-wide tests are marked slow (over 20 s even with FAST).
SLOW: set[str] = set()


def fast_config(name: str) -> dict[str, Any]:
    """The small configuration of ``name`` for registry-wide tests."""
    return dict(FAST.get(name, {}))


def make_model(name: str) -> Forecaster:
    """A new model by registry name with its FAST configuration.

    A foundation model gets tiny random weights (``foundation_helpers``); without the ``foundation``
    extra its test is skipped.
    """
    if name in FOUNDATION:
        from foundation_helpers import tiny_config

        return get_model(name, **tiny_config(name), **fast_config(name))
    return get_model(name, **fast_config(name))


# --- garbage --------------------------------------------------------------------------------------

#: Columns that identify a row or place it in time; everything else is replaced by garbage.
KEEP = frozenset(
    {
        "symbol",
        "session_date",
        "session_end",
        "interval",
        "sampling_interval",
        "ts",
        "event_ts",
        "date",
        "type",
        "name",
        "currency",
        "scheduled",
        "source",
    }
)


def _garbage_column(series: pl.Series, rng: np.random.Generator) -> pl.Series:
    n = series.len()
    if series.dtype.is_float():
        values = rng.choice([np.nan, -1.0, 1.0], size=n) * 10.0 ** rng.uniform(3, 12, size=n)
        return pl.Series(series.name, values, dtype=series.dtype)
    if series.dtype.is_integer():
        return pl.Series(series.name, rng.integers(-(10**6), 10**6, size=n)).cast(series.dtype)
    if series.dtype == pl.Boolean:
        return pl.Series(series.name, rng.random(n) < 0.5)
    return series


def garble_frame(frame: pl.DataFrame, mask: pl.Series, seed: int = 7) -> pl.DataFrame:
    """``frame`` with every non-identifying column replaced by garbage (NaN, +-huge) where ``mask``."""
    rng = np.random.default_rng(seed)
    out = {}
    for col in frame.columns:
        s = frame[col]
        if col in KEEP:
            out[col] = s
            continue
        junk = _garbage_column(s, rng)
        out[col] = pl.select(pl.when(mask).then(junk).otherwise(s)).to_series().alias(col)
    return pl.DataFrame(out).cast(dict(frame.schema))


def garble_after(data: ModelData, last: date) -> ModelData:
    """``data`` with every feature row after session ``last``, every bar after its end and every
    event released after its end replaced by garbage."""
    feats = data.features
    cutoff = feats.filter(pl.col("session_date") <= last)["session_end"].max()
    cross = data.cross_asset
    if cross is not None:
        cross = garble_frame(cross, cross["session_date"] > last)
    bars = data.bars
    if bars is not None:
        bars = garble_frame(bars, bars["ts"] >= cutoff)
    events = data.events
    if events is not None:
        events = garble_frame(events, events["event_ts"] > cutoff)
    return ModelData(garble_frame(feats, feats["session_date"] > last), cross, events, bars)


def check_params_json(frame: pl.DataFrame) -> None:
    """Every ``params`` cell is a JSON object."""
    for text in frame["params"].to_list():
        assert isinstance(json.loads(text), dict)
