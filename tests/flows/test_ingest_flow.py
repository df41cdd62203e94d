"""ingest_flow and the CLI against a real DuckDB file and a real (temporary) Prefect API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from repo_paths import REPO, TESTS
from typer.testing import CliRunner

from core.errors import ConfigError
from flows.cli import app
from flows.ingest_flow import ingest_flow
from warehouse.bars import bars_checksum
from warehouse.catalog import duplicate_bar_keys, read_ingest_log
from warehouse.db import session

SAMPLES = REPO / "data" / "samples"
SPY_JAN = SAMPLES / "nt-spy-minute-2011-01.csv"

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _checksum(path: Path) -> str:
    with session(path, read_only=True) as con:
        assert duplicate_bar_keys(con) == 0
        return bars_checksum(con)


def test_ingesting_the_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    wh = tmp_path / "a.duckdb"
    first = ingest_flow(symbols=["SPY"], paths=[str(SPY_JAN)], warehouse=str(wh))
    assert [r["status"] for r in first] == ["success"]
    assert first[0]["new"] == 14180 and first[0]["interval"] == "1m"
    sum1 = _checksum(wh)
    second = ingest_flow(symbols=["SPY"], paths=[str(SPY_JAN)], warehouse=str(wh))
    assert second[0]["status"] == "cached"
    assert second[0]["new"] == 0 and second[0]["unchanged"] == 14180
    assert _checksum(wh) == sum1
    with session(wh, read_only=True) as con:
        assert read_ingest_log(con).height == 1  # one row per (source, symbol, interval, window)


def test_a_new_warehouse_is_never_served_from_an_old_cache(tmp_path: Path) -> None:
    ingest_flow(symbols=["SPY"], paths=[str(SPY_JAN)], warehouse=str(tmp_path / "one.duckdb"))
    rows = ingest_flow(symbols=["SPY"], paths=[str(SPY_JAN)], warehouse=str(tmp_path / "two.duckdb"))
    assert rows[0]["status"] == "success" and rows[0]["new"] == 14180
    assert _checksum(tmp_path / "one.duckdb") == _checksum(tmp_path / "two.duckdb")


def test_changed_file_content_recomputes_and_updates_only_changed_rows(tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    copy = tmp_path / "spy.csv"
    shutil.copy(SPY_JAN, copy)
    ingest_flow(symbols=["SPY"], paths=[str(copy)], fmt="ninjatrader", warehouse=str(wh))
    lines = copy.read_text().splitlines()
    fields = lines[10].split(";")
    fields[4] = f"{float(fields[4]) + 0.001:.3f}"  # nudge one close; raise high so the bar stays valid
    fields[2] = f"{max(float(fields[2]), float(fields[4])):.3f}"
    lines[10] = ";".join(fields)
    copy.write_text("\n".join(lines) + "\n")
    rows = ingest_flow(symbols=["SPY"], paths=[str(copy)], fmt="ninjatrader", warehouse=str(wh))
    assert rows[0]["status"] == "success"
    assert (rows[0]["new"], rows[0]["updated"], rows[0]["unchanged"]) == (0, 1, 14179)


def test_a_failed_partition_does_not_stop_the_others(tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\x00\x01\x02garbage" * 100)
    rows = ingest_flow(symbols=["SPY"], paths=[str(SPY_JAN), str(broken)], warehouse=str(wh))
    by_loc = {Path(r["location"]).name: r for r in rows}
    assert by_loc["nt-spy-minute-2011-01.csv"]["status"] == "success"
    failed = by_loc["broken.csv"]
    assert failed["status"] == "failed"
    assert "DataError" in failed["error"] and "broken.csv" in failed["error"] and "binary" in failed["error"]
    with session(wh, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM bars").fetchall()[0][0] == 14180


def test_flow_refuses_bad_parameters(tmp_path: Path) -> None:
    from datetime import date

    with pytest.raises(ConfigError, match="after end"):
        ingest_flow(
            symbols=["SPY"],
            paths=[str(SPY_JAN)],
            start=date(2011, 2, 1),
            end=date(2011, 1, 1),
            warehouse=str(tmp_path / "w.duckdb"),
        )
    with pytest.raises(ConfigError, match="invalid symbol"):
        ingest_flow(symbols=["../../etc"], paths=[str(SPY_JAN)], warehouse=str(tmp_path / "w.duckdb"))
    with pytest.raises(ConfigError, match="outside the configured data roots"):
        ingest_flow(
            symbols=["SPY"],
            paths=["/etc/passwd"],
            warehouse=str(tmp_path / "w.duckdb"),
            restrict_to_data_roots=True,
        )


def test_start_end_clip_the_file(tmp_path: Path) -> None:
    from datetime import date

    rows = ingest_flow(
        symbols=["SPY"],
        paths=[str(SPY_JAN)],
        start=date(2011, 1, 10),
        end=date(2011, 1, 11),
        warehouse=str(tmp_path / "w.duckdb"),
    )
    assert 0 < rows[0]["new"] < 1000
    assert any("outside" in n for n in rows[0]["notes"])


def test_cli_reports_errors_as_one_line_and_prints_a_summary(tmp_path: Path) -> None:
    runner = CliRunner()
    wh = str(tmp_path / "cli.duckdb")
    ok = runner.invoke(app, ["ingest", "file", str(SPY_JAN), "-s", "SPY", "-w", wh])
    assert ok.exit_code == 0, ok.output
    assert "ingest summary" in ok.output and "14,180" in ok.output

    bad_range = runner.invoke(
        app,
        [
            "ingest",
            "file",
            str(SPY_JAN),
            "-s",
            "SPY",
            "-w",
            wh,
            "--start",
            "2011-02-01",
            "--end",
            "2011-01-01",
        ],
    )
    assert bad_range.exit_code == 2
    assert "--start 2011-02-01 is after --end 2011-01-01" in bad_range.output
    assert "Traceback" not in bad_range.output

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    failed = runner.invoke(app, ["ingest", "file", str(empty), "-s", "SPY", "-w", wh])
    assert failed.exit_code == 1
    assert "empty.csv" in failed.output and "file is empty" in failed.output

    info = runner.invoke(app, ["warehouse", "info", "-w", wh])
    assert info.exit_code == 0 and "SPY" in info.output and "14,180" in info.output
    check = runner.invoke(app, ["warehouse", "check", "-w", wh])
    assert check.exit_code == 0 and "no duplicate bar keys" in check.output


def test_yfinance_flow_with_a_recorded_response(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Yahoo is unreachable here: the boundary (one HTTP request) is replaced by a recorded response."""
    from datetime import date

    from recorded_yahoo import MANIFEST, recorded_downloader

    import tasks.sources.yfinance_source as yfs

    calls: list[tuple[object, object]] = []
    monkeypatch.setattr(yfs, "yfinance_downloader", recorded_downloader("btc-usd_1h", calls))
    req = MANIFEST["btc-usd_1h"]["request"]
    start, end = date.fromisoformat(req["start"][:10]), date.fromisoformat(req["end"][:10])
    wh = tmp_path / "yf.duckdb"
    rows = ingest_flow(
        symbols=["BTC-USD"], source="yfinance", interval="1h", start=start, end=end, warehouse=str(wh)
    )
    assert [r["status"] for r in rows] == ["success"]
    assert rows[0]["new"] == 48 and rows[0]["source"] == "yfinance"
    with session(wh, read_only=True) as con:
        first = con.sql("SELECT min(ts), max(ts), count(*) FROM bars WHERE symbol = 'BTC-USD'").fetchall()[0]
    assert first[2] == 48
    assert first[0].isoformat().startswith(req["start"][:10])
    again = ingest_flow(
        symbols=["BTC-USD"], source="yfinance", interval="1h", start=start, end=end, warehouse=str(wh)
    )
    assert again[0]["status"] == "cached"  # a closed window is not fetched twice
    assert len(calls) == 1


def test_realized_import_is_idempotent(tmp_path: Path) -> None:
    sample = TESTS / "data" / "realized" / "oxfordman_sample.csv"
    wh = tmp_path / "r.duckdb"
    first = ingest_flow(symbols=[], source="realized", paths=[str(sample)], warehouse=str(wh))
    assert first[0]["status"] == "success" and first[0]["new"] == 12
    with session(wh, read_only=True) as con:
        syms = {r[0] for r in con.sql("SELECT DISTINCT symbol FROM realized_daily").fetchall()}
    assert syms == {".AEX", ".SPX"}


def test_cli_train_and_predict_a_baseline(tmp_path: Path) -> None:
    """`volrisk train` records a model run; `volrisk predict` writes its forecasts; bad ids are one line."""
    from flows.steps.ingest import default_instrument
    from tasks.features import build_daily_features
    from tasks.sources.files import read_bars_file
    from warehouse.catalog import upsert_instrument
    from warehouse.features import write_features

    bars = read_bars_file(SAMPLES / "BTC_USDT-1h_binance_2017_2024.csv", symbol="BTC-USDT").bars
    daily = build_daily_features(bars, "24x7", "1h")
    wh = tmp_path / "m.duckdb"
    with session(wh) as con:
        upsert_instrument(con, default_instrument("BTC-USDT"))
        write_features(con, daily, "BTC-USDT", daily["session_date"].min(), daily["session_date"].max())
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "har", "BTC-USDT", "--train-end", "2022-12-31", "-w", str(wh)])
    assert trained.exit_code == 0, trained.output
    run_id = next(w for w in trained.output.split() if w.startswith("har-"))
    predicted = runner.invoke(
        app, ["predict", run_id, "--start", "2023-01-01", "--end", "2023-01-31", "-w", str(wh)]
    )
    assert predicted.exit_code == 0, predicted.output
    with session(wh, read_only=True) as con:
        rows = con.sql(
            "SELECT count(*), min(origin), max(target) FROM predictions WHERE model_run = ?", params=[run_id]
        ).fetchall()[0]
    assert rows[0] == 31 and str(rows[1]) == "2023-01-01" and str(rows[2]) == "2023-02-01"
    missing = runner.invoke(
        app, ["predict", "nosuch", "--start", "2023-01-01", "--end", "2023-01-02", "-w", str(wh)]
    )
    assert missing.exit_code == 2 and "not found" in missing.output
