"""Reading daily realized measures from a realized library file: path in, frames out.

Two layouts are recognised from the header (or named with ``fmt``):

``oxfordman``
    The Oxford-Man Institute Realized Library CSV. Its first column has no name and holds the day as a
    local timestamp with the exchange's UTC offset (``2000-01-03 00:00:00+01:00``); a ``Symbol`` column
    names the index (``.SPX``, ``.AEX``, ...); every other column is a numeric measure: ``rv5``,
    ``rv5_ss``, ``bv``, ``bv_ss``, ``rk_parzen``, ``rk_th2``, ``rk_twoscale``, ``medrv``, ``rsv``,
    ``rsv_ss``, ``rv10``, ``rv10_ss``, ``open_to_close``, ``open_price``, ``open_time``,
    ``close_price``, ``close_time``, ``nobs``. Columns are found by name, in any order.
    ``rsv`` (the downside semivariance of the 5-minute returns) is ``rs_neg`` and ``rs_pos`` is
    ``rv5 - rsv`` (clipped at 0); the library has no quarticity, so ``rq`` stays null.
``simple``
    ``date,symbol,rv[,bv][,rq][,rs_pos,rs_neg][,rk][,ret]`` (and optionally ``rk_parzen`` -- the same as
    ``rk`` --, ``medrv``, ``ret_oc``, ``close_price``, ``nobs``), one row per symbol and day. ``rs_pos``
    and ``rs_neg`` come as a pair: one without the other is a file error.

Units (see :func:`check_units`): rv, bv, the semivariances, the kernel and medrv are decimal variances
of daily log returns (1e-4 = 1% daily volatility); ``rq`` is decimal quarticity (about 1e-8 at 1% daily
volatility); ``ret`` (close-to-close) and ``ret_oc`` are decimal log returns (-0.02 = about -2%). A
symbol whose values look like percent squared, percent returns or volatilities makes the whole file a
:class:`~core.errors.DataError` that says what to multiply by; nothing of such a file is imported.

The date of a row is the LOCAL calendar date written in the stamp: the offset only says which zone the
exchange is in. Converting ``2000-01-03 00:00:00+01:00`` to UTC first would give 2000-01-02, the wrong
day. Measures map to :data:`~core.schema.REALIZED_SCHEMA` (``rv5`` -> ``rv``, ``rsv`` -> ``rs_neg``,
``open_to_close`` -> ``ret_oc``, ...); every other numeric column is kept in ``extra`` as a JSON
object, by column name.

A bad row (unparseable date, missing/invalid symbol, missing, NaN or negative rv, a negative bv, rq,
semivariance, kernel or medrv, an infinite or unparseable number, a duplicate symbol and day) goes to a
quarantine frame in :data:`~core.schema.QUARANTINE_SCHEMA` with ``file:line`` and a reason; nothing is
dropped silently. A problem with the file as a whole raises :class:`~core.errors.DataError` naming the
file.
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
    "rsv": "rs_neg",
    "open_to_close": "ret_oc",
    "close_price": "close_price",
    "nobs": "nobs",
}
#: Simple-layout columns that map to REALIZED_SCHEMA (the names are the schema's own).
SIMPLE_MEASURES = (
    "rv", "bv", "rq", "rs_pos", "rs_neg", "rk_parzen", "medrv", "ret", "ret_oc", "close_price", "nobs",
)  # fmt: skip
#: Other names the simple layout accepts for a REALIZED_SCHEMA column.
SIMPLE_ALIASES = {"rk": "rk_parzen"}
SIMPLE_LAYOUT = "date,symbol,rv[,bv][,rq][,rs_pos,rs_neg][,rk][,ret]"

_DELIMITER = ","
_MEASURES = SIMPLE_MEASURES
_NON_NEGATIVE = ("bv", "rq", "rs_pos", "rs_neg", "rk_parzen", "medrv")
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
    return _simple_columns(header, path)


def _simple_columns(header: list[str], path: Path) -> _Columns:
    """The simple layout's columns: ``rk`` names the realized kernel; ``rs_pos``/``rs_neg`` come as a pair."""
    missing = [c for c in ("date", "symbol", "rv") if c not in header]
    if missing:
        raise DataError(
            f"header {header} lacks column(s) {missing} of the simple realized layout ({SIMPLE_LAYOUT})",
            location=f"{path}:1",
        )
    mapped = {h: SIMPLE_ALIASES.get(h, h) for h in header if h in SIMPLE_MEASURES or h in SIMPLE_ALIASES}
    twice = sorted(h for h in mapped if list(mapped.values()).count(mapped[h]) > 1)
    if twice:
        raise DataError(
            f"header names the same measure twice ({' and '.join(twice)}: both are the realized kernel); "
            "keep one of them",
            location=f"{path}:1",
        )
    half = [(have, lack) for have, lack in (("rs_pos", "rs_neg"), ("rs_neg", "rs_pos")) if have in mapped]
    if len(half) == 1:
        have, lack = half[0]
        raise DataError(
            f"header has {have} but not {lack}: the realized semivariances come as a pair "
            f"(rs_pos + rs_neg = rv); add the {lack} column or drop {have}",
            location=f"{path}:1",
        )
    known = {"date", "symbol", *SIMPLE_MEASURES, *SIMPLE_ALIASES}
    return _Columns(
        layout="simple",
        date="date",
        symbol="symbol",
        mapped=mapped,
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
    check_units(realized, cols, path)
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
            f"comma-separated Oxford-Man layout (',Symbol,...,rv5,...') or '{SIMPLE_LAYOUT}'",
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
    if cols.layout == "oxfordman" and "rs_neg" in frame.columns:
        # rsv is the downside semivariance of the same 5-minute returns as rv5: the upside is the rest.
        frame = frame.with_columns((pl.col("rv") - pl.col("rs_neg")).clip(lower_bound=0.0).alias("rs_pos"))
    out = frame.with_columns(
        [pl.lit(None, dtype=REALIZED_SCHEMA[c]).alias(c) for c in _MEASURES if c not in frame.columns]
    ).with_columns(pl.lit(source).alias("source"), extra.alias("extra"))
    return out.select([pl.col(c).cast(t) for c, t in REALIZED_SCHEMA.items()]).sort(["symbol", "date"])


# --- units --------------------------------------------------------------------------------------------

#: Median daily rv above this is not a decimal variance (it would be a median daily volatility of 10%).
RV_MAX_MEDIAN = 1e-2
#: Median daily |return| above this is not a decimal log return (a typical move of 20% a day).
RET_MAX_MEDIAN = 0.2
#: mean(rv) / mean(ret**2) in [low, high): rv looks like a volatility (checked on enough days, see below).
VOL_RATIO = (20.0, 1000.0)
#: Days with both rv and a return needed before the ratio is trusted.
VOL_RATIO_MIN_DAYS = 20
_VARIANCES = ("rv", "bv", "rs_pos", "rs_neg", "rk_parzen", "medrv")
_RETURNS = ("ret", "ret_oc")
_EXPECTED = "volrisk expects decimal variance of daily log returns"


def check_units(realized: pl.DataFrame, cols: _Columns, path: Path) -> None:
    """Refuse the file when a symbol's measures are not decimal variances of daily log returns.

    Per symbol, over its kept rows: a median ``|ret|`` (or ``|ret_oc|``) above :data:`RET_MAX_MEDIAN`
    is percent returns (x0.01); with at least :data:`VOL_RATIO_MIN_DAYS` days that have rv and a return
    (``ret``, else ``ret_oc``), ``mean(rv) / mean(ret**2)`` within :data:`VOL_RATIO` is rv given as
    volatility (about 1 for variances, ``1/sigma`` for volatilities, ``1e4`` for percent squared); a
    median rv above :data:`RV_MAX_MEDIAN` is percent squared (variances x1e-4, rq x1e-8).

    Raises
    ------
    DataError
        Naming the file, the symbol(s) and what to multiply by; nothing of the file is imported.
    """
    if realized.height == 0:
        return
    names = {target: h for h, target in cols.mapped.items()}
    problems = [
        (symbol, msg)
        for symbol, stats in _unit_stats(realized).items()
        if (msg := _unit_problem(stats, names))
    ]
    if not problems:
        return
    symbol, msg = problems[0]
    more = [s for s, _ in problems[1:]]
    tail = f" ({len(more)} more symbol(s) alike: {', '.join(more[:5])}{', ...' if len(more) > 5 else ''})"
    raise DataError(
        f"symbol {symbol}: {msg}; nothing of this file was imported{tail if more else ''}", location=str(path)
    )


def _unit_stats(realized: pl.DataFrame) -> dict[str, dict[str, float | None]]:
    """Per symbol: median rv and |returns|, and mean(rv) / mean(ret**2) with its day count."""
    r = pl.coalesce("ret", "ret_oc")
    both = r.is_not_null()
    stats = realized.group_by("symbol").agg(
        pl.col("rv").median().alias("rv"),
        *[pl.col(c).abs().median().alias(c) for c in _RETURNS],
        pl.col("rv").filter(both).mean().alias("rv_mean"),
        (r**2).filter(both).mean().alias("r2_mean"),
        both.sum().alias("days"),
    )
    return {row.pop("symbol"): row for row in stats.sort("symbol").iter_rows(named=True)}


def _unit_problem(stats: dict[str, float | None], names: dict[str, str]) -> str | None:
    """What is wrong with one symbol's units, with what to multiply by; ``None`` when they look right."""
    percent = [c for c in _RETURNS if (stats[c] or 0.0) > RET_MAX_MEDIAN]
    problems = [_percent_returns_message(stats, percent, names)] if percent else []
    ratio = None
    if not percent and (stats["days"] or 0) >= VOL_RATIO_MIN_DAYS and (stats["r2_mean"] or 0.0) > 0:
        ratio = (stats["rv_mean"] or 0.0) / (stats["r2_mean"] or 1.0)
    if ratio is not None and VOL_RATIO[0] <= ratio < VOL_RATIO[1]:
        problems.append(_volatility_message(stats, ratio, names))
    elif (stats["rv"] or 0.0) > RV_MAX_MEDIAN:
        problems.append(_percent_squared_message(stats, ratio, names))
    return "; ".join(problems) or None


def _percent_returns_message(
    stats: dict[str, float | None], percent: list[str], names: dict[str, str]
) -> str:
    worst = percent[0]
    m = stats[worst] or 0.0
    return (
        f"median |{names[worst]}| is {m:.3g}, which looks like percent returns ({m:.3g}% = {m / 100:.3g}); "
        "volrisk expects daily log returns as decimals (-0.02 = about -2%): multiply "
        f"{', '.join(names[c] for c in percent)} by 0.01"
    )


def _volatility_message(stats: dict[str, float | None], ratio: float, names: dict[str, str]) -> str:
    variances = ", ".join(names[c] for c in _VARIANCES if c in names)
    ret = names.get("ret", names.get("ret_oc", "ret"))
    return (
        f"mean {names['rv']} is {stats['rv_mean']:.3g} against a mean squared {ret} of "
        f"{stats['r2_mean']:.3g} (ratio {ratio:.0f}; about 1 for variances), which looks like "
        f"volatility (the square root of variance); {_EXPECTED}: square {variances}"
    )


def _percent_squared_message(
    stats: dict[str, float | None], ratio: float | None, names: dict[str, str]
) -> str:
    m = stats["rv"] or 0.0
    variances = ", ".join(names[c] for c in _VARIANCES if c in names)
    also = f" and {names['rq']} (quarticity) by 1e-8" if "rq" in names else ""
    if ratio is not None and ratio < VOL_RATIO[0]:
        rets = ", ".join(names[c] for c in _RETURNS if c in names)
        also += f", and {rets} by 0.01 (they agree with rv, so they look like percent too)"
    return (
        f"median {names['rv']} is {m:.3g}, which looks like percent squared ({m:.3g} %^2 = {m * 1e-4:.3g} "
        f"decimal); {_EXPECTED}: multiply {variances} by 1e-4{also}"
    )
