"""features_flow on a 2-worker Dask LocalCluster gives exactly what the thread runner gives.

Warehouse writes stay serialized across the Dask worker processes by ``warehouse.db.writer``'s
``flock`` on ``<warehouse>.lock`` (readers retry DuckDB's lock error in ``connect``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from repo_paths import REPO

from flows.features_flow import features_flow
from flows.steps.ingest import default_instrument
from tasks.sources.files import read_bars_file
from warehouse.bars import upsert_bars
from warehouse.catalog import upsert_instrument
from warehouse.db import session

SAMPLES = REPO / "data" / "samples"

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def _warehouse(path: Path, bars: pl.DataFrame) -> str:
    with session(path) as con:
        upsert_instrument(con, default_instrument("BTC-USDT"))
        upsert_bars(con, bars, "seed")
    return str(path)


def _features(path: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    with session(path, read_only=True) as con:
        return (
            con.sql("SELECT * FROM features_daily ORDER BY symbol, session_date").pl(),
            con.sql(
                "SELECT suite, partition, expectation, column_name, success, observed_value::VARCHAR AS obs "
                "FROM dq_results ORDER BY ALL"
            ).pl(),
        )


def test_dask_local_cluster_matches_the_thread_runner(tmp_path: Path) -> None:
    from prefect_dask import DaskTaskRunner

    bars = read_bars_file(SAMPLES / "BTC_USDT-1h_binance_2017_2024.csv", symbol="BTC-USDT").bars
    bars = bars.filter(
        pl.col("ts").is_between(datetime(2018, 11, 1, tzinfo=UTC), datetime(2019, 5, 2, tzinfo=UTC))
    )
    thread_wh = _warehouse(tmp_path / "thread.duckdb", bars)
    dask_wh = _warehouse(tmp_path / "dask.duckdb", bars)
    kwargs = dict(symbols=["BTC-USDT"], start=date(2019, 1, 1), end=date(2019, 5, 1))

    threaded = features_flow(**kwargs, warehouse=thread_wh)
    runner = DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "dashboard_address": None},
    )
    on_dask = features_flow.with_options(task_runner=runner)(**kwargs, warehouse=dask_wh)

    assert [r["status"] for r in threaded["partitions"]] == ["success"] * 4
    assert [r["status"] for r in on_dask["partitions"]] == ["success"] * 4
    strip = ("run_id",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in on_dask["partitions"]] == [
        {k: v for k, v in r.items() if k not in strip} for r in threaded["partitions"]
    ]
    t_feats, t_dq = _features(thread_wh)
    d_feats, d_dq = _features(dask_wh)
    assert t_feats.height == 120
    assert d_feats.equals(t_feats)
    assert d_dq.equals(t_dq)
