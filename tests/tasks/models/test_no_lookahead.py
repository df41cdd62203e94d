"""No look-ahead, proven for EVERY registry entry on real BTC data.

A forecast made at origin ``t`` may use only what is known at the end of session ``t``. So replacing
every feature row, bar and event value after ``t`` with garbage (NaN and +-1e3..1e12) and refitting
must leave the forecasts at ``t`` (and at the earlier origins of the same call) bit-identical. A fit
must not read rows after ``train_end``, data that end at ``t`` must give the same forecast as the full
history, and an origin's row must not depend on the later origins in its batch.

Two deliberately leaky forecasters (not registered) show that these checks do fail when they should.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Self

import numpy as np
import polars as pl
import pytest
from model_helpers import TRAIN_END, garble_after, make_model

from core.errors import DataError
from core.schema import PREDICTION_SCHEMA
from tasks.models.base import Forecaster, ModelData
from tasks.models.baselines import Naive

FLOATS = [c for c, t in PREDICTION_SCHEMA.items() if t == pl.Float64()]


def differences(a: pl.DataFrame, b: pl.DataFrame) -> list[str]:
    """Columns in which two prediction frames differ (floats compared with ``==``, no tolerance)."""
    if a.height != b.height or a.height == 0:
        return [f"rows {a.height} vs {b.height}"]
    out = [c for c in a.columns if c not in FLOATS and not a[c].equals(b[c])]
    return out + [c for c in FLOATS if not (a[c].to_numpy() == b[c].to_numpy()).all()]


def garbage_differences(
    make: Callable[[], Forecaster], data: ModelData, origins: Sequence[date], clean: pl.DataFrame
) -> list[str]:
    """Refit on data garbled after the last origin, predict the origins, compare with ``clean``."""
    garbled = garble_after(data, max(origins))
    return differences(make().fit(garbled, TRAIN_END).predict(garbled, origins, horizon=1), clean)


def test_garbage_after_origin_changes_nothing(
    model_name: str,
    btc_data: ModelData,
    origins: list[date],
    clean_runs: Callable[[str], tuple[Forecaster, pl.DataFrame]],
) -> None:
    _, clean = clean_runs(model_name)
    t = origins[-1]
    garbled = garble_after(btc_data, t).features.filter(pl.col("session_date") > t)
    assert garbled.height > 500 and garbled["rv"].is_nan().any()  # the garbage really is there
    assert garbage_differences(lambda: make_model(model_name), btc_data, origins, clean) == []


def test_fit_ignores_rows_after_train_end(
    model_name: str,
    btc_data: ModelData,
    origins: list[date],
    clean_runs: Callable[[str], tuple[Forecaster, pl.DataFrame]],
) -> None:
    _, clean = clean_runs(model_name)
    model = make_model(model_name).fit(garble_after(btc_data, TRAIN_END), TRAIN_END)
    assert differences(model.predict(btc_data, origins, horizon=1), clean) == []


def test_data_ending_at_the_origin_give_the_same_forecast(
    model_name: str,
    btc_data: ModelData,
    origins: list[date],
    clean_runs: Callable[[str], tuple[Forecaster, pl.DataFrame]],
) -> None:
    """A live forecast (data end at t) equals the forecast at t made with the full history present."""
    model, _ = clean_runs(model_name)
    t = origins[len(origins) // 2]
    live = model.predict(btc_data.upto(t), [t], horizon=1)
    assert differences(live, model.predict(btc_data, [t], horizon=1)) == []


def test_one_origin_alone_matches_the_batch(
    model_name: str,
    btc_data: ModelData,
    origins: list[date],
    clean_runs: Callable[[str], tuple[Forecaster, pl.DataFrame]],
) -> None:
    """The row of origin t does not depend on which other (later) origins share its batch.

    Batched neural networks may differ in the last bits between batch sizes (BLAS blocking), so this
    one compares to 1e-6 relative; test_baselines.py holds the baselines to bit-identity.
    """
    model, clean = clean_runs(model_name)
    t = origins[len(origins) // 2]
    alone = model.predict(btc_data, [t], horizon=1)
    row = clean.filter(pl.col("origin") == t)
    assert alone.select(pl.exclude(FLOATS)).equals(row.select(pl.exclude(FLOATS)))
    for col in FLOATS:
        np.testing.assert_allclose(alone[col].to_numpy(), row[col].to_numpy(), rtol=1e-6, err_msg=col)


# --- the checks can fail ----------------------------------------------------------------------------


class PeekingNaive(Naive):
    """Leaks: forecasts session t+1's RV with the RV of t+1 itself."""

    def predict(self, data: ModelData, origins: Sequence[date], horizon: int = 1) -> pl.DataFrame:
        out = super().predict(data, origins, horizon)
        rv = data.features.select(pl.col("session_date").alias("target"), pl.col("rv").alias("peek"))
        joined = out.join(rv, on="target", how="left", maintain_order="left")
        return joined.with_columns(pl.col("peek").alias("rv")).drop("peek")


class FitOnEverything(Naive):
    """Leaks: ignores train_end when fitting (its variance scale sees the whole sample)."""

    def fit(self, data: ModelData, train_end: date) -> Self:
        return super().fit(data, date(2100, 1, 1))


def test_the_garbage_check_catches_a_peeking_model(btc_data: ModelData, origins: list[date]) -> None:
    clean = PeekingNaive().fit(btc_data, TRAIN_END).predict(btc_data, origins)
    assert "rv" in garbage_differences(PeekingNaive, btc_data, origins, clean)


def test_the_train_end_check_catches_a_model_fitted_on_everything(
    btc_data: ModelData, origins: list[date]
) -> None:
    clean = FitOnEverything().fit(btc_data, TRAIN_END).predict(btc_data, origins)
    with pytest.raises(DataError, match="non-finite return"):  # it reads the garbage and chokes
        FitOnEverything().fit(garble_after(btc_data, TRAIN_END), TRAIN_END)
    # finite garbage slips past that check but still moves the variance scale, hence the forecasts
    later = pl.col("session_date") > TRAIN_END
    scaled = ModelData(
        btc_data.features.with_columns(pl.when(later).then(pl.col("rv_d") * 50).otherwise(pl.col("rv_d")))
    )
    leaky = FitOnEverything().fit(scaled, TRAIN_END).predict(btc_data, origins)
    assert "variance" in differences(leaky, clean)
