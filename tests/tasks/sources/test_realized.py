"""Realized-library import: layout detection, column mapping, local dates, quarantine, file errors."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from repo_paths import TESTS

from core.errors import ConfigError, DataError
from core.schema import QUARANTINE_SCHEMA, REALIZED_SCHEMA
from core.symbols import validate_symbol
from tasks.sources.realized import OXFORDMAN_MEASURES, read_realized_file

DATA = TESTS / "data" / "realized"
OXFORD = DATA / "oxfordman_sample.csv"
SIMPLE = DATA / "simple_sample.csv"


def _raw_rows(path: Path) -> list[dict[str, str]]:
    """The fixture as the csv module reads it: an independent view of the same file."""
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _oxford_with(tmp_path: Path, *extra_lines: str) -> Path:
    """The Oxford-Man fixture with extra data lines appended (lines 14, 15, ...)."""
    return _write(tmp_path, "oxford.csv", OXFORD.read_text() + "".join(f"{ln}\n" for ln in extra_lines))


def _oxford_line(stamp: str, symbol: str, **values: str) -> str:
    """One Oxford-Man data line in the fixture's column order, from a template of plausible values."""
    header = OXFORD.read_text().splitlines()[0].split(",")
    template = {h: "1e-05" for h in OXFORDMAN_MEASURES}
    template.update(open_to_close="0.001", open_price="100.0", close_price="100.1", nobs="390.0")
    template.update(open_time="93000.0", close_time="160000.0")
    template.update(values)
    return ",".join([stamp, symbol, *[template[h] for h in header[2:]]])


# --- the Oxford-Man layout ---------------------------------------------------------------------------


def test_oxfordman_fixture_maps_every_column() -> None:
    result = read_realized_file(OXFORD)
    raw = _raw_rows(OXFORD)
    assert result.layout == "oxfordman"
    assert result.realized.schema == pl.Schema(REALIZED_SCHEMA)
    assert result.quarantine.height == 0
    assert result.rows_read == len(raw) == result.realized.height == 12
    assert result.symbols == [".AEX", ".SPX"]
    assert set(result.realized["source"]) == {"oxfordman"}

    by_key = {(r["symbol"], r["date"]): r for r in result.realized.iter_rows(named=True)}
    for row in raw:
        got = by_key[(row["Symbol"], date.fromisoformat(row[""][:10]))]
        assert got["rv"] == float(row["rv5"])
        assert got["bv"] == float(row["bv"])
        assert got["rk_parzen"] == float(row["rk_parzen"])
        assert got["medrv"] == float(row["medrv"])
        assert got["ret_oc"] == float(row["open_to_close"])  # open-to-close; ret is close-to-close
        assert got["ret"] is None
        assert got["close_price"] == float(row["close_price"])
        assert got["nobs"] == int(float(row["nobs"]))
        extra = json.loads(got["extra"])
        unmapped = set(OXFORDMAN_MEASURES) - {
            "rv5",
            "bv",
            "rk_parzen",
            "medrv",
            "open_to_close",
            "close_price",
            "nobs",
        }
        assert set(extra) == unmapped
        for name in unmapped:
            expected = float(row[name]) if row[name] else None
            assert extra[name] == expected, (row["Symbol"], row[""], name)


def test_realistic_magnitudes_and_ordering() -> None:
    frame = read_realized_file(OXFORD).realized
    assert frame.select(["symbol", "date"]).is_duplicated().sum() == 0
    assert frame.equals(frame.sort(["symbol", "date"]))
    # Daily variances of an index: 1e-6 .. 1e-2, and bipower below RV on every day of this sample.
    assert frame["rv"].min() > 1e-6 and frame["rv"].max() < 1e-2  # type: ignore[operator]
    assert (frame["bv"] <= frame["rv"]).all()


def test_date_is_the_local_calendar_date_not_the_utc_date() -> None:
    frame = read_realized_file(OXFORD).realized
    # '2020-01-06 00:00:00+01:00' is 2020-01-05 23:00 UTC: the row belongs to 2020-01-06.
    aex = frame.filter(pl.col("symbol") == ".AEX")["date"].to_list()
    assert aex[0] == date(2020, 1, 6)
    assert date(2020, 1, 5) not in aex
    # Summer offset (+02:00) and the US DST switch (-05:00 before 2020-03-08, -04:00 after).
    assert date(2020, 6, 2) in aex
    spx = frame.filter(pl.col("symbol") == ".SPX")["date"].to_list()
    assert spx[0] == date(2020, 1, 6) and spx[-1] == date(2020, 3, 9)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2020-01-06 00:00:00+09:00", date(2020, 1, 6)),  # Tokyo: UTC would say 01-05
        ("2020-01-06 23:30:00-05:00", date(2020, 1, 6)),  # late New York: UTC would say 01-07
        ("2020-01-06T00:00:00+0530", date(2020, 1, 6)),
        ("2020-01-06", date(2020, 1, 6)),
    ],
)
def test_stamp_variants_give_the_written_date(tmp_path: Path, stamp: str, expected: date) -> None:
    path = _write(
        tmp_path,
        "one.csv",
        OXFORD.read_text().splitlines()[0] + "\n" + _oxford_line(stamp, ".N225") + "\n",
    )
    result = read_realized_file(path)
    assert result.quarantine.height == 0
    assert result.realized["date"].to_list() == [expected]


def test_dotted_index_symbols_pass_validation() -> None:
    assert validate_symbol(".SPX") == ".SPX"
    assert validate_symbol(".AEX") == ".AEX"


def test_gzip_file_reads_the_same(tmp_path: Path) -> None:
    packed = tmp_path / "oxfordman_sample.csv.gz"
    packed.write_bytes(gzip.compress(OXFORD.read_bytes()))
    assert read_realized_file(packed).realized.equals(read_realized_file(OXFORD).realized)


def test_source_label_is_used(tmp_path: Path) -> None:
    frame = read_realized_file(OXFORD, source="oxfordman_2021").realized
    assert set(frame["source"]) == {"oxfordman_2021"}


def test_nan_in_a_secondary_measure_is_missing_not_quarantined(tmp_path: Path) -> None:
    path = _oxford_with(tmp_path, _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", bv="nan", rsv=""))
    result = read_realized_file(path)
    assert result.quarantine.height == 0
    row = result.realized.filter(pl.col("date") == date(2020, 2, 3)).row(0, named=True)
    assert row["bv"] is None
    assert json.loads(row["extra"])["rsv"] is None


def test_unknown_columns_numeric_kept_in_extra_text_ignored(tmp_path: Path) -> None:
    text = "date,symbol,rv,bv,ret,jump_share,comment\n"
    text += "2022-01-03,EURUSD,1.9e-05,1.7e-05,-0.0044,0.105,quiet\n"
    text += "2022-01-04,EURUSD,2.4e-05,,0.0009,,busy\n"
    result = read_realized_file(_write(tmp_path, "s.csv", text))
    assert result.layout == "simple"
    assert [json.loads(e) for e in result.realized["extra"]] == [{"jump_share": 0.105}, {"jump_share": None}]
    assert any("ignored non-numeric columns ['comment']" in n for n in result.notes)
    assert result.realized["bv"].to_list() == [1.7e-05, None]


# --- the simple layout -------------------------------------------------------------------------------


def test_simple_fixture_is_detected_and_mapped() -> None:
    result = read_realized_file(SIMPLE)
    raw = _raw_rows(SIMPLE)
    assert result.layout == "simple"
    assert result.realized.height == len(raw) == 8
    assert result.symbols == ["BTC-USD", "EURUSD"]
    first = result.realized.row(0, named=True)
    assert (first["symbol"], first["date"], first["rv"], first["bv"], first["ret"]) == (
        "BTC-USD",
        date(2022, 1, 3),
        0.000912,
        0.000804,
        -0.0189,
    )
    assert first["extra"] is None and first["nobs"] is None
    assert set(result.realized["source"]) == {"simple"}


def test_simple_minimal_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "min.csv", "symbol,rv,date\nBTC-USD,0.0009,2022-01-03\n")
    frame = read_realized_file(path).realized
    assert frame.select("symbol", "date", "rv").rows() == [("BTC-USD", date(2022, 1, 3), 0.0009)]
    assert frame["bv"].null_count() == 1


# --- bad rows: quarantined with file:line and a reason; the good rows all arrive -----------------------

BAD_ROWS = [
    pytest.param(
        _oxford_line("2020-13-45 00:00:00+01:00", ".AEX"), "unparseable date '2020-13-45", id="bad-date"
    ),
    pytest.param(_oxford_line("yesterday", ".AEX"), "unparseable date 'yesterday'", id="text-date"),
    pytest.param(
        _oxford_line("2020-02-03 25:00:00+01:00", ".AEX"), "unparseable date", id="bad-time-in-stamp"
    ),
    pytest.param(
        _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", rv5="-1.2e-05"), "negative rv5", id="neg-rv"
    ),
    pytest.param(_oxford_line("2020-02-03 00:00:00+01:00", ".AEX", rv5="nan"), "rv5 is NaN", id="nan-rv"),
    pytest.param(_oxford_line("2020-02-03 00:00:00+01:00", ".AEX", rv5="NaN"), "rv5 is NaN", id="NaN-rv"),
    pytest.param(_oxford_line("2020-02-03 00:00:00+01:00", ".AEX", rv5=""), "missing rv5", id="empty-rv"),
    pytest.param(
        _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", rv5="1x2e-5"),
        "unparseable rv5 value '1x2e-5'",
        id="garbage-rv",
    ),
    pytest.param(
        _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", bv="inf"), "infinite bv 'inf'", id="inf-bv"
    ),
    pytest.param(_oxford_line("2020-02-03 00:00:00+01:00", ".AEX", bv="-3e-05"), "negative bv", id="neg-bv"),
    pytest.param(
        _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", close_price="0"),
        "non-positive close_price",
        id="zero-px",
    ),
    pytest.param(
        _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", nobs="12.5"),
        "nobs '12.5' is not a non-negative whole number",
        id="frac-nobs",
    ),
    pytest.param(_oxford_line("2020-02-03 00:00:00+01:00", ""), "missing symbol", id="no-symbol"),
    pytest.param(
        _oxford_line("2020-02-03 00:00:00+01:00", "SPX'; DROP TABLE realized_daily;--"),
        'invalid symbol "SPX\'; DROP TABLE realized_daily;--"',
        id="sql-symbol",
    ),
    pytest.param(
        _oxford_line("2020-02-03 00:00:00+01:00", "../etc"), "invalid symbol '../etc'", id="path-symbol"
    ),
    pytest.param("2020-02-03 00:00:00+01:00,.AEX,1e-05,1e-05", "expected 20 fields, got 4", id="truncated"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_ROWS)
def test_bad_row_is_quarantined_and_good_rows_survive(tmp_path: Path, line: str, reason: str) -> None:
    path = _oxford_with(tmp_path, line)
    result = read_realized_file(path)
    assert result.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert result.quarantine.height == 1
    bad = result.quarantine.row(0, named=True)
    assert bad["location"] == f"{path}:14"
    assert reason in bad["reason"]
    assert bad["raw"] == line
    assert result.realized.equals(read_realized_file(OXFORD).realized)
    assert result.rows_read == result.realized.height + result.quarantine.height
    assert any("1 rows quarantined" in n for n in result.notes)


def test_duplicate_symbol_date_keeps_the_last_row(tmp_path: Path) -> None:
    path = _oxford_with(tmp_path, _oxford_line("2020-01-07 00:00:00+01:00", ".AEX", rv5="4.5e-05"))
    result = read_realized_file(path)
    assert result.realized.height == 12
    kept = result.realized.filter((pl.col("symbol") == ".AEX") & (pl.col("date") == date(2020, 1, 7)))
    assert kept["rv"].to_list() == [4.5e-05]
    assert result.quarantine.select("location", "reason").rows() == [
        (f"{path}:3", f"duplicate symbol and date, superseded by {path}:14")
    ]


def test_several_bad_rows_each_named(tmp_path: Path) -> None:
    path = _oxford_with(
        tmp_path,
        _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", rv5="-1e-05"),
        _oxford_line("2020-02-04 00:00:00+01:00", ".AEX"),
        _oxford_line("bad", ".AEX"),
    )
    result = read_realized_file(path)
    assert result.realized.height == 13
    assert sorted(result.quarantine["location"]) == [f"{path}:14", f"{path}:16"]


# --- whole-file problems: DataError / ConfigError naming the file or parameter --------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "file is empty", id="empty"),
        pytest.param(b"\n\n", "file is empty", id="blank-lines"),
        pytest.param(
            OXFORD.read_bytes().splitlines(keepends=True)[0], "header but no data rows", id="header-only"
        ),
        pytest.param(
            b"day,ticker,variance\n2020-01-02,SPX,1e-4\n", "cannot recognise a realized layout", id="unknown"
        ),
        pytest.param(
            b"date;symbol;rv\n2020-01-02;SPX;1e-4\n", "cannot recognise a realized layout", id="semicolons"
        ),
        pytest.param(
            b"date,symbol,rv,rv\n2020-01-02,SPX,1e-4,2e-4\n",
            r"names column\(s\) \['rv'\] more than once",
            id="repeat",
        ),
        pytest.param(bytes(range(256)) * 8, "binary", id="binary"),
        pytest.param("date,symbol,rv\n2020-01-02,SPX,1e-4\n".encode("utf-16"), "UTF-16", id="utf16"),
    ],
)
def test_unusable_file_raises_data_error_naming_it(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "realized.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_realized_file(path)
    assert str(path) in str(info.value)


def test_wrong_delimiter_in_rows_is_a_file_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "date,symbol,rv\n2020-01-02;SPX;1e-4\n2020-01-03;SPX;2e-4\n")
    with pytest.raises(DataError, match="Wrong delimiter") as info:
        read_realized_file(path)
    assert str(path) in str(info.value)


def test_explicit_format_missing_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"lacks column\(s\) \['date', 'symbol', 'rv'\]"):
        read_realized_file(OXFORD, fmt="simple")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['Symbol', 'rv5'\]"):
        read_realized_file(SIMPLE, fmt="oxfordman")


def test_bad_parameters_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown realized format 'csv'"):
        read_realized_file(OXFORD, fmt="csv")
    with pytest.raises(ConfigError, match="source must be a non-empty string"):
        read_realized_file(OXFORD, source=" ")
    with pytest.raises(DataError, match="file not found"):
        read_realized_file(tmp_path / "missing.csv")


def test_all_rows_bad_gives_empty_frame_and_full_quarantine(tmp_path: Path) -> None:
    text = "date,symbol,rv\n2020-01-02,SPX,-1\n2020-01-03,SPX,nan\n"
    result = read_realized_file(_write(tmp_path, "r.csv", text))
    assert result.realized.height == 0
    assert result.realized.schema == pl.Schema(REALIZED_SCHEMA)
    assert result.quarantine["reason"].to_list() == ["negative rv '-1'", "rv is NaN"]
    assert result.rows_read == 2
