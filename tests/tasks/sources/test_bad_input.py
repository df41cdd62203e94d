"""Bad input to the bar-file reader: each case gets a specific outcome, and the good rows still arrive.

A file-level problem raises :class:`DataError` (or :class:`ConfigError` for a bad parameter) whose
message names the file, line or parameter. A row-level problem quarantines that row with
``file:line`` and a reason, and every other row is read as usual.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.schema import BAR_SCHEMA, QUARANTINE_SCHEMA
from tasks.sources.files import ParseResult, read_bars_file
from tasks.sources.layouts import generic_layout

FTX_HEADER = "timestamp,open,high,low,close,volume"
# Five clean one-minute bars (lines 2-6 of a file with a header).
GOOD = [
    "2022-01-03 00:00:00,100.0,101.0,99.5,100.5,12.0",
    "2022-01-03 00:01:00,100.5,100.9,100.1,100.2,8.0",
    "2022-01-03 00:02:00,100.2,100.4,99.8,99.9,5.5",
    "2022-01-03 00:03:00,99.9,100.3,99.7,100.1,7.0",
    "2022-01-03 00:04:00,100.1,100.6,100.0,100.4,9.5",
]


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


GOOD_TS = [_utc(2022, 1, 3, 0, m) for m in range(5)]


def _file(tmp_path: Path, lines: list[str], name: str = "bars.csv", *, eol: str = "\n") -> Path:
    path = tmp_path / name
    path.write_text(eol.join(lines) + eol)
    return path


def _read(path: Path, **kwargs: object) -> ParseResult:
    return read_bars_file(path, symbol="BTC-USD", **kwargs)  # type: ignore[arg-type]


def _quarantined(result: ParseResult) -> list[tuple[str, str]]:
    return sorted(result.quarantine.select("location", "reason").iter_rows())


def _assert_sane(result: ParseResult) -> None:
    """The frames keep their schemas, and no line disappears between bars and quarantine."""
    assert result.bars.schema == pl.Schema(BAR_SCHEMA)
    assert result.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert result.bars["ts"].is_sorted() and result.bars["ts"].n_unique() == result.bars.height


# --- whole-file problems ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [None, "ftx", "histdata"])
def test_empty_file(tmp_path: Path, fmt: str | None) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="file is empty") as info:
        _read(path, fmt=fmt)
    assert str(info.value).startswith(str(path))


def test_blank_lines_only(tmp_path: Path) -> None:
    path = _file(tmp_path, ["", "   ", ""])
    with pytest.raises(DataError, match=f"{path}: file is empty"):
        _read(path)


@pytest.mark.parametrize("fmt", [None, "ftx"])
def test_header_only_file(tmp_path: Path, fmt: str | None) -> None:
    path = _file(tmp_path, [FTX_HEADER])
    with pytest.raises(DataError, match=f"{path}: file has a header but no data rows"):
        _read(path, fmt=fmt)


def test_wrong_delimiter_detected_format(tmp_path: Path) -> None:
    path = _file(tmp_path, [FTX_HEADER.replace(",", ";")] + [g.replace(",", ";") for g in GOOD])
    with pytest.raises(DataError, match="cannot recognise the format from the first line") as info:
        _read(path)
    assert str(path) in str(info.value)


def test_wrong_delimiter_named_format_with_header(tmp_path: Path) -> None:
    path = _file(tmp_path, [FTX_HEADER.replace(",", "\t")] + [g.replace(",", "\t") for g in GOOD])
    with pytest.raises(DataError, match=r"required by format 'ftx'.*delimiter ','") as info:
        _read(path, fmt="ftx")
    assert f"{path}:1" in str(info.value)


def test_wrong_delimiter_headerless_format(tmp_path: Path) -> None:
    path = _file(tmp_path, ["20170102 020000,1.05155,1.05197,1.05155,1.0519,0"] * 3)
    with pytest.raises(DataError, match="no row has 6 fields separated by ';'.*Wrong delimiter") as info:
        _read(path, fmt="histdata")
    assert str(path) in str(info.value)


def test_unknown_extra_columns_are_ignored_and_noted(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        [FTX_HEADER + ",trades,venue"] + [g + f",{i * 10},FTX" for i, g in enumerate(GOOD)],
    )
    result = _read(path)
    _assert_sane(result)
    assert result.layout == "ftx"
    assert "ignored unknown columns ['trades', 'venue']" in result.notes
    assert result.bars["ts"].to_list() == GOOD_TS
    assert result.bars["close"].to_list() == [100.5, 100.2, 99.9, 100.1, 100.4]
    assert result.quarantine.height == 0


def test_extra_columns_named_like_reader_internals(tmp_path: Path) -> None:
    # Regression (fuzzer): a header naming 'raw' or 'line', or repeating an unused column, crashed
    # polars with DuplicateError.
    path = _file(tmp_path, [FTX_HEADER + ",raw,line,x,x"] + [g + ",a,b,c,d" for g in GOOD])
    result = _read(path, fmt="ftx")
    assert result.bars["ts"].to_list() == GOOD_TS
    assert "ignored unknown columns ['raw', 'line', 'x', 'x']" in result.notes


def test_lowercase_open_next_to_yahoo_open(tmp_path: Path) -> None:
    # Regression (fuzzer): an unused 'open' column collided with Yahoo's 'Open' -> 'open' rename.
    path = _file(
        tmp_path,
        [
            "Date,Open,High,Low,Close,Adj Close,Volume,open",
            "1/4/1999,10,11,9,10.5,10.5,100,999",
            "1/5/1999,10.5,12,10,11,11,100,999",
        ],
    )
    result = _read(path)
    assert result.layout == "yahoo_csv"
    assert result.bars["open"].to_list() == [10.0, 10.5]
    assert "ignored unknown columns ['open']" in result.notes


def test_repeated_required_column(tmp_path: Path) -> None:
    path = _file(tmp_path, [FTX_HEADER + ",close"] + [g + ",1" for g in GOOD])
    with pytest.raises(DataError, match=r"names column\(s\) \['close'\] more than once") as info:
        _read(path, fmt="ftx")
    assert f"{path}:1" in str(info.value)


def test_missing_required_columns_are_named(tmp_path: Path) -> None:
    header = "timestamp,open,high,close"
    path = _file(tmp_path, [header] + [",".join(g.split(",")[:3] + [g.split(",")[4]]) for g in GOOD])
    with pytest.raises(
        DataError, match=r"lacks column\(s\) \['low', 'volume'\] required by format 'ftx'"
    ) as info:
        _read(path, fmt="ftx")
    assert f"{path}:1" in str(info.value)


def test_missing_mapped_column_of_generic_layout(tmp_path: Path) -> None:
    path = _file(tmp_path, ["time,o,h,l,c"] + GOOD)
    layout = generic_layout(ts_column="time", tz="UTC", column_map={"open": "o", "high": "h", "low": "lo"})
    with pytest.raises(DataError, match=r"lacks column\(s\) \['lo', 'close'\]"):
        _read(path, fmt=layout)


def test_generic_layout_volume_is_not_called_unknown(tmp_path: Path) -> None:
    # Regression: generic_layout's optional volume column was used *and* reported as ignored.
    path = _file(tmp_path, ["time,o,h,l,c,volume"] + GOOD)
    layout = generic_layout(
        ts_column="time", tz="UTC", column_map={"open": "o", "high": "h", "low": "l", "close": "c"}
    )
    result = _read(path, fmt=layout)
    assert result.bars["volume"].to_list() == [12.0, 8.0, 5.5, 7.0, 9.5]
    assert not any("unknown columns" in n for n in result.notes)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(bytes(range(256)) * 16, "file looks binary", id="binary-garbage"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(200), "file looks binary", id="png-header"),
        pytest.param(
            ("\n".join([FTX_HEADER, *GOOD]) + "\n").encode("utf-16"), "UTF-16 encoded", id="utf16-bom"
        ),
        pytest.param(
            ("\n".join([FTX_HEADER, *GOOD]) + "\n").encode("utf-16-be"), "binary", id="utf16-no-bom"
        ),
        pytest.param(
            ("\n".join([FTX_HEADER, *GOOD]) + "\n").encode() + b"\xe9t\xe9\n" + b"\n" * 8,
            r"not UTF-8 text \(byte",
            id="latin1",
        ),
    ],
)
def test_binary_and_wrong_encoding(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        _read(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(60)), id="corrupt-deflate"),
        pytest.param(gzip.compress(("\n".join([FTX_HEADER, *GOOD])).encode())[:25], id="truncated-gzip"),
        pytest.param(b"timestamp,open\n", id="not-gzip"),
    ],
)
def test_broken_gzip(tmp_path: Path, content: bytes) -> None:
    # Regression (fuzzer): corrupt deflate data raised zlib.error, which is not an OSError.
    path = tmp_path / "bars.csv.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot (read|decompress) file") as info:
        _read(path)
    assert str(info.value).startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        _read(tmp_path / "nope.csv")


# --- bad parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["BTC'; DROP TABLE bars;--", "../etc", "a/b", "", "BTC USD", "x" * 33])
def test_symbol_with_sql_or_path_characters(tmp_path: Path, symbol: str) -> None:
    path = _file(tmp_path, [FTX_HEADER, *GOOD])
    with pytest.raises(ConfigError, match="invalid symbol") as info:
        read_bars_file(path, symbol=symbol)
    assert repr(symbol) in str(info.value)


def test_unknown_format_and_interval(tmp_path: Path) -> None:
    path = _file(tmp_path, [FTX_HEADER, *GOOD])
    with pytest.raises(ConfigError, match="unknown format 'csv'"):
        _read(path, fmt="csv")
    with pytest.raises(ConfigError, match="interval '2m'"):
        _read(path, interval="2m")


# --- row-level problems: quarantined with file:line, the rest arrives ---------------------------------


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        pytest.param(
            "2022-01-03 00:0x:00,1,2,0.5,1.5,1", "unparseable timestamp '2022-01-03 00:0x:00'", id="ts"
        ),
        pytest.param(
            "03/01/2022 00:05,1,2,0.5,1.5,1", "unparseable timestamp '03/01/2022 00:05'", id="ts-us"
        ),
        pytest.param(",100,101,99,100,1", "unparseable timestamp ''", id="ts-empty"),
        pytest.param("2022-01-03 00:05:00,NaN,101,99,100,1", "NaN or infinite price", id="nan-open"),
        pytest.param("2022-01-03 00:05:00,100,inf,99,100,1", "NaN or infinite price", id="inf-high"),
        pytest.param("2022-01-03 00:05:00,100,101,99,,1", "missing price", id="empty-close"),
        pytest.param("2022-01-03 00:05:00,100,101,abc,100,1", "missing price", id="text-low"),
        pytest.param("2022-01-03 00:05:00,0,101,0,100,1", "zero or negative price", id="zero"),
        pytest.param("2022-01-03 00:05:00,100,101,-99,100,1", "zero or negative price", id="negative"),
        pytest.param("2022-01-03 00:05:00,100,99,101,100,1", "high < low", id="high-below-low"),
        pytest.param(
            "2022-01-03 00:05:00,102,101,99,100,1", "open or close outside [low, high]", id="open-above"
        ),
        pytest.param(
            "2022-01-03 00:05:00,100,101,99,98,1", "open or close outside [low, high]", id="close-below"
        ),
        pytest.param("2022-01-03 00:05:00,100,101,99,100,-5", "negative volume", id="neg-volume"),
        pytest.param("2022-01-03 00:05:00,1e300,1e300,1e300,1e300,1", "price above sanity limit", id="huge"),
        pytest.param("1969-12-31 23:59:00,100,101,99,100,1", "timestamp before 1970", id="pre-1970"),
        pytest.param("2022-01-03 00:05:00,100,101,99", "expected 6 fields, got 4", id="short-line"),
        pytest.param("2022-01-03 00:05:00,100,101,99,100,1,7", "expected 6 fields, got 7", id="long-line"),
    ],
)
def test_bad_row_is_quarantined_with_its_line(tmp_path: Path, bad_line: str, reason: str) -> None:
    lines = [FTX_HEADER, *GOOD[:2], bad_line, *GOOD[2:]]  # the bad row is line 4
    path = _file(tmp_path, lines)
    result = _read(path)
    _assert_sane(result)
    assert result.quarantine.height == 1
    got = result.quarantine.row(0, named=True)
    assert got["location"] == f"{path}:4"
    assert reason in got["reason"]
    assert got["raw"] == bad_line
    assert result.bars["ts"].to_list() == GOOD_TS
    assert result.interval == "1m"
    assert any("1 rows quarantined" in n for n in result.notes)


def test_duplicate_timestamps_keep_the_last(tmp_path: Path) -> None:
    revised = "2022-01-03 00:01:00,100.5,101.5,100.1,101.2,20.0"
    path = _file(tmp_path, [FTX_HEADER, *GOOD[:3], revised, *GOOD[3:]])  # duplicate at line 5 of line 3
    result = _read(path)
    _assert_sane(result)
    assert result.bars["ts"].to_list() == GOOD_TS
    kept = result.bars.filter(pl.col("ts") == GOOD_TS[1]).row(0, named=True)
    assert (kept["close"], kept["volume"]) == (101.2, 20.0)
    assert _quarantined(result) == [(f"{path}:3", f"duplicate timestamp, superseded by {path}:5")]
    assert "1 duplicate timestamps: the last row of each was kept" in result.notes


def test_out_of_order_rows_are_sorted_and_noted(tmp_path: Path) -> None:
    path = _file(tmp_path, [FTX_HEADER, GOOD[3], GOOD[0], GOOD[4], GOOD[1], GOOD[2]])
    result = _read(path)
    _assert_sane(result)
    assert result.bars["ts"].to_list() == GOOD_TS
    assert result.bars["close"].to_list() == [100.5, 100.2, 99.9, 100.1, 100.4]
    assert result.quarantine.height == 0
    assert "2 rows were out of time order and have been sorted" in result.notes


def test_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join([FTX_HEADER, *GOOD, "2022-01-03 00:05:00,100.4,100."]))  # no newline at EOF
    result = _read(path)
    _assert_sane(result)
    assert _quarantined(result) == [(f"{path}:7", "expected 6 fields, got 3 (truncated or malformed line)")]
    assert result.bars["ts"].to_list() == GOOD_TS


def test_truncated_last_line_headerless(tmp_path: Path) -> None:
    lines = [
        "20170102 020000;1.051550;1.051970;1.051550;1.051900;0",
        "20170102 020100;1.052090;1.052090;1.051770;1.051790;0",
        "20170102 020200;1.051770;1.051980;1.051770;1.051780;0",
        "20170102 0203",
    ]
    path = tmp_path / "DAT_ASCII_EURUSD_M1_201701.csv"
    path.write_text("\r\n".join(lines))  # Windows line ends, cut mid-stamp
    result = _read(path)
    assert result.layout == "histdata"
    assert _quarantined(result) == [(f"{path}:4", "expected 6 fields, got 1 (truncated or malformed line)")]
    assert result.bars["ts"].to_list() == [_utc(2017, 1, 2, 7, m) for m in range(3)]


# --- local time: DST gap and overlap ------------------------------------------------------------------

LEAN_HEADER = "time_et_barstart,open,high,low,close,volume"


def test_dst_gap_and_overlap_lean_equity(tmp_path: Path) -> None:
    lines = [
        LEAN_HEADER,
        "2017-03-12 01:00,10,11,9,10,1",  # EST
        "2017-03-12 02:30,10,11,9,10,1",  # line 3: skipped by the spring-forward gap
        "2017-03-12 03:00,10,11,9,10,1",  # EDT
        "2017-11-05 00:00,10,11,9,10,1",  # EDT
        "2017-11-05 01:30,10,11,9,10,1",  # line 6: happens twice at fall-back
        "2017-11-05 02:00,10,11,9,10,1",  # EST
    ]
    path = _file(tmp_path, lines)
    result = _read(path, interval="1h")
    _assert_sane(result)
    assert result.layout == "lean_equity"
    assert _quarantined(result) == [
        (f"{path}:3", "local time 2017-03-12 02:30 does not exist in America/New_York (DST gap)"),
        (f"{path}:6", "local time 2017-11-05 01:30 is ambiguous in America/New_York (DST overlap)"),
    ]
    assert result.bars["ts"].to_list() == [
        _utc(2017, 3, 12, 6),
        _utc(2017, 3, 12, 7),
        _utc(2017, 11, 5, 4),
        _utc(2017, 11, 5, 7),
    ]


def test_dst_gap_and_overlap_generic_minutes(tmp_path: Path) -> None:
    def row(stamp: str) -> str:
        return f"{stamp},1.10,1.11,1.09,1.10,3"

    lines = ["Time,open,high,low,close,volume"]
    lines += [row(f"2017-03-12 01:5{m}:00") for m in range(8)]  # lines 2-9, EST
    lines += [row("2017-03-12 02:30:00")]  # line 10: gap
    lines += [row(f"2017-11-05 00:5{m}:00") for m in range(3)]  # lines 11-13, EDT
    lines += [row("2017-11-05 01:30:00")]  # line 14: overlap
    path = _file(tmp_path, lines)
    layout = generic_layout(ts_column="Time", tz="America/New_York")
    result = _read(path, fmt=layout)
    _assert_sane(result)
    assert result.interval == "1m"
    assert [loc for loc, _ in _quarantined(result)] == [f"{path}:10", f"{path}:14"]
    reasons = [r for _, r in _quarantined(result)]
    assert "does not exist in America/New_York (DST gap)" in reasons[0]
    assert "is ambiguous in America/New_York (DST overlap)" in reasons[1]
    assert result.bars.height == 11
    assert result.bars["ts"][0] == _utc(2017, 3, 12, 6, 50)
    assert result.bars["ts"][-1] == _utc(2017, 11, 5, 4, 52)


def test_offset_stamps_are_instants_not_local_times(tmp_path: Path) -> None:
    # Regression: ISO stamps with an offset (or Z) were all quarantined as unparseable, and polars'
    # format inference from the first row made every row in another ISO shape unparseable too.
    lines = [
        FTX_HEADER,
        "2022-01-03T00:00:00Z,100,101,99,100,1",
        "2022-01-03 01:01:00+01:00,100,101,99,100,1",
        "2022-01-03T00:02:00.000000,100,101,99,100,1",
        "2022-01-02T19:03:00-05:00,100,101,99,100,1",
        "2022-01-03 00:04:00,100,101,99,100,1",
    ]
    path = _file(tmp_path, lines)
    result = _read(path)
    _assert_sane(result)
    assert result.quarantine.height == 0
    assert result.bars["ts"].to_list() == GOOD_TS


def test_everything_bad_still_reports_every_line(tmp_path: Path) -> None:
    lines = [FTX_HEADER, "x,1,2,3,4,5", "2022-01-03 00:00:00,5,4,3,2,1", "2022-01-03 00:01:00,1,2"]
    path = _file(tmp_path, lines)
    result = _read(path)
    assert result.bars.height == 0
    assert [loc for loc, _ in _quarantined(result)] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_generic_parquet_with_a_column_map_and_time_zone(tmp_path: Path) -> None:
    """Generic Parquet: tz-aware and naive stamps, a column map, and a DST gap in local time."""
    from datetime import datetime as dt

    from tasks.sources.files import read_bars_file
    from tasks.sources.layouts import generic_from_params

    naive = pl.DataFrame(
        {
            "Time": [
                dt(2017, 3, 12, 1, 0),
                dt(2017, 3, 12, 2, 30),
                dt(2017, 3, 12, 3, 0),
                dt(2017, 3, 12, 4, 0),
            ],
            "O": [10.0, 10.0, 10.0, 11.0],
            "H": [11.0, 11.0, 11.0, 12.0],
            "L": [9.0, 9.0, 9.0, 10.0],
            "C": [10.5, 10.5, 10.5, 11.5],
            "extra": ["a", "b", "c", "d"],
        }
    )
    path = tmp_path / "bars.parquet"
    naive.write_parquet(path)
    layout = generic_from_params(
        {
            "ts_column": "Time",
            "tz": "America/New_York",
            "interval": "1h",
            "column_map": {"open": "O", "high": "H", "low": "L", "close": "C"},
        }
    )
    result = read_bars_file(path, symbol="SPY", fmt=layout)
    # 02:30 does not exist on 2017-03-12 in New York: quarantined with the row number; the rest arrive.
    assert result.bars.height == 3
    assert result.bars["ts"][0] == dt(2017, 3, 12, 6, 0, tzinfo=UTC)
    assert result.quarantine["location"].to_list() == [f"{path}:2"]
    assert "DST gap" in result.quarantine["reason"][0]
    assert any("extra" in n for n in result.notes)

    aware = naive.head(1).with_columns(pl.col("Time").dt.replace_time_zone("Europe/Berlin"))
    aware_path = tmp_path / "aware.parquet"
    aware.write_parquet(aware_path)
    one = read_bars_file(aware_path, symbol="SPY", fmt=layout, interval="1h")
    assert one.bars["ts"][0] == dt(2017, 3, 12, 0, 0, tzinfo=UTC)  # 01:00 Berlin = 00:00 UTC


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tz": "UTC"}, "ts_column"),
        ({"ts_column": "t"}, "'tz'"),
        ({"ts_column": "t", "tz": "Mars/Olympus"}, "not an IANA time zone"),
        ({"ts_column": "t", "tz": "UTC", "bogus": 1}, "unknown parameter"),
        ({"ts_column": "t", "tz": "UTC", "column_map": {"price": "p"}}, "column_map keys"),
    ],
)
def test_generic_format_parameters_are_checked(params: dict, message: str) -> None:
    from tasks.sources.layouts import generic_from_params

    with pytest.raises(ConfigError, match=message):
        generic_from_params(params)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    from tasks.sources.files import read_bars_file

    path = tmp_path / "fake.parquet"
    path.write_text("time,open\n")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_bars_file(path, symbol="SPY")
