"""pipeline_flow: validated parameters, failure isolation, the summary artifact, scheduled dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from repo_paths import REPO

from core.errors import ConfigError
from flows.pipeline_flow import (
    daily_flow,
    run_pipeline,
    summary_markdown,
)
from flows.stages import EvaluationWindow, PipelineParams, validate_params
from warehouse.db import session

SAMPLES = REPO / "data" / "samples"


def test_parameters_are_validated_together() -> None:
    p = validate_params(symbols=["BTC-USDT", "SPY"], start=date(2018, 1, 1), end=date(2019, 1, 1))
    assert p.source == "samples" and p.evaluation.refit_every == 63
    with pytest.raises(ConfigError, match="must be before end"):
        validate_params(symbols=["BTC-USDT"], start=date(2019, 1, 1), end=date(2018, 1, 1))
    with pytest.raises(ConfigError, match="no bundled samples"):
        validate_params(symbols=["DOGE"])
    with pytest.raises(ConfigError, match="invalid symbols"):
        validate_params(symbols=["../etc"], source="warehouse")
    with pytest.raises(ConfigError, match="needs both start and end"):
        validate_params(symbols=["SYN1"], source="synthetic")
    with pytest.raises(ConfigError, match="device"):
        validate_params(symbols=["SPY"], device="tpu")
    with pytest.raises(ValueError, match="train_start"):
        EvaluationWindow(test_start=date(2020, 1, 1), train_start=date(2021, 1, 1))
    # What the UI renders its run form from: a JSON schema with typed, described fields.
    schema = PipelineParams.model_json_schema()
    assert schema["properties"]["source"]["enum"] == ["samples", "file", "synthetic", "yfinance", "warehouse"]


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    lines = (SAMPLES / "BTC_USDT-1h_binance_2017_2024.csv").read_text().splitlines()
    good = tmp_path / "btc.csv"
    good.write_text("\n".join(lines[: 24 * 75]) + "\n")  # 2017-08-17 .. ~2017-10-30
    bad = tmp_path / "eth.csv"
    bad.write_text("this is not\na bar file\n")
    return good, bad


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_partition_stops_only_what_depends_on_it(
    two_files: tuple[Path, Path], tmp_path: Path
) -> None:
    good, bad = two_files
    wh = tmp_path / "wh.duckdb"
    summary = run_pipeline(
        symbols=["BTC-USDT", "ETH-USDT"],
        source="file",
        paths=[str(good), str(bad)],
        evaluate=False,
        name="isolation-test",
        warehouse=str(wh),
    )
    failed = summary["failed"]
    assert [(f["stage"], f["symbol"]) for f in failed] == [("ingest", "ETH-USDT")]
    assert "eth.csv" in failed[0]["partition"] and failed[0]["error"]
    assert summary["skipped"] == {"ETH-USDT": f"ingest partition {bad} failed"}
    # BTC went on through the quality gate and features.
    parts = summary["features"]["partitions"]
    assert {p["symbol"] for p in parts} == {"BTC-USDT"}
    assert {p["status"] for p in parts} == {"success"}
    with session(wh, read_only=True) as con:
        assert con.sql("SELECT count(DISTINCT session_date) FROM features_daily").fetchall()[0][0] >= 70
    md = summary_markdown(summary)
    assert "1 partition(s) failed" in md and "| ingest | ETH-USDT |" in md

    from prefect.artifacts import Artifact

    artifact = Artifact.get("pipeline-summary-isolation-test")
    assert artifact is not None and "ETH-USDT" in str(artifact.data)

    # Run again: the flow's final state is Failed and its message names the partition.
    from flows.pipeline_flow import pipeline_flow

    state = pipeline_flow(
        symbols=["BTC-USDT", "ETH-USDT"],
        source="file",
        paths=[str(good), str(bad)],
        evaluate=False,
        name="isolation-test",
        warehouse=str(wh),
        return_state=True,
    )
    assert state.is_failed()
    assert "ingest ETH-USDT" in str(state.message)
    again = state.result(raise_on_failure=False)
    assert {p["status"] for p in again["features"]["partitions"]} == {"cached"}


@pytest.mark.usefixtures("prefect_harness")
def test_daily_flow_derives_its_day_from_the_scheduled_start(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    result = daily_flow(symbols=["SYN1"], source="synthetic", interval="1m", warehouse=str(wh))
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert result["params"]["start"] == yesterday.isoformat()
    assert result["params"]["end"] == (yesterday + timedelta(days=1)).isoformat()
    assert not result["failed"]
    with session(wh, read_only=True) as con:
        days = con.sql("SELECT DISTINCT session_date FROM features_daily").fetchall()
    assert days == [(yesterday,)]
