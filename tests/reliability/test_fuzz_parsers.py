"""Fuzzing the parsers tests/property/test_parsers_fuzz.py does not reach: generic and Parquet.

That file fuzzes every named layout in ``LAYOUTS`` and detection with arbitrary bytes and CSV-like
text. Here: arbitrary bytes and CSV-like text through generic layouts (any delimiter, column map, time
zone, stamp, format), and Parquet files, both arbitrary bytes and real Parquet files with arbitrary
columns and values, through every layout. Each either parses into valid bars or raises the project's
own error (a :class:`~core.errors.VolriskError`); nothing else escapes.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import VolriskError
from core.schema import BAR_SCHEMA, QUARANTINE_SCHEMA
from tasks.sources.files import ParseResult, read_bars_file
from tasks.sources.layouts import LAYOUTS, Layout, generic_from_params

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FORMATS: list[str | None] = [*sorted(LAYOUTS), "generic", None]
TOKENS = [
    "2022-01-03 00:00:00",
    "2022-01-03 00:01:00",
    "2022-01-03T00:02:00+01:00",
    "20170102 020000",
    "1/4/1999",
    "2017-03-12 02:30",
    "2022-01-03",
    "1900-01-01 00:00:00",
    "2200-01-01 00:00:00",
    "1",
    "2",
    "0.5",
    "1.5",
    "1e308",
    "-1",
    "0",
    "nan",
    "inf",
    "",
    "abc",
    "=cmd|' /C calc'!A0",
    "\x00",
    "é",
]


@st.composite
def generic_params(draw: st.DrawFn) -> dict[str, object]:
    params: dict[str, object] = {
        "ts_column": draw(st.sampled_from(["t", "time", "timestamp", "Date"])),
        "tz": draw(st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Etc/GMT+5"])),
        "delimiter": draw(st.sampled_from([",", ";", "\t", "|"])),
        "stamp": draw(st.sampled_from(["start", "end"])),
    }
    if draw(st.booleans()):
        params["column_map"] = {"open": "O", "close": "C"}
    if draw(st.booleans()):
        params["ts_format"] = draw(st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y%m%d %H%M%S", "%d/%m/%Y"]))
    if draw(st.booleans()):
        params["interval"] = draw(st.sampled_from(["1m", "1h", "1d"]))
    return params


def _layout(fmt: str | None, params: dict[str, object]) -> str | Layout | None:
    return generic_from_params(params) if fmt == "generic" else fmt


def _check(result: ParseResult, path: Path, parquet: bool) -> None:
    bars, quarantine = result.bars, result.quarantine
    assert bars.schema == pl.Schema(BAR_SCHEMA)
    assert quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert bars["ts"].null_count() == 0 and bars["ts"].is_sorted() and bars["ts"].n_unique() == bars.height
    ok = bars.filter(
        pl.all_horizontal([pl.col(c).is_finite() & (pl.col(c) > 0) for c in ("open", "high", "low", "close")])
        & (pl.col("low") <= pl.min_horizontal("open", "close"))
        & (pl.col("high") >= pl.max_horizontal("open", "close"))
    )
    assert ok.height == bars.height
    if bars.height:
        assert bars["ts"].min() >= datetime(1970, 1, 1, tzinfo=UTC)  # type: ignore[operator]
    header = (LAYOUTS[result.layout].header if result.layout in LAYOUTS else True) and not parquet
    assert bars.height + quarantine.height == result.lines_read - int(header)
    assert quarantine["location"].str.starts_with(f"{path}:").all()


def _read(data: bytes, suffix: str, fmt: str | Layout | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bars{suffix}"
        path.write_bytes(data)
        try:
            result = read_bars_file(path, symbol="FUZZ", fmt=fmt)
        except VolriskError:
            return
        _check(result, path, suffix == ".parquet")


@FUZZ
@given(data=st.binary(max_size=600), params=generic_params())
def test_generic_layout_arbitrary_bytes(data: bytes, params: dict[str, object]) -> None:
    _read(data, ".csv", generic_from_params(params))


@st.composite
def generic_csv(draw: st.DrawFn) -> tuple[dict[str, object], bytes]:
    params = draw(generic_params())
    sep = str(params["delimiter"]) if draw(st.integers(0, 4)) else ","
    mapping = dict(params.get("column_map") or {})  # type: ignore[call-overload]
    names = [
        str(params["ts_column"]),
        mapping.get("open", "open"),
        "high",
        "low",
        mapping.get("close", "close"),
    ]
    names += draw(st.lists(st.sampled_from(["volume", "x", "raw", "line", "open"]), max_size=2))
    names = draw(st.permutations(names))
    rows = [
        sep.join(draw(st.lists(st.sampled_from(TOKENS), min_size=len(names), max_size=len(names))))
        for _ in range(draw(st.integers(0, 6)))
    ]
    return params, "\n".join([sep.join(names), *rows]).encode()


@FUZZ
@given(case=generic_csv())
def test_generic_layout_csv_like_text(case: tuple[dict[str, object], bytes]) -> None:
    params, data = case
    _read(data, ".csv", generic_from_params(params))


@FUZZ
@given(data=st.binary(max_size=600), fmt=st.sampled_from(FORMATS), params=generic_params())
def test_parquet_arbitrary_bytes(data: bytes, fmt: str | None, params: dict[str, object]) -> None:
    _read(b"PAR1" + data + b"PAR1" if len(data) % 2 else data, ".parquet", _layout(fmt, params))


_VALUES = st.one_of(
    st.sampled_from(TOKENS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**62), 2**62),
    st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2300, 1, 1)),
    st.none(),
)


@st.composite
def parquet_file(draw: st.DrawFn) -> tuple[str | None, dict[str, object], bytes]:
    fmt = draw(st.sampled_from(FORMATS))
    params = draw(generic_params())
    layout = LAYOUTS[fmt] if fmt in LAYOUTS else generic_from_params(params) if fmt == "generic" else None
    names = list(layout.columns) if layout else ["timestamp", "open", "high", "low", "close", "volume"]
    names = [n for n in names if draw(st.integers(0, 9))] + draw(
        st.lists(st.sampled_from(["x", "raw"]), max_size=1)
    )
    names = list(dict.fromkeys(names))
    n_rows = draw(st.integers(0, 6))
    columns: dict[str, pl.Series] = {}
    for name in names:
        kind = draw(st.sampled_from(["str", "float", "int", "datetime", "datetime_tz", "mixed"]))
        if kind == "float":
            vals: list[object] = draw(st.lists(st.floats(), min_size=n_rows, max_size=n_rows))
        elif kind == "int":
            vals = draw(st.lists(st.integers(-(2**62), 2**62), min_size=n_rows, max_size=n_rows))
        elif kind.startswith("datetime"):
            vals = draw(
                st.lists(
                    st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2300, 1, 1)),
                    min_size=n_rows,
                    max_size=n_rows,
                )
            )
        else:
            vals = [str(v) for v in draw(st.lists(_VALUES, min_size=n_rows, max_size=n_rows))]
        dtype = {
            "float": pl.Float64,
            "int": pl.Int64,
            "datetime": pl.Datetime("us"),
            "datetime_tz": pl.Datetime("us"),
        }
        series = pl.Series(name, vals, dtype=dtype.get(kind, pl.String), strict=False)
        if kind == "datetime_tz":
            series = series.dt.replace_time_zone("America/New_York", ambiguous="null", non_existent="null")
        columns[name] = series
    frame = pl.DataFrame(columns) if columns else pl.DataFrame({"x": [1] * n_rows})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.parquet"
        frame.write_parquet(path)
        return fmt, params, path.read_bytes()


@FUZZ
@given(case=parquet_file())
def test_parquet_with_arbitrary_columns_and_values(case: tuple[str | None, dict[str, object], bytes]) -> None:
    fmt, params, data = case
    _read(data, ".parquet", _layout(fmt, params))
