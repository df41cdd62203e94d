"""Fold blocks: one task fits several folds, keeps the good ones when one fails, and picks its runner."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from repo_paths import REPO

from core.errors import ConfigError
from flows.evaluate_flow import fold_blocks
from flows.fold_runners import PROCESS_MIN_TORCH_FOLDS, choose_runner
from flows.steps.evaluate import FoldsFailed, fit_predict_folds, fold_payload
from tasks.features import build_daily_features
from tasks.sources.files import read_bars_file
from tasks.walk_forward import walk_forward_folds
from warehouse.catalog import Instrument, upsert_instrument
from warehouse.db import session, writer
from warehouse.features import write_features

SAMPLE = REPO / "data" / "samples" / "BTC_USDT-1h_binance_2017_2024.csv"


def test_fold_blocks_cover_every_fold_once_in_order() -> None:
    days = [date(2023, 1, 1) + (date(2023, 1, 2) - date(2023, 1, 1)) * i for i in range(400)]
    folds = walk_forward_folds(days, days[300], days[-1], refit_every=10)
    blocks = fold_blocks(folds, 4)
    assert [f for b in blocks for f in b] == folds
    assert all(len(b) == 4 for b in blocks[:-1]) and 1 <= len(blocks[-1]) <= 4
    assert fold_blocks(folds, 1000) == [folds]


@pytest.mark.parametrize(
    ("kind", "device", "torch_folds", "workers", "expected"),
    [
        ("auto", "cpu", PROCESS_MIN_TORCH_FOLDS, 2, "process"),
        ("auto", "cpu", PROCESS_MIN_TORCH_FOLDS - 1, 2, "thread"),  # too few neural folds to pay the start
        ("auto", "cpu", 10_000, 1, "thread"),  # one worker: nothing runs side by side
        ("auto", "cuda", 10_000, 8, "thread"),  # the accelerator is shared better by one process
        ("process", "cuda", 0, 1, "process"),  # asked for: done
        ("thread", "cpu", 10_000, 8, "thread"),
    ],
)
def test_choose_runner(kind: str, device: str, torch_folds: int, workers: int, expected: str) -> None:
    assert choose_runner(kind, device, torch_folds, workers) == expected


def test_choose_runner_names_the_kinds_it_knows() -> None:
    with pytest.raises(ConfigError, match=r"fold runner 'dask'.*'auto', 'thread', 'process'"):
        choose_runner("dask", "cpu", 0, 2)


def test_a_failed_fold_keeps_the_blocks_other_folds(warehouse_path: Path) -> None:
    feats = build_daily_features(read_bars_file(SAMPLE, symbol="BTC-USDT").bars, "24x7", "1h")
    feats = feats.filter(pl.col("session_date") <= date(2023, 6, 30))
    with writer(warehouse_path) as con:
        upsert_instrument(con, Instrument("BTC-USDT", "crypto", "24x7", "USDT", "binance"))
        write_features(con, feats, "BTC-USDT", feats["session_date"].min(), feats["session_date"].max())
    days = feats["session_date"].to_list()
    good, later = walk_forward_folds(days, date(2023, 6, 1), date(2023, 6, 30), refit_every=15)[:2]
    # a fold whose training window holds one session: HAR-RV cannot be fitted on it
    empty = fold_payload(later) | {"train_start": later.train_end.isoformat()}
    with pytest.raises(FoldsFailed) as caught:
        fit_predict_folds(
            str(warehouse_path), "wid", "har", "BTC-USDT", [fold_payload(good), empty], None, "v1", label="t"
        )
    failure = caught.value
    assert [r["fold"] for r in failure.done] == [good.fold] and failure.done[0]["rows"] == len(good.origins)
    assert [f["fold"] for f in failure.failures] == [later.fold]
    assert failure.failures[0]["error"].startswith("DataError")
    assert str(failure) == "1 of 2 folds of har BTC-USDT failed"
    with session(warehouse_path, read_only=True) as con:
        stored = con.sql("SELECT fold, count(*) FROM predictions GROUP BY fold").fetchall()
    assert stored == [(good.fold, len(good.origins))], "the good fold is stored, the failed one is not"


def test_torch_and_lightgbm_fits_take_turns_in_threads() -> None:
    """LightGBM segfaulted when two ensemble blocks ran in threads of one process (stack flow on the
    6-index benchmark warehouse); torch's generator is process-wide. Both hold a lock; HAR does not."""
    from contextlib import nullcontext

    from flows.steps.evaluate import LIGHTGBM_LOCK, TORCH_LOCK, fit_lock
    from tasks.models.base import get_model

    assert fit_lock(get_model("ensemble")) is LIGHTGBM_LOCK
    assert fit_lock(get_model("prob_lstm")) is TORCH_LOCK
    assert isinstance(fit_lock(get_model("har")), nullcontext)
