"""Fuzzing the bar-file reader: whatever the bytes, it returns sane bars or raises a VolriskError.

For arbitrary bytes, and for CSV-like text built from real-looking fields, read with every named layout
and with detection, the reader either

* returns bars in BAR_SCHEMA that are UTC, strictly increasing in time, with positive finite prices and
  ``low <= open, close <= high``, where every data line ends up either as a bar or in quarantine; or
* raises :class:`core.errors.VolriskError` (DataError/ConfigError) -- nothing else escapes.

The realized-measure reader gets the same treatment: rows out, or a VolriskError.

Inputs that once crashed the reader are pinned with ``@example``.
"""

from __future__ import annotations

import gzip
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.errors import VolriskError
from core.schema import BAR_SCHEMA, QUARANTINE_SCHEMA, REALIZED_SCHEMA
from tasks.sources.files import ParseResult, read_bars_file
from tasks.sources.layouts import LAYOUTS, Layout, generic_layout
from tasks.sources.realized import read_realized_file

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FORMATS: list[str | None] = [*sorted(LAYOUTS), None]

# Field values that reach the interesting branches: every layout's stamp shape, DST edges, offsets,
# special floats, names the reader uses itself, and junk.
TOKENS = st.sampled_from(
    [
        "2022-01-01 00:00:00",
        "2022-01-01 00:01:00",
        "2021-12-31 23:01:00.000000",
        "20170102 020000",
        "20110103 090100",
        "2017-03-12 02:30",
        "2017-11-05 01:30",
        "1998-01-02 09:00",
        "1/4/1999",
        "2007-01-01 21:00",
        "2022-01-01",
        "2022-01-01T00:00:00+05:00",
        "2022-01-01T00:00:00Z",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59",
        "2022-13-45 25:61:61",
        "99999999 999999",
        "1",
        "2",
        "0.5",
        "1.5",
        "100",
        "-1",
        "0",
        "nan",
        "inf",
        "-inf",
        "1e400",
        "1e-300",
        "",
        " 1.5 ",
        "abc",
        "open",
        "raw",
        "line",
        "Date",
        "\ufeff",
        "\x00",
        "é",
        ";",
        '"1,5"',
    ]
)
HEADER_EXTRAS = st.sampled_from(["open", "raw", "line", "", "x", "Open", "volume", "_n", "ts", "close"])


@st.composite
def csv_like(draw: st.DrawFn) -> tuple[str | None, bytes]:
    """A format name and file bytes: maybe a (shuffled, extended) header, then rows of tokens."""
    fmt = draw(st.sampled_from(FORMATS))
    layout = LAYOUTS[fmt or draw(st.sampled_from(sorted(LAYOUTS)))]
    delimiter = draw(st.sampled_from([layout.delimiter, layout.delimiter, ",", ";", "\t"]))
    lines: list[str] = []
    if layout.header and draw(st.booleans()):
        names = list(layout.columns)
        names += draw(st.lists(HEADER_EXTRAS, max_size=3))
        lines.append(delimiter.join(draw(st.permutations(names))))
    width = max(1, len(layout.columns) + draw(st.integers(-1, 2)))
    for _ in range(draw(st.integers(0, 8))):
        lines.append(delimiter.join(draw(st.lists(TOKENS, min_size=width, max_size=width))))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return fmt, eol.join(lines).encode()


def _read(
    data: bytes, fmt: str | Layout | None, *, container: str = "plain", interval: str | None = None
) -> ParseResult | None:
    """Write ``data`` to a fresh file and read it; ``None`` when the reader refused it properly.

    ``container`` is ``plain`` (a .csv), ``gzip`` (compressed into a .csv.gz) or ``raw-gz`` (the bytes
    as they are, under a .csv.gz name, so the decompressor meets garbage).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("bars.csv" if container == "plain" else "bars.csv.gz")
        path.write_bytes(gzip.compress(data) if container == "gzip" else data)
        try:
            result = read_bars_file(path, symbol="FUZZ", fmt=fmt, interval=interval)
        except VolriskError:
            return None
        _check_invariants(result, path)
        return result


def _check_invariants(result: ParseResult, path: Path) -> None:
    bars, quarantine = result.bars, result.quarantine
    assert bars.schema == pl.Schema(BAR_SCHEMA)
    assert quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert bars["ts"].null_count() == 0
    assert bars["ts"].is_sorted() and bars["ts"].n_unique() == bars.height
    prices = bars.select("open", "high", "low", "close")
    assert prices.null_count().sum_horizontal().item() == 0
    broken = bars.filter(
        ~pl.all_horizontal(
            [pl.col(c).is_finite() & (pl.col(c) > 0) for c in ("open", "high", "low", "close")]
        )
        | (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") < pl.max_horizontal("open", "close"))
    )
    assert broken.height == 0, broken
    # Nothing silently lost: each non-blank data line is a bar or a quarantined row.
    header = LAYOUTS[result.layout].header if result.layout in LAYOUTS else True
    assert bars.height + quarantine.height == result.lines_read - int(header)
    assert quarantine["location"].str.starts_with(f"{path}:").all()
    assert quarantine["reason"].null_count() == 0


@FUZZ
@given(
    fmt=st.sampled_from(FORMATS),
    data=st.binary(max_size=600),
    container=st.sampled_from(["plain", "gzip", "raw-gz"]),
)
# Regression: corrupt deflate data raised zlib.error (not an OSError) out of the reader.
@example(fmt=None, data=b"\x1f\x8b\x08\x00" + bytes(range(50)), container="raw-gz").via("found by fuzzing")
def test_arbitrary_bytes(fmt: str | None, data: bytes, container: str) -> None:
    _read(data, fmt, container=container)


@FUZZ
@given(case=csv_like())
# Regressions found by fuzzing: header columns that collide with the reader's own names or with
# each other crashed polars with DuplicateError.
@example(
    case=(
        "lean_equity",
        b"raw,open,time_et_barstart,low,volume,high,close\n"
        b"99999999 999999,1e-300,2022-01-01 00:00:00,1/4/1999,2022-01-01 00:00:00,2007-01-01 21:00,1\n",
    )
).via("found by fuzzing")
@example(
    case=(
        "ftx",
        b"close,volume,timestamp,x,open,x,high,low\n"
        b" 1.5 ,2022-01-01T00:00:00+05:00,2022-01-01 00:01:00,line,1,2022-01-01 00:00:00,abc,nan\n",
    )
).via("found by fuzzing")
@example(
    case=("yahoo_csv", b"Date,Open,High,Low,Close,Adj Close,Volume,open\n1/4/1999,1,2,0.5,1.5,1.5,10,3\n")
)
@example(case=("ftx", b"timestamp,open,high,low,close,volume,close\n2022-01-01 00:00:00,1,2,0.5,1.5,1,9\n"))
def test_csv_like_text(case: tuple[str | None, bytes]) -> None:
    fmt, data = case
    _read(data, fmt)


@FUZZ
@given(
    stamps=st.lists(st.text(alphabet="0123456789-: TZ+", max_size=25), min_size=1, max_size=6),
    tz=st.sampled_from(["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Etc/GMT+5"]),
)
def test_generic_layout_any_stamp_text(stamps: list[str], tz: str) -> None:
    text = "\n".join(["t,open,high,low,close"] + [f"{s},1,2,0.5,1.5" for s in stamps]) + "\n"
    _read(text.encode(), generic_layout(ts_column="t", tz=tz))


@settings(max_examples=100, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2025, 1, 1)),
    steps=st.lists(st.integers(1, 5), min_size=2, max_size=30),
    prices=st.data(),
)
def test_valid_bars_round_trip_exactly(start: datetime, steps: list[int], prices: st.DataObject) -> None:
    """Well-formed bars written in the FTX layout come back unchanged, with nothing quarantined."""
    start = start.replace(second=0, microsecond=0)
    positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
    rows, stamp = [], start
    for step in steps:
        o, c = prices.draw(positive), prices.draw(positive)
        lo = min(o, c) * prices.draw(st.floats(0.5, 1.0))
        hi = max(o, c) * prices.draw(st.floats(1.0, 2.0))
        lo, hi = min(lo, o, c), max(hi, o, c)  # float rounding must not break the ordering
        rows.append((stamp.replace(tzinfo=UTC), o, hi, lo, c, float(step)))
        stamp += timedelta(minutes=step)
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{ts:%Y-%m-%d %H:%M:%S},{o!r},{h!r},{lo!r},{c!r},{v!r}\n" for ts, o, h, lo, c, v in rows
    )
    result = _read(text.encode(), "ftx", interval="1m")
    assert result is not None
    assert result.quarantine.height == 0
    assert result.bars.select("ts", "open", "high", "low", "close", "volume").rows() == rows


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_refuses_garbage_with_a_volrisk_error(fmt: str | None) -> None:
    with pytest.raises(VolriskError):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "garbage.csv"
            path.write_bytes(bytes(range(256)))
            read_bars_file(path, symbol="FUZZ", fmt=fmt)


REALIZED_TOKENS = st.sampled_from(
    [
        "2020-01-06 00:00:00+01:00",
        "2020-01-06 00:00:00-05:00",
        "2020-01-06",
        "2020-13-01",
        "x",
        ".SPX",
        "SPX",
        "../etc",
        "",
        "nan",
        "inf",
        "-1",
        "1e-05",
        "0",
        "12.5",
        "1795.0",
        " 1e-4 ",
        "\x00",
    ]
)
REALIZED_HEADERS = st.sampled_from(
    [
        ["", "Symbol", "rv5", "bv", "nobs", "close_price", "open_to_close", "rk_parzen", "rsv", "foo"],
        ["date", "symbol", "rv", "bv", "ret", "nobs", "foo"],
    ]
)


@st.composite
def realized_like(draw: st.DrawFn) -> tuple[str | None, bytes]:
    """A realized format name (or None) and file bytes with a plausible, possibly damaged header."""
    header = list(draw(st.permutations(draw(REALIZED_HEADERS))))
    header = header[: draw(st.integers(1, len(header)))] + draw(
        st.lists(st.sampled_from(["line", "raw", "rv", "Symbol", "extra"]), max_size=2)
    )
    width = max(1, len(header) + draw(st.integers(-1, 1)))
    rows = [
        ",".join(draw(st.lists(REALIZED_TOKENS, min_size=width, max_size=width)))
        for _ in range(draw(st.integers(0, 6)))
    ]
    return draw(st.sampled_from([None, "oxfordman", "simple"])), "\n".join([",".join(header), *rows]).encode()


@FUZZ
@given(case=st.one_of(realized_like(), st.tuples(st.none(), st.binary(max_size=300))))
def test_realized_reader_never_crashes(case: tuple[str | None, bytes]) -> None:
    fmt, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "realized.csv"
        path.write_bytes(data)
        try:
            result = read_realized_file(path, fmt=fmt)
        except VolriskError:
            return
    assert result.realized.schema == pl.Schema(REALIZED_SCHEMA)
    assert result.realized.height + result.quarantine.height == result.rows_read
    assert result.realized.select("symbol", "date").is_duplicated().sum() == 0
    assert bool((result.realized["rv"] >= 0).all()) and result.realized["rv"].null_count() == 0
