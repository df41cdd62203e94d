"""Reading daily realized measures from a realized library file: path in, frames out.

Two layouts are recognised from the header (or named with ``fmt``):

``oxfordman``
    The Oxford-Man Institute Realized Library CSV. Its first column has no name and holds the day as a
    local timestamp with the exchange's UTC offset (``2000-01-03 00:00:00+01:00``); a ``Symbol`` column
    names the index (``.SPX``, ``.AEX``, ...); every other column is a numeric measure: ``rv5``,
    ``rv5_ss``, ``bv``, ``bv_ss``, ``rk_parzen``, ``rk_th2``, ``rk_twoscale``, ``medrv``, ``rsv``,
    ``rsv_ss``, ``rv10``, ``rv10_ss``, ``open_to_close``, ``open_price``, ``open_time``,
    ``close_price``, ``close_time``, ``nobs``. Columns are found by name, in any order.
``simple``
    ``date,symbol,rv[,bv][,ret]`` (and optionally ``rk_parzen``, ``medrv``, ``close_price``, ``nobs``),
    one row per symbol and day.

The date of a row is the LOCAL calendar date written in the stamp: the offset only says which zone the
exchange is in. Converting ``2000-01-03 00:00:00+01:00`` to UTC first would give 2000-01-02, the wrong
day. Measures map to :data:`~core.schema.REALIZED_SCHEMA` (``rv5`` -> ``rv``, ``open_to_close``
-> ``ret``, ...); every other numeric column is kept in ``extra`` as a JSON object, by column name.

A bad row (unparseable date, missing/invalid symbol, missing, NaN or negative rv, an infinite or
unparseable number, a duplicate symbol and day) goes to a quarantine frame in
:data:`~core.schema.QUARANTINE_SCHEMA` with ``file:line`` and a reason; nothing is dropped
silently. A problem with the file as a whole raises :class:`~core.errors.DataError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from core.errors import ConfigError, DataError, VolriskError
from core.schema import QUARANTINE_SCHEMA, REALIZED_SCHEMA
from core.symbols import validate_symbol
from tasks.sources.files import _check_readable, _read_lines, file_checksum, split_lines

RealizedFormat = Literal["oxfordman", "simple"]
REALIZED_FORMATS: tuple[RealizedFormat, ...] = ("oxfordman", "simple")

#: Numeric columns of the Oxford-Man Realized Library file.
OXFORDMAN_MEASURES = (
    "rv5",
    "rv5_ss",
    "bv",
    "bv_ss",
    "rk_parzen",
    "rk_th2",
    "rk_twoscale",
    "medrv",
    "rsv",
    "rsv_ss",
    "rv10",
    "rv10_ss",
    "open_to_close",
    "open_price",
    "open_time",
    "close_price",
    "close_time",
    "nobs",
)
#: Oxford-Man column -> REALIZED_SCHEMA column. The other measures go to ``extra``.
OXFORDMAN_MAP = {
    "rv5": "rv",
    "bv": "bv",
    "rk_parzen": "rk_parzen",
    "medrv": "medrv",
    "open_to_close": "ret_oc",
    "close_price": "close_price",
    "nobs": "nobs",
}
#: Simple-layout columns that map to REALIZED_SCHEMA (the names are the schema's own).
SIMPLE_MEASURES = (
    "rv", "bv", "rq", "rs_pos", "rs_neg", "rk_parzen", "medrv", "ret", "ret_oc", "close_price", "nobs",
)  # fmt: skip

_DELIMITER = ","
_MEASURES = SIMPLE_MEASURES
_NON_NEGATIVE = ("bv", "rk_parzen", "medrv")
# Timestamp shapes accepted around the date (all must parse; only the date part is used).
_STAMP_FORMATS_NAIVE = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_STAMP_FORMATS_OFFSET = ("%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M%#z")


@dataclass
class RealizedParseResult:
    """What a realized-library file gave.

    Attributes
    ----------
    realized : pl.DataFrame
        Rows in :data:`~core.schema.REALIZED_SCHEMA`, sorted by symbol and date, one row per
        (symbol, date).
    quarantine : pl.DataFrame
        Rows set aside, in :data:`~core.schema.QUARANTINE_SCHEMA`.
    layout : str
        ``"oxfordman"`` or ``"simple"``.
    checksum : str
        sha256 of the file's bytes.
    rows_read : int
        Non-blank data lines (header excluded); equals ``realized.height + quarantine.height``.
    notes : list[str]
        What the reader noticed (ignored columns, quarantine summary).
    """

    realized: pl.DataFrame
    quarantine: pl.DataFrame
    layout: str
    checksum: str
    rows_read: int
    notes: list[str] = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        """The distinct symbols read, sorted."""
        return sorted(self.realized["symbol"].unique().to_list())


@dataclass(frozen=True)
class _Columns:
    """Where each role sits in the header, and which other columns there are."""

    layout: RealizedFormat
    date: str
    symbol: str
    mapped: dict[str, str]  # header name -> REALIZED_SCHEMA column
    numeric_extra: tuple[str, ...]  # known numeric columns that go to ``extra``
    other: tuple[str, ...]  # columns of unknown meaning: kept in ``extra`` when all numeric


def empty_realized() -> pl.DataFrame:
    """A zero-row frame in :data:`~core.schema.REALIZED_SCHEMA`."""
    return pl.DataFrame(schema=REALIZED_SCHEMA)


def detect_realized_layout(header: list[str]) -> RealizedFormat | None:
    """Name the realized layout a header belongs to, or ``None``.

    Parameters
    ----------
    header : list[str]
        The first line's fields, stripped.

    Returns
    -------
    {"oxfordman", "simple"} | None
        ``oxfordman`` when the header has ``Symbol`` and ``rv5``; ``simple`` when it has ``date``,
        ``symbol`` and ``rv``.
    """
    names = set(header)
    if {"Symbol", "rv5"} <= names:
        return "oxfordman"
    if {"date", "symbol", "rv"} <= names:
        return "simple"
    return None


def _columns(header: list[str], layout: RealizedFormat, path: Path) -> _Columns:
    if layout == "oxfordman":
        # The date column is the first one; the library writes it without a name (pandas' index).
        required = ["Symbol", "rv5"]
        missing = [c for c in required if c not in header]
        if missing or len(header) < 2 or header[0] in OXFORDMAN_MEASURES or header[0] == "Symbol":
            raise DataError(
                f"header {header[:8]}... lacks column(s) {missing or ['<unnamed date column first>']} of "
                "the Oxford-Man layout (an unnamed first column holding the local timestamp, then "
                "'Symbol', 'rv5', ...)",
                location=f"{path}:1",
            )
        mapped = {h: OXFORDMAN_MAP[h] for h in header if h in OXFORDMAN_MAP}
        known = {header[0], "Symbol", *OXFORDMAN_MEASURES}
        return _Columns(
            layout=layout,
            date=header[0],
            symbol="Symbol",
            mapped=mapped,
            numeric_extra=tuple(h for h in header if h in OXFORDMAN_MEASURES and h not in mapped),
            other=tuple(h for h in header if h not in known),
        )
    missing = [c for c in ("date", "symbol", "rv") if c not in header]
    if missing:
        raise DataError(
            f"header {header} lacks column(s) {missing} of the simple realized layout "
            "(date,symbol,rv[,bv][,ret])",
            location=f"{path}:1",
        )
    known = {"date", "symbol", *SIMPLE_MEASURES}
    return _Columns(
        layout=layout,
        date="date",
        symbol="symbol",
        mapped={h: h for h in header if h in SIMPLE_MEASURES},
        numeric_extra=(),
        other=tuple(h for h in header if h not in known),
    )


def read_realized_file(
    path: Path | str,
    *,
    fmt: str | None = None,
    source: str | None = None,
) -> RealizedParseResult:
    """Read one realized-library file (many symbols allowed) into daily realized measures.

    Parameters
    ----------
    path : Path | str
        A comma-separated file, optionally gzip-compressed (``.gz``).
    fmt : {"oxfordman", "simple"} | None
        The layout, or ``None`` to recognise it from the header.
    source : str | None
        Source label stored with every row (part of the warehouse key); defaults to the layout name.

    Returns
    -------
    RealizedParseResult
        Rows in REALIZED_SCHEMA (one per symbol and local date), quarantined rows with reasons, notes.

    Raises
    ------
    ConfigError
        ``fmt`` or ``source`` is invalid.
    DataError
        The file as a whole is unusable: missing, empty, header only, binary, not UTF-8, wrong
        delimiter, unknown layout, missing or repeated columns. The message names the file.
    """
    path = Path(path)
    if fmt is not None and fmt not in REALIZED_FORMATS:
        raise ConfigError(f"unknown realized format {fmt!r}; expected one of {list(REALIZED_FORMATS)}")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise ConfigError(f"source must be a non-empty string; got {source!r}")
    header, layout, cols, body = _read_body(path, fmt)
    fields, wrong_width = _split(body, header, path)
    notes: list[str] = []
    frame, bad, other_numeric, ignored = _parse_rows(fields, cols, path)
    if ignored:
        notes.append(f"ignored non-numeric columns {ignored}")
    realized, superseded = _dedupe(frame, path)
    realized = _finish(realized, cols, other_numeric, source or layout)
    quarantine = pl.concat([wrong_width, bad, superseded]).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    if superseded.height:
        notes.append(f"{superseded.height} repeated (symbol, date) rows: the last of each was kept")
    if quarantine.height:
        notes.append(_quarantine_note(quarantine))
    return RealizedParseResult(
        realized=realized,
        quarantine=quarantine,
        layout=layout,
        checksum=file_checksum(path),
        rows_read=body.height,
        notes=notes,
    )


def _read_body(path: Path, fmt: str | None) -> tuple[list[str], RealizedFormat, _Columns, pl.DataFrame]:
    """The header, the layout, its columns and the non-empty data lines of a readable file."""
    _check_readable(path)
    lines = _read_lines(path)
    body = lines.filter(pl.col("raw").str.strip_chars() != "")
    if body.height == 0:
        raise DataError("file is empty", location=str(path))
    header, layout = _header_layout(body, fmt, path)
    cols = _columns(header, layout, path)
    body = body.slice(1)
    if body.height == 0:
        raise DataError("file has a header but no data rows", location=str(path))
    return header, layout, cols, body


def _header_layout(body: pl.DataFrame, fmt: str | None, path: Path) -> tuple[list[str], RealizedFormat]:
    """The header's column names and the file's layout (``fmt``, or recognised from the header)."""
    header = [h.strip() for h in body["raw"][0].lstrip("\ufeff").split(_DELIMITER)]
    layout: RealizedFormat | None = fmt if fmt in REALIZED_FORMATS else None
    layout = layout or detect_realized_layout(header)
    if layout is None:
        raise DataError(
            f"cannot recognise a realized layout from the header {body['raw'][0][:120]!r}: expected the "
            "comma-separated Oxford-Man layout (',Symbol,...,rv5,...') or 'date,symbol,rv[,bv][,ret]'",
            location=f"{path}:1",
        )
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(
            f"header names column(s) {repeated} more than once; cannot tell which to use",
            location=f"{path}:1",
        )
    return header, layout


def _quarantine_note(quarantine: pl.DataFrame) -> str:
    reasons = (
        quarantine.with_columns(pl.col("reason").str.replace(r" '.*'$", ""))
        .group_by("reason")
        .len()
        .sort(["len", "reason"], descending=[True, False])
    )
    summary = ", ".join(f"{r} ({n})" for r, n in reasons.iter_rows())
    return f"{quarantine.height} rows quarantined: {summary}"


def _split(body: pl.DataFrame, header: list[str], path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split data lines into string columns named ``c:<header>``; wrong field counts are quarantined."""
    internal = [f"_f{i}" for i in range(len(header))]
    fields, wrong = split_lines(body, internal, _DELIMITER, path, hint="like the header")
    fields = fields.rename({f"_f{i}": f"c:{name}" for i, name in enumerate(header)})
    return fields.with_columns(pl.col(f"c:{name}").str.strip_chars() for name in header), wrong


def _local_date(text: pl.Expr) -> pl.Expr:
    """The calendar date written in a stamp, or null when the stamp does not parse as a whole."""
    naive = pl.coalesce([text.str.strptime(pl.Datetime("us"), f, strict=False) for f in _STAMP_FORMATS_NAIVE])
    offset = pl.coalesce(
        [text.str.strptime(pl.Datetime("us", "UTC"), f, strict=False) for f in _STAMP_FORMATS_OFFSET]
    )
    day = text.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    return pl.when(naive.is_not_null() | offset.is_not_null()).then(day)


def _symbol_problems(symbols: pl.Series) -> dict[str, str]:
    """Reason per distinct symbol text that :func:`validate_symbol` refuses."""
    problems: dict[str, str] = {}
    for value in symbols.unique().drop_nulls().to_list():
        if value == "":
            continue
        try:
            validate_symbol(value)
        except VolriskError:
            problems[value] = f"invalid symbol {value!r} (letters, digits and . - _ ^ = only)"
    return problems


def _num(name: str) -> pl.Expr:
    return pl.col(f"n:{name}")


def _other_columns(fields: pl.DataFrame, cols: _Columns) -> tuple[list[str], list[str]]:
    """Unknown columns kept (every non-empty value is a number) and those ignored."""
    other_numeric: list[str] = []
    ignored: list[str] = []
    for name in cols.other:
        values = fields[f"c:{name}"]
        filled = values.filter(values != "")
        if filled.len() and filled.cast(pl.Float64, strict=False).null_count() == 0:
            other_numeric.append(name)
        else:
            ignored.append(name or "<unnamed>")
    return other_numeric, ignored


def _parse_rows(
    fields: pl.DataFrame, cols: _Columns, path: Path
) -> tuple[pl.DataFrame, pl.DataFrame, list[str], list[str]]:
    """Typed rows that pass every check, quarantined rows, numeric unknown columns, ignored columns."""
    location = pl.format("{}:{}", pl.lit(str(path)), pl.col("line"))
    # Unknown columns are kept (in ``extra``) only when every non-empty value is a number.
    other_numeric, ignored = _other_columns(fields, cols)
    numeric = [*cols.mapped, *cols.numeric_extra, *other_numeric]
    typed = fields.with_columns(
        _local_date(pl.col(f"c:{cols.date}")).alias("date"),
        pl.col(f"c:{cols.symbol}").alias("symbol"),
        *[
            pl.when(pl.col(f"c:{name}") != "")
            .then(pl.col(f"c:{name}").cast(pl.Float64, strict=False))
            .alias(f"n:{name}")
            for name in numeric
        ],
    )
    rv_col = next(h for h, target in cols.mapped.items() if target == "rv")
    checks = [
        *_row_checks(cols, _symbol_problems(typed["symbol"])),
        *_value_checks(cols, numeric, rv_col),
    ]
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for cond, why in reversed(checks):
        reason = pl.when(cond.fill_null(False)).then(why).otherwise(reason)
    typed = typed.with_columns(reason.alias("_reason"), location.alias("location"))
    bad = typed.filter(pl.col("_reason").is_not_null()).select(
        pl.col("location"), pl.col("_reason").alias("reason"), pl.col("raw")
    )
    good = typed.filter(pl.col("_reason").is_null()).with_columns(
        # NaN in a measure other than rv means "not available", as an empty cell does.
        [_num(name).fill_nan(None) for name in numeric if name != rv_col]
    )
    renamed = good.select(
        "line",
        "location",
        "raw",
        "symbol",
        "date",
        *[_num(h).alias(target) for h, target in cols.mapped.items()],
        *[_num(h).alias(f"x:{h}") for h in (*cols.numeric_extra, *other_numeric)],
    )
    return renamed, bad, other_numeric, ignored


def _row_checks(cols: _Columns, problems: dict[str, str]) -> list[tuple[pl.Expr, pl.Expr]]:
    """(condition, reason) for a row's date and symbol, first match wins."""
    return [
        (
            pl.col("date").is_null(),
            pl.format(
                "unparseable date '{}' (expected YYYY-MM-DD or a local timestamp such as "
                "2000-01-03 00:00:00+01:00)",
                pl.col(f"c:{cols.date}"),
            ),
        ),
        (pl.col("symbol") == "", pl.lit("missing symbol")),
        (
            pl.col("symbol").is_in(list(problems)),
            pl.col("symbol").replace_strict(problems, default=None, return_dtype=pl.String),
        ),
    ]


def _value_checks(cols: _Columns, numeric: list[str], rv_col: str) -> list[tuple[pl.Expr, pl.Expr]]:
    """(condition, reason) for the measures, in the order they are reported."""
    num, role = _num, {target: h for h, target in cols.mapped.items()}
    checks: list[tuple[pl.Expr, pl.Expr]] = []
    for name in numeric:
        checks.append(
            (
                num(name).is_null() & (pl.col(f"c:{name}") != ""),
                pl.format("unparseable {} value '{}'", pl.lit(name), pl.col(f"c:{name}")),
            )
        )
    checks += [
        (num(rv_col).is_null(), pl.lit(f"missing {rv_col}")),
        (num(rv_col).is_nan(), pl.lit(f"{rv_col} is NaN")),
    ]
    for name in numeric:
        checks.append(
            (num(name).is_infinite(), pl.format("infinite {} '{}'", pl.lit(name), pl.col(f"c:{name}")))
        )
    checks.append((num(rv_col) < 0, pl.format("negative {} '{}'", pl.lit(rv_col), pl.col(f"c:{rv_col}"))))
    for target in _NON_NEGATIVE:
        if target in role:
            h = role[target]
            checks.append((num(h) < 0, pl.format("negative {} '{}'", pl.lit(h), pl.col(f"c:{h}"))))
    if "close_price" in role:
        h = role["close_price"]
        checks.append((num(h) <= 0, pl.format("non-positive {} '{}'", pl.lit(h), pl.col(f"c:{h}"))))
    if "nobs" in role:
        h = role["nobs"]
        not_count = (num(h) < 0) | (num(h) != num(h).floor()) | (num(h) > 2**53)
        checks.append(
            (not_count, pl.format("{} '{}' is not a non-negative whole number", pl.lit(h), pl.col(f"c:{h}")))
        )
    return checks


def _dedupe(frame: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep the last row of each (symbol, date); quarantine the earlier ones naming their successor."""
    key = ["symbol", "date"]
    tagged = frame.with_columns(
        pl.col("location").last().over(key).alias("_kept_at"),
        (pl.int_range(pl.len()).over(key) == pl.len().over(key) - 1).alias("_is_last"),
    )
    superseded = tagged.filter(~pl.col("_is_last")).select(
        pl.col("location"),
        pl.format("duplicate symbol and date, superseded by {}", pl.col("_kept_at")).alias("reason"),
        pl.col("raw"),
    )
    return tagged.filter(pl.col("_is_last")).drop("_kept_at", "_is_last"), superseded


def _finish(frame: pl.DataFrame, cols: _Columns, other_numeric: list[str], source: str) -> pl.DataFrame:
    """Shape the kept rows into REALIZED_SCHEMA, with the leftover measures as a JSON object."""
    extra_names = sorted([*cols.numeric_extra, *other_numeric])
    if extra_names:
        extra = pl.struct([pl.col(f"x:{h}").alias(h) for h in extra_names]).struct.json_encode()
    else:
        extra = pl.lit(None, dtype=pl.String)
    out = frame.with_columns(
        [pl.lit(None, dtype=REALIZED_SCHEMA[c]).alias(c) for c in _MEASURES if c not in frame.columns]
    ).with_columns(pl.lit(source).alias("source"), extra.alias("extra"))
    return out.select([pl.col(c).cast(t) for c, t in REALIZED_SCHEMA.items()]).sort(["symbol", "date"])
