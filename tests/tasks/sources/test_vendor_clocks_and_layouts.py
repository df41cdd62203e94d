"""Vendor files a new user brought (issue 14): HistData's shifting clock, headerless CSV, Lean date_utc.

The shifted HistData file is made from the real 2017 EUR/USD file the way the 2021 vendor files look:
the two weeks when US DST had started and European DST had not (12-26 March 2017) run one hour
behind New York. The real 2017 files themselves follow New York time in those weeks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from repo_paths import REPO
from typer.testing import CliRunner

from core.errors import ConfigError, DataError
from tasks.sources.clock import dst_disagree, reclock_weeks
from tasks.sources.files import read_bars_file
from tasks.sources.layouts import generic_from_params


def _shift_weeks(src: Path, dst: Path, lo: datetime, hi: datetime, hours: int = -1) -> Path:
    """Copy a HistData file, moving the stamps in [lo, hi) (file clock) by ``hours``."""
    out = []
    for line in src.read_text().splitlines():
        ts = datetime.strptime(line[:15], "%Y%m%d %H%M%S")
        if lo <= ts < hi:
            ts += timedelta(hours=hours)
        out.append(ts.strftime("%Y%m%d %H%M%S") + line[15:])
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(out) + "\n")
    return dst


def test_histdata_weeks_an_hour_behind_new_york_are_put_back(shared_data: Path, tmp_path: Path) -> None:
    real = shared_data / "eurusd_m1_histdata_2017h1" / "DAT_ASCII_EURUSD_M1_201703.csv"
    shifted = _shift_weeks(real, tmp_path / real.name, datetime(2017, 3, 12, 17), datetime(2017, 3, 24, 17))
    truth = read_bars_file(real, symbol="EURUSD")
    fixed = read_bars_file(shifted, symbol="EURUSD")
    assert fixed.bars.select("ts", "open", "close").equals(truth.bars.select("ts", "open", "close"))
    (note,) = [n for n in fixed.notes if "re-clocked" in n]
    assert "2 week(s), 14378 bars" in note and "2017-03-12 (+1 h)" in note and "2017-03-19 (+1 h)" in note


def test_real_histdata_files_are_left_alone(shared_data: Path) -> None:
    for path in sorted((shared_data / "eurusd_m1_histdata_2017h1").glob("*.csv")):
        assert not [n for n in read_bars_file(path, symbol="EURUSD").notes if "re-clocked" in n], path.name


def _fx_weeks(first_sunday: datetime, weeks: int, behind: set[int]) -> pl.Series:
    """Minute stamps (New York clock) of FX weeks Sun 17:00 - Fri 16:59; weeks in ``behind`` run 1 h early."""
    stamps = []
    for w in range(weeks):
        start = first_sunday + timedelta(days=7 * w, hours=17)
        shift = timedelta(hours=-1 if w in behind else 0)
        stamps += [start + timedelta(minutes=m) + shift for m in range(0, 5 * 24 * 60, 7)]
    return pl.Series(stamps)


def test_autumn_week_is_detected_from_its_open_and_close() -> None:
    # 2021: Europe left DST on 31 October, the US on 7 November.
    assert dst_disagree(datetime(2021, 11, 2).date()) and not dst_disagree(datetime(2021, 11, 9).date())
    stamps = _fx_weeks(datetime(2021, 10, 17), 4, behind={2})  # the week of 31 October
    fix = reclock_weeks(stamps)
    assert [(str(d), h) for d, h, _ in fix.weeks] == [("2021-10-31", 1)]
    moved = pl.DataFrame({"ts": stamps, "h": fix.shift_hours}).select(pl.col("ts") + pl.duration(hours="h"))
    assert moved["ts"].equals(_fx_weeks(datetime(2021, 10, 17), 4, behind=set()))


def test_an_odd_week_outside_the_dst_windows_is_not_moved() -> None:
    stamps = _fx_weeks(datetime(2021, 6, 6), 4, behind={2})  # June: both sides on DST
    assert reclock_weeks(stamps).weeks == []


# ------------------------------------------------------------------------------ headerless generic CSV
@pytest.fixture
def firstrate_like(tmp_path: Path) -> tuple[Path, Path]:
    """The real FTX BTC-PERP minute file, and the same rows without their header (a FirstRate export)."""
    src = REPO.parent / "shared" / "data" / "btc_perp_1m_ftx_202201" / "btc-perp-20211231-20220201_1m.csv"
    if not src.is_file():
        pytest.skip("../shared/data is absent")
    lines = src.read_text().splitlines()
    bare = tmp_path / "BTC_1min.txt"
    bare.write_text("\n".join(lines[1:2001]) + "\n")
    head = tmp_path / "with_header.csv"
    head.write_text("\n".join(lines[:2001]) + "\n")
    return head, bare


def test_a_headerless_file_reads_by_position(firstrate_like: tuple[Path, Path]) -> None:
    head, bare = firstrate_like
    by_name = generic_from_params({"ts_column": "timestamp", "tz": "UTC"})
    by_position = generic_from_params(
        {"ts_column": "1", "tz": "UTC", "header": False,
         "column_map": {"open": "2", "high": "3", "low": "4", "close": "5", "volume": "6"}}
    )  # fmt: skip
    a = read_bars_file(head, symbol="BTC-PERP", fmt=by_name).bars
    b = read_bars_file(bare, symbol="BTC-PERP", fmt=by_position).bars
    assert b.height == 2000 and b.select("ts", "open", "high", "low", "close", "volume").equals(
        a.select("ts", "open", "high", "low", "close", "volume")
    )


def test_headerless_mistakes_say_what_to_do(firstrate_like: tuple[Path, Path]) -> None:
    _, bare = firstrate_like
    with pytest.raises(
        DataError, match=r"seems to have no header.*--no-header.*--ts-column 1 --column open=2"
    ):
        read_bars_file(bare, symbol="BTC-PERP", fmt=generic_from_params({"ts_column": "time", "tz": "UTC"}))
    past = {"ts_column": "1", "tz": "UTC", "header": False,
            "column_map": {"open": "2", "high": "3", "low": "4", "close": "9"}}  # fmt: skip
    with pytest.raises(DataError, match=r"rows have 6 fields.*close -> column 9 points past them") as err:
        read_bars_file(bare, symbol="BTC-PERP", fmt=generic_from_params(past))
    assert str(bare) in str(err.value)
    with pytest.raises(ConfigError, match="give the position of close"):
        generic_from_params({"ts_column": "1", "tz": "UTC", "header": False, "column_map": {"open": "2"}})
    with pytest.raises(ConfigError, match=r"column position 1, 2, \.\.\.; got 'Open'"):
        cols = {"open": "Open", "high": "3", "low": "4", "close": "5"}
        generic_from_params({"ts_column": "1", "tz": "UTC", "header": False, "column_map": cols})


def test_the_cli_ingests_a_headerless_file(firstrate_like: tuple[Path, Path], tmp_path: Path) -> None:
    from flows.cli import app

    _, bare = firstrate_like
    args = ["ingest", "file", str(bare), "-s", "BTC-PERP", "--format", "generic", "--no-header",
            "--tz", "UTC", "--ts-column", "1", "--column", "open=2", "--column", "high=3",
            "--column", "low=4", "--column", "close=5", "-w", str(tmp_path / "w.duckdb")]  # fmt: skip
    out = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "2,000" in out.output


# ------------------------------------------------------------------------------ Lean daily, date_utc
def test_lean_daily_with_a_date_utc_header_is_detected(shared_data: Path, tmp_path: Path) -> None:
    real = shared_data / "lean_spy" / "spy_daily_1998_2021.csv"
    text = real.read_text().splitlines()
    assert text[0].startswith("date,")
    variant = tmp_path / "spy_daily_utc.csv"
    variant.write_text("\n".join(["date_utc" + text[0][4:], *text[1:]]) + "\n")
    expected = read_bars_file(real, symbol="SPY").bars.drop("location", "raw", strict=False)
    for fmt in (None, "lean_daily"):  # detected, and named explicitly
        got = read_bars_file(variant, symbol="SPY", fmt=fmt)
        assert got.layout == "lean_daily" and got.interval == "1d"
        assert got.bars.drop("location", "raw", strict=False).equals(expected)
