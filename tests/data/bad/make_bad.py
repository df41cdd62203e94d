"""Regenerate the bad-input corpus and its manifest: ``python tests/data/bad/make_bad.py``.

Every file is small and hand-made (no third-party data). ``EXPECTED.json`` gives each file's expected
outcome: ``error`` (the exception type and a substring of its message) or ``quarantine`` (a substring of
the quarantine reason, and how many good bars still arrive). The 2 GB sparse file is not here: the test
creates it in a temporary folder with ``truncate``.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
FTX = "timestamp,open,high,low,close,volume"
GOOD = [
    "2022-01-03 00:00:00,100.0,101.0,99.5,100.5,12.0",
    "2022-01-03 00:01:00,100.5,100.9,100.1,100.2,8.0",
    "2022-01-03 00:02:00,100.2,100.4,99.8,99.9,5.5",
    "2022-01-03 00:03:00,99.9,100.3,99.7,100.1,7.0",
]
INJECTION = "=cmd|' /C calc'!A0"


def ftx(*rows: str) -> bytes:
    return ("\n".join([FTX, *GOOD, *rows]) + "\n").encode()


def quarantine(reason: str, bars: int = len(GOOD), fmt: str | None = "ftx") -> dict[str, object]:
    return {"outcome": "quarantine", "reason": reason, "bars": bars, "format": fmt}


def error(kind: str, match: str, fmt: str | None = None, **extra: object) -> dict[str, object]:
    return {"outcome": "error", "error": kind, "match": match, "format": fmt, **extra}


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def cases() -> dict[str, tuple[bytes, dict[str, object], str]]:
    hourly = [f"2022-01-03 {h:02d}:00:00,100,101,99,100,1" for h in range(1, 9)]
    minutes = [f"2022-01-04 00:{m:02d}:00,100,101,99,100,1" for m in range(8)]
    gz = gzip.compress(ftx())
    return {
        # --- whole-file problems: refused with a DataError/ConfigError naming the file
        "empty.csv": (b"", error("DataError", "file is empty"), "empty file"),
        "blank_lines.csv": (b"\n \n\t\n\n", error("DataError", "empty"), "blank lines only"),
        "header_only.csv": (
            (FTX + "\n").encode(),
            error("DataError", "header but no data rows", "ftx"),
            "header only",
        ),
        "wrong_delimiter.csv": (
            ftx().replace(b",", b";"),
            error("DataError", "delimiter ','", "ftx"),
            "wrong delimiter (header)",
        ),
        "wrong_delimiter_headerless.csv": (
            b"20170102 020000,1.0,1.1,0.9,1.05,0\n20170102 020100,1.0,1.1,0.9,1.05,0\n",
            error("DataError", "no row has 6 fields separated by ';'", "histdata"),
            "wrong delimiter (no header)",
        ),
        "missing_columns.csv": (
            b"timestamp,open,close\n2022-01-03 00:00:00,1,1\n",
            error("DataError", "lacks column(s) ['high', 'low', 'volume']", "ftx"),
            "missing required columns",
        ),
        "repeated_column.csv": (
            b"timestamp,open,high,low,close,volume,close\n2022-01-03 00:00:00,1,2,0.5,1.5,1,9\n",
            error("DataError", "more than once", "ftx"),
            "a required column named twice",
        ),
        "unknown_layout.csv": (
            b"when,price\n2022-01-03,1\n",
            error("DataError", "cannot recognise the format"),
            "a layout no reader knows",
        ),
        "binary_garbage.csv": (
            bytes(range(256)) * 8,
            error("DataError", "file looks binary"),
            "binary garbage",
        ),
        "png_as_csv.csv": (
            b"\x89PNG\r\n\x1a\n" + bytes(300),
            error("DataError", "file looks binary"),
            "an image",
        ),
        "utf16_le_bom.csv": (
            ftx().decode().encode("utf-16"),
            error("DataError", "UTF-16 encoded"),
            "UTF-16 (BOM)",
        ),
        "utf16_be_no_bom.csv": (
            ftx().decode().encode("utf-16-be"),
            error("DataError", "UTF-16 text without a byte-order mark"),
            "UTF-16 without BOM",
        ),
        "latin1.csv": (
            ftx() + "caf\xe9,1,2,0.5,1.5,1\n".encode("latin-1") + b"\n" * 8,
            error("DataError", "not UTF-8 text"),
            "Latin-1, not UTF-8",
        ),
        "broken.csv.gz": (
            b"\x1f\x8b\x08\x00" + bytes(range(60)),
            error("DataError", "cannot read file"),
            "corrupt gzip",
        ),
        "truncated.csv.gz": (gz[: len(gz) // 2], error("DataError", "cannot"), "truncated gzip"),
        "not_parquet.parquet": (
            b"PAR1 this is not parquet at all",
            error("DataError", "not a readable Parquet"),
            "fake parquet",
        ),
        "parquet_missing_cols.parquet": (
            parquet_bytes(pl.DataFrame({"timestamp": ["2022-01-03 00:00:00"], "open": [1.0]})),
            error("DataError", "lack", "ftx"),
            "parquet without price columns",
        ),
        "mixed_intervals.csv": (
            ("\n".join([FTX, *hourly, *minutes]) + "\n").encode(),
            error("DataError", "file mixes bar intervals", "ftx"),
            "1h and 1m bars in one file",
        ),
        "single_row.csv": (
            f"{FTX}\n{GOOD[0]}\n".encode(),
            error("ConfigError", "pass --interval", "ftx"),
            "one bar cannot show its interval",
        ),
        "bad_interval_param.csv": (
            ftx(),
            error("ConfigError", "interval '7m'", "ftx", interval="7m"),
            "bad interval",
        ),
        "bad_format_param.csv": (
            ftx(),
            error("ConfigError", "unknown format 'nope'", "nope"),
            "bad format name",
        ),
        # --- row-level problems: the row is quarantined with a reason, the good rows still arrive
        "price_1e308.csv": (
            ftx("2022-01-03 00:04:00,1e308,1e308,1e308,1e308,1"),
            quarantine("price above sanity limit"),
            "1e308 prices",
        ),
        "price_overflow.csv": (
            ftx("2022-01-03 00:04:00,1e400,1e400,1,1,1"),
            quarantine("NaN or infinite price"),
            "overflowing to inf",
        ),
        "price_nan.csv": (
            ftx("2022-01-03 00:04:00,nan,1,1,1,1"),
            quarantine("NaN or infinite price"),
            "NaN price",
        ),
        "price_negative.csv": (
            ftx("2022-01-03 00:04:00,-1,2,-2,1,1"),
            quarantine("zero or negative price"),
            "negative price",
        ),
        "price_missing.csv": (
            ftx("2022-01-03 00:04:00,,2,1,1.5,1"),
            quarantine("missing price"),
            "empty price",
        ),
        "high_below_low.csv": (
            ftx("2022-01-03 00:04:00,1,1,2,1.5,1"),
            quarantine("high < low"),
            "high < low",
        ),
        "open_outside_range.csv": (
            ftx("2022-01-03 00:04:00,5,2,1,1.5,1"),
            quarantine("open or close outside [low, high]"),
            "open > high",
        ),
        "volume_negative.csv": (
            ftx("2022-01-03 00:04:00,1,2,0.5,1.5,-3"),
            quarantine("negative volume"),
            "negative volume",
        ),
        "year_1900.csv": (
            ftx("1900-01-02 00:00:00,1,2,0.5,1.5,1"),
            quarantine("timestamp before 1970"),
            "year 1900",
        ),
        "year_2200.csv": (
            ftx("2200-01-03 00:00:00,1,2,0.5,1.5,1"),
            quarantine("timestamp more than a year in the future"),
            "year 2200",
        ),
        "bad_timestamp.csv": (
            ftx("2022-13-45 25:61:61,1,2,0.5,1.5,1"),
            quarantine("unparseable timestamp"),
            "impossible date",
        ),
        "truncated_last_line.csv": (
            ftx("2022-01-03 00:04:00,1,2"),
            quarantine("expected 6 fields, got 3"),
            "truncated row",
        ),
        "duplicate_timestamp.csv": (
            ftx(GOOD[1].replace("100.2,8.0", "100.3,9.0")),
            quarantine("duplicate timestamp, superseded by"),
            "duplicate key",
        ),
        "dst_gap.csv": (
            b"time_et_barstart,open,high,low,close,volume\n2017-03-10 09:00,1,2,0.5,1.5,1\n"
            b"2017-03-10 10:00,1,2,0.5,1.5,1\n2017-03-12 02:00,1,2,0.5,1.5,1\n"
            b"2017-03-13 09:00,1,2,0.5,1.5,1\n",
            quarantine("does not exist in America/New_York (DST gap)", bars=3, fmt="lean_equity"),
            "a local time skipped by DST",
        ),
        "dst_overlap.csv": (
            b"time_et_barstart,open,high,low,close,volume\n2017-11-03 09:00,1,2,0.5,1.5,1\n"
            b"2017-11-03 10:00,1,2,0.5,1.5,1\n2017-11-05 01:00,1,2,0.5,1.5,1\n"
            b"2017-11-06 09:00,1,2,0.5,1.5,1\n",
            quarantine("is ambiguous in America/New_York (DST overlap)", bars=3, fmt="lean_equity"),
            "a local time repeated by DST",
        ),
        "histdata_bad_stamp.csv": (
            b"20170102 020000;1.0;1.1;0.9;1.05;0\n20170102 020100;1.0;1.1;0.9;1.05;0\n"
            b"2017-01-02 02:02;1;1;1;1;0\n",
            quarantine("unparseable timestamp", bars=2, fmt="histdata"),
            "HistData row in another stamp shape",
        ),
        "formula_injection.csv": (
            ftx(
                f"{INJECTION},1,2,0.5,1.5,1",
                f"2022-01-03 00:05:00,{INJECTION},2,0.5,1.5,1",
            ),
            {**quarantine("unparseable timestamp '=cmd|"), "also": ["missing price"], "bars": len(GOOD)},
            "CSV formula injection in a stamp and in a price",
        ),
    }


def main() -> None:
    manifest: dict[str, dict[str, object]] = {}
    for name, (content, expected, covers) in cases().items():
        (HERE / name).write_bytes(content)
        manifest[name] = {**expected, "covers": covers}
    (HERE / "EXPECTED.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(manifest)} files and EXPECTED.json to {HERE}")


if __name__ == "__main__":
    main()
