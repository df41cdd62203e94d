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
        assert got["rs_neg"] == float(row["rsv"])  # downside semivariance
        assert got["rs_pos"] == max(float(row["rv5"]) - float(row["rsv"]), 0.0)
        assert got["rq"] is None  # the library has no quarticity
        assert got["ret"] is None
        assert got["close_price"] == float(row["close_price"])
        assert got["nobs"] == int(float(row["nobs"]))
        extra = json.loads(got["extra"])
        unmapped = set(OXFORDMAN_MEASURES) - {
            "rv5",
            "bv",
            "rk_parzen",
            "medrv",
            "rsv",
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
    assert row["rs_neg"] is None and row["rs_pos"] is None


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


# --- the simple layout's columns: date,symbol,rv[,bv][,rq][,rs_pos,rs_neg][,rk][,ret] ------------------

MEASURES = DATA / "simple_measures.csv"  # measures computed from the bundled SPY and BTC hourly bars
_VARIANCE_COLUMNS = ["rv", "bv", "rs_pos", "rs_neg", "rk"]


def _clean() -> pl.DataFrame:
    return pl.read_csv(MEASURES)


def _write_frame(tmp_path: Path, frame: pl.DataFrame, name: str = "measures.csv") -> Path:
    path = tmp_path / name
    frame.write_csv(path)
    return path


def test_full_simple_fixture_maps_every_column() -> None:
    result = read_realized_file(MEASURES)
    raw = _raw_rows(MEASURES)
    assert result.layout == "simple" and result.quarantine.height == 0
    assert result.realized.height == len(raw) == 156
    assert result.symbols == ["BTC-USDT", "SPY"]
    by_key = {(r["symbol"], r["date"]): r for r in result.realized.iter_rows(named=True)}
    for row in raw:
        got = by_key[(row["symbol"], date.fromisoformat(row["date"]))]
        for column in ("rv", "bv", "rq", "rs_pos", "rs_neg", "ret"):
            assert got[column] == float(row[column]), (row, column)
        assert got["rk_parzen"] == float(row["rk"])  # 'rk' is the realized kernel
        assert got["extra"] is None and got["ret_oc"] is None


@pytest.mark.parametrize(
    "columns",
    [
        ["rv"],
        ["rv", "bv"],
        ["rv", "rq"],
        ["rv", "rs_pos", "rs_neg"],
        ["rv", "rk"],
        ["rv", "ret"],
        ["rv", "bv", "rq", "rs_pos", "rs_neg", "rk", "ret"],
    ],
    ids=lambda c: "+".join(c),
)
def test_each_simple_column_variant(tmp_path: Path, columns: list[str]) -> None:
    source = _clean().select("date", "symbol", *columns)
    frame = read_realized_file(_write_frame(tmp_path, source)).realized
    target = {"rk": "rk_parzen"}
    for column in ("rv", "bv", "rq", "rs_pos", "rs_neg", "rk", "ret"):
        got = frame[target.get(column, column)]
        if column in columns:
            assert got.to_list() == source.sort("symbol", "date")[column].to_list()
        else:
            assert got.null_count() == frame.height, column


def test_rk_and_rk_parzen_together_is_a_file_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "date,symbol,rv,rk,rk_parzen\n2022-01-03,SPY,1e-4,1e-4,1e-4\n")
    with pytest.raises(DataError, match="names the same measure twice") as info:
        read_realized_file(path)
    assert f"{path}:1" in str(info.value)


@pytest.mark.parametrize(("have", "lack"), [("rs_pos", "rs_neg"), ("rs_neg", "rs_pos")])
def test_semivariances_come_as_a_pair(tmp_path: Path, have: str, lack: str) -> None:
    path = _write_frame(tmp_path, _clean().select("date", "symbol", "rv", have))
    with pytest.raises(DataError, match=f"has {have} but not {lack}: .* come as a pair") as info:
        read_realized_file(path)
    assert str(info.value).startswith(f"{path}:1: ")


@pytest.mark.parametrize("column", ["rq", "rs_pos", "rs_neg"])
def test_negative_quarticity_or_semivariance_is_quarantined(tmp_path: Path, column: str) -> None:
    text = "date,symbol,rv,rq,rs_pos,rs_neg\n2022-01-03,SPY,1e-4,2e-8,4e-5,6e-5\n"
    bad = {"rq": "2022-01-04,SPY,1e-4,-2e-8,4e-5,6e-5", "rs_pos": "2022-01-04,SPY,1e-4,2e-8,-4e-5,6e-5"}
    bad["rs_neg"] = "2022-01-04,SPY,1e-4,2e-8,4e-5,-6e-5"
    path = _write(tmp_path, "r.csv", text + bad[column] + "\n")
    result = read_realized_file(path)
    assert result.realized["date"].to_list() == [date(2022, 1, 3)]
    assert result.quarantine.select("location", "raw").rows() == [(f"{path}:3", bad[column])]
    assert result.quarantine["reason"][0].startswith(f"negative {column} '-")


# --- Oxford-Man semivariances ---------------------------------------------------------------------------


def test_oxfordman_rsv_is_the_downside_and_the_upside_is_the_rest(tmp_path: Path) -> None:
    path = _oxford_with(
        tmp_path,
        _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", rv5="5e-05", rsv="2e-05"),
        _oxford_line("2020-02-04 00:00:00+01:00", ".AEX", rv5="5e-05", rsv="5.1e-05"),  # rounding: above rv5
        _oxford_line("2020-02-05 00:00:00+01:00", ".AEX", rsv="-1e-05"),
    )
    result = read_realized_file(path)
    february = pl.col("date").is_between(date(2020, 2, 3), date(2020, 2, 5))
    rows = result.realized.filter(february).select("rs_pos", "rs_neg").rows()
    assert rows == [(pytest.approx(3e-05), 2e-05), (0.0, 5.1e-05)]
    assert result.quarantine.select("location", "reason").rows() == [(f"{path}:16", "negative rsv '-1e-05'")]


# --- units: decimal variance of daily log returns, or the whole file is refused --------------------------


def test_clean_decimal_file_is_accepted() -> None:
    result = read_realized_file(MEASURES)
    medians = result.realized.group_by("symbol").agg(pl.col("rv").median()).sort("symbol")
    assert medians["rv"].to_list() == [pytest.approx(4.4e-4, rel=0.05), pytest.approx(1.2e-5, rel=0.1)]


def test_percent_squared_rv_is_refused_with_the_factors(tmp_path: Path) -> None:
    scaled = _clean().with_columns([pl.col(c) * 1e4 for c in _VARIANCE_COLUMNS] + [pl.col("rq") * 1e8])
    path = _write_frame(tmp_path, scaled)
    with pytest.raises(DataError) as info:
        read_realized_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: symbol BTC-USDT: median rv is 4.4, which looks like percent squared")
    assert "(4.4 %^2 = 0.00044 decimal)" in message
    assert "multiply rv, bv, rs_pos, rs_neg, rk by 1e-4 and rq (quarticity) by 1e-8" in message
    assert "ret" not in message.split("1e-8")[1].split(";")[0]  # the returns are fine
    assert "nothing of this file was imported (1 more symbol(s) alike: SPY)" in message
    assert "\n" not in message


def test_one_bad_symbol_refuses_the_whole_file(tmp_path: Path) -> None:
    clean = _clean()
    mixed = clean.with_columns(
        pl.when(pl.col("symbol") == "SPY").then(pl.col("rv") * 1e4).otherwise(pl.col("rv")).alias("rv")
    )
    with pytest.raises(
        DataError, match=r"symbol SPY: median rv is 0\.12.*; nothing of this file was imported$"
    ):
        read_realized_file(_write_frame(tmp_path, mixed))


def test_oxfordman_percent_squared_names_the_file_columns(tmp_path: Path) -> None:
    header, *rows = OXFORD.read_text().splitlines()
    names = header.split(",")
    scaled = []
    for row in rows:
        cells = row.split(",")
        for i, name in enumerate(names):
            if name in {"rv5", "bv", "rk_parzen", "medrv", "rsv"} and cells[i]:
                cells[i] = repr(float(cells[i]) * 1e4)
        scaled.append(",".join(cells))
    path = _write(tmp_path, "oxford_pct.csv", "\n".join([header, *scaled]) + "\n")
    with pytest.raises(
        DataError,
        match=r"symbol \.AEX: median rv5 is 0\.487, .* multiply rv5, bv, rsv, rk_parzen, medrv by 1e-4;",
    ):
        read_realized_file(path)


def test_percent_returns_are_refused(tmp_path: Path) -> None:
    path = _write_frame(tmp_path, _clean().with_columns(pl.col("ret") * 100))
    with pytest.raises(DataError) as info:
        read_realized_file(path)
    message = str(info.value)
    assert (
        "symbol BTC-USDT: median |ret| is 1.32, which looks like percent returns (1.32% = 0.0132)" in message
    )
    assert "multiply ret by 0.01" in message and "rv" not in message.split("0.01")[1].split(";")[0]


def test_percent_open_to_close_is_refused(tmp_path: Path) -> None:
    line = _oxford_line("2020-02-03 00:00:00+01:00", ".AEX", open_to_close="1.5")
    path = _write(tmp_path, "oc.csv", OXFORD.read_text().splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(DataError, match=r"median \|open_to_close\| is 1\.5.*multiply open_to_close by 0\.01"):
        read_realized_file(path)


def test_percent_squared_and_percent_returns_of_a_calm_symbol(tmp_path: Path) -> None:
    # Half SPY's moves, both in percent: |ret| stays under 0.2 but rv and ret agree, so both are named.
    calm = _clean().filter(pl.col("symbol") == "SPY")
    calm = calm.with_columns(pl.col("rv") * 1e4 / 4, pl.col("ret") * 50).select("date", "symbol", "rv", "ret")
    with pytest.raises(DataError, match=r"multiply rv by 1e-4, and ret by 0\.01 \(they agree with rv"):
        read_realized_file(_write_frame(tmp_path, calm))


@pytest.mark.parametrize("symbol", ["SPY", "BTC-USDT"])
def test_rv_given_as_volatility_is_refused(tmp_path: Path, symbol: str) -> None:
    # SPY's volatility (median 0.35%) is under the 1e-2 bound; BTC's (2.1%) is over it: both are named
    # volatility, not percent squared, from mean(rv) / mean(ret**2) (about 1 for variances).
    vols = (
        _clean().filter(pl.col("symbol") == symbol).with_columns(pl.col(c).sqrt() for c in _VARIANCE_COLUMNS)
    )
    with pytest.raises(DataError) as info:
        read_realized_file(_write_frame(tmp_path, vols))
    message = str(info.value)
    assert f"symbol {symbol}: mean rv is" in message
    assert "which looks like volatility (the square root of variance)" in message
    assert "square rv, bv, rs_pos, rs_neg, rk" in message and "percent" not in message


def test_short_or_stale_returns_do_not_trigger_the_volatility_check(tmp_path: Path) -> None:
    # Decimal variances with returns that are mostly 0 (stale closes) on few days: no ratio is trusted.
    spy = _clean().filter(pl.col("symbol") == "SPY").head(10).with_columns(pl.lit(0.0).alias("ret"))
    assert read_realized_file(_write_frame(tmp_path, spy)).realized.height == 10


def test_a_single_crash_day_in_decimals_is_accepted(tmp_path: Path) -> None:
    # 2008-10-13 style: rv 5e-3 (7% daily volatility), ret +11%: large, but decimal.
    path = _write(tmp_path, "crash.csv", "date,symbol,rv,ret\n2008-10-13,.SPX,0.005,0.1096\n")
    assert read_realized_file(path).realized["rv"].to_list() == [0.005]
