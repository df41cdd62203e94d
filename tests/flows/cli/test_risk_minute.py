"""``volrisk risk minute``: end to end on the real BTC-PERP minute file, and its one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.risk import MINUTE_FAST_CONFIG

runner = CliRunner()
BTC = "btc_perp_1m_ftx_202201/btc-perp-20211231-20220201_1m.csv"


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.fixture(scope="module")
def btc_warehouse(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A temp warehouse with six days of real BTC-PERP minute bars."""
    wh = str(tmp_path_factory.mktemp("minute") / "wh.duckdb")
    args = ["ingest", "file", str(shared_data / BTC), "-s", "BTC-PERP", "--start", "2022-01-10",
            "--end", "2022-01-16", "-w", wh]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    return wh


def _run(wh: str, *extra: str) -> tuple[int, str]:
    out = runner.invoke(app, ["risk", "minute", *extra, "-w", wh], env={"COLUMNS": "200"})
    return out.exit_code, _flat(out.output)


@pytest.fixture()
def reports_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``VOLRISK_REPORTS_DIR`` in a temp folder for one test (settings cache cleared around it)."""
    from tasks.config import get_settings

    monkeypatch.setenv("VOLRISK_REPORTS_DIR", str(tmp_path / "reports"))
    get_settings.cache_clear()
    yield tmp_path / "reports"
    get_settings.cache_clear()


def test_minute_backtest_end_to_end(btc_warehouse: str, prefect_harness: None, reports_dir: Path) -> None:
    cfg = json.dumps({"transformer": MINUTE_FAST_CONFIG})
    code, text = _run(btc_warehouse, "BTC-PERP", "-m", "transformer", "-m", "ewma", "-m", "range_har",
                      "--config", cfg,
                      "--set", "epochs=1", "--seed", "3")  # fmt: skip
    assert code == 0, text
    assert "minute risk backtest: BTC-PERP" in text and "recommended:" in text
    report = Path(text.split("report written to ")[1].split(" ")[0])
    assert report.parent == reports_dir
    assert report.is_file() and report.read_text().startswith("# Minute-mode risk backtest: BTC-PERP")
    payload = json.loads(report.with_suffix(".json").read_text())
    assert {(r["model"], r["variant"]) for r in payload["summary"]} == {
        (m, v) for m in ("transformer", "ewma", "range_har") for v in ("raw", "deseasonalised", "calibrated")
    }
    assert payload["spec"]["model_config"]["transformer"]["seed"] == 3
    for png in ("var_band.png", "profile.png", "reliability.png"):
        assert (report.with_suffix("") / png).stat().st_size > 1000
    con = duckdb.connect(btc_warehouse, read_only=True)
    try:
        n_rows = con.sql(
            "SELECT count(*) FROM minute_predictions WHERE run_id = ?", params=[payload["run_id"]]
        )
        stored = int(n_rows.fetchall()[0][0])
    finally:
        con.close()
    assert stored == 9 * payload["meta"]["n_test"]
    assert payload["spec"]["calibration"] == "mfaci"
    assert payload["meta"]["calibration_warmup"] == payload["meta"]["n_train"]  # six days: all of it


@pytest.mark.parametrize(
    "args, message",
    [
        (["SPY"], "no bars stored for ['SPY']"),
        (["BTC PERP"], "symbol"),
        (["BTC-PERP", "--set", "epoch=2"], "unknown transformer setting(s) ['epoch']"),
        (["BTC-PERP", "--set", "ewma.lambda=0.9"], "unknown ewma setting(s) ['lambda']"),
        (["BTC-PERP", "--set", "epochs"], "expected KEY=VALUE"),
        (["BTC-PERP", "--calibrate", "evt"], "--calibrate 'evt': expected one of none, aci, faci"),
        (["BTC-PERP", "-m", "lstm"], "--model 'lstm': expected one of"),
        (["BTC-PERP", "--alpha", "0.02"], "--alpha [0.02]: expected 0.01 and/or 0.05"),
        (["BTC-PERP", "--config", "{bad"], "--config is not valid JSON"),
        (
            ["BTC-PERP", "--config", '{"seasonality": {"bucket": 5}}'],
            "unknown seasonality setting(s) ['bucket']",
        ),
        (["BTC-PERP", "--config", '{"aci_gama": 0.1}'], "unknown minute-mode setting(s) ['aci_gama']"),
        (["BTC-PERP", "--test-fraction", "1.5"], "test_fraction must be a number in (0, 1)"),
        (
            ["BTC-PERP", "--start", "2022-01-12", "--end", "2022-01-12"],
            "no 1m bars stored for BTC-PERP in the window",
        ),
        (["BTC-PERP", "--start", "2022-01-15", "--end", "2022-01-16", "--test-fraction", "0.99"], "too few"),
        (["BTC-PERP", "--interval", "1d"], "--interval '1d': expected one of 1m, 5m, 15m, 30m, 1h"),
        (["BTC-PERP", "--interval", "1h"], "no 1h bars stored for BTC-PERP (stored: 1m (8,"),
        (["BTC-PERP", "--config", '{"calibration_warmup": -1}'], "calibration_warmup must be a whole number"),
        (["BTC-PERP", "--set", "range_har.windows=[0, 5]"], "windows must be a list of positive whole"),
        (["BTC-PERP", "--config", '{"interval_minutes": 5}'], "sets interval_minutes=5 but --interval"),
    ],
)
def test_mistakes_answer_in_one_line(btc_warehouse: str, args: list[str], message: str) -> None:
    code, text = _run(btc_warehouse, *args)
    assert code == 2, text
    assert message in text, text
    assert "Traceback" not in text


def test_missing_warehouse_is_one_line(tmp_path: Path) -> None:
    code, text = _run(str(tmp_path / "none.duckdb"), "BTC-PERP")
    assert code == 2 and "does not exist" in text
