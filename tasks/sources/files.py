"""Reading vendor bar files into normalized UTC, bar-start bars.

One reader serves every :class:`~tasks.sources.layouts.Layout`. It never raises on a bad row:
such rows go to quarantine with the file, the line number and a reason. It raises
:class:`~core.errors.DataError` (naming the file) only when the file as a whole is unusable: empty,
header only, binary, the wrong encoding, the wrong delimiter, or missing columns.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from core.errors import ConfigError, DataError
from core.schema import BAR_SCHEMA, INTERVALS, QUARANTINE_SCHEMA, UTC_TS
from core.symbols import validate_symbol
from tasks.bar_checks import check_bars
from tasks.sources.clock import reclock_weeks
from tasks.sources.layouts import LAYOUTS, Layout, detect_layout, header_variant, with_interval

#: Files larger than this are refused rather than read whole (split them first).
MAX_FILE_BYTES = 1 << 30
_SNIFF_BYTES = 64 * 1024
_INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "1d": 86400}


@dataclass
class ParseResult:
    """What a file gave: bars, quarantined rows, and what the reader noticed."""

    bars: pl.DataFrame
    quarantine: pl.DataFrame
    layout: str
    interval: str
    checksum: str
    lines_read: int
    notes: list[str] = field(default_factory=list)


def file_checksum(path: Path) -> str:
    """sha256 of the file's bytes, streamed (used as the cache key's content hash)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_readable(path: Path) -> bytes:
    if not path.exists():
        raise DataError("file not found", location=str(path))
    if not path.is_file():
        raise DataError("not a regular file", location=str(path))
    size = path.stat().st_size
    if size == 0:
        raise DataError("file is empty", location=str(path))
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"file is {size / 2**30:.1f} GiB, above the {MAX_FILE_BYTES / 2**30:.0f} GiB limit for one "
            "file; split it (e.g. by month) and ingest the parts",
            location=str(path),
        )
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read file: {exc}", location=str(path)) from exc
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError("file is UTF-16 encoded; re-save it as UTF-8", location=str(path))
    if b"\x00" in head:
        nul_even, nul_odd, half = head[0::2].count(0), head[1::2].count(0), len(head) // 2
        if len(head) >= 16 and max(nul_even, nul_odd) > 0.9 * half and min(nul_even, nul_odd) < 0.1 * half:
            # ASCII text saved as UTF-16 without a byte-order mark: every other byte is NUL
            raise DataError(
                "file looks binary: every other byte is NUL, i.e. UTF-16 text without a byte-order mark; "
                "re-save it as UTF-8",
                location=str(path),
            )
        raise DataError("file looks binary (NUL bytes); expected a text CSV", location=str(path))
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte char cut by the sniff window
            raise DataError(
                f"file is not UTF-8 text (byte {exc.start}); expected a UTF-8 CSV", location=str(path)
            ) from exc
    return head


def _read_lines(path: Path) -> pl.DataFrame:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot decompress file: {exc}", location=str(path)) from exc
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = pl.Series("raw", [text]).str.split("\n").explode()
    frame = pl.DataFrame({"raw": lines.str.strip_suffix("\r")}).with_row_index("line", offset=1)
    return frame


def _infer_interval(ts: pl.Series, path: Path | None = None) -> str:
    diffs = ts.sort().diff().drop_nulls().dt.total_seconds()
    diffs = diffs.filter(diffs > 0)
    if diffs.len() == 0:
        raise ConfigError(
            "cannot infer the bar interval from fewer than two distinct timestamps; pass --interval"
        )
    step = float(diffs.mode().min())  # type: ignore[arg-type]
    # A file that mixes bar intervals (minute bars, then hourly ones) would store one as the other: a
    # second bar spacing that is itself an interval and covers a fifth of the steps is refused.
    other = diffs.filter(diffs != step).value_counts(sort=True)
    if other.height:
        spacing, count = float(other.row(0)[0]), int(other.row(0)[1])
        if spacing in _INTERVAL_SECONDS.values() and count >= max(3, 0.2 * diffs.len()):
            names = {v: k for k, v in _INTERVAL_SECONDS.items()}
            raise DataError(
                f"file mixes bar intervals: {int((diffs == step).sum())} steps of {step:g}s and {count} of "
                f"{names[int(spacing)]}; split it into one file per interval, or pass --interval",
                location=str(path) if path else None,
            )
    for name, seconds in _INTERVAL_SECONDS.items():
        if step == seconds:
            return name
    raise ConfigError(
        f"the most common spacing between bars is {step:g}s, which is none of {list(_INTERVAL_SECONDS)}; "
        "pass --interval"
    )


def split_lines(
    body: pl.DataFrame,
    names: list[str],
    delimiter: str,
    path: Path,
    *,
    hint: str = "",
    wrong_what: str = "Wrong delimiter?",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split text lines into string columns ``names``; lines with another field count are quarantined.

    Parameters
    ----------
    body : pl.DataFrame
        ``line`` (1-based number) and ``raw`` (text) of the data lines.
    names : list[str]
        One column name per field.
    delimiter : str
        Field separator.
    path : Path
        The file, for locations and messages.
    hint, wrong_what : str
        Extra words for the error raised when no line has the expected field count.

    Returns
    -------
    tuple[pl.DataFrame, pl.DataFrame]
        ``line``, ``raw`` and one column per name; and quarantined rows (location, reason, raw).
    """
    n_fields = len(names)
    counts = body["raw"].str.count_matches(delimiter, literal=True) + 1
    if body.height and int((counts == n_fields).sum()) == 0:
        raise DataError(
            f"no row has {n_fields} fields separated by {delimiter!r} {hint}; first row: "
            f"{body['raw'][0][:80]!r}. {wrong_what}".replace("  ", " "),
            location=str(path),
        )
    body = body.with_columns(counts.alias("_n"))
    wrong = body.filter(pl.col("_n") != n_fields).select(
        pl.format("{}:{}", pl.lit(str(path)), pl.col("line")).alias("location"),
        pl.format(
            "expected {} fields, got {} (truncated or malformed line)", pl.lit(n_fields), pl.col("_n")
        ).alias("reason"),
        pl.col("raw"),
    )
    good = body.filter(pl.col("_n") == n_fields)
    parts = good["raw"].str.split_exact(delimiter, n_fields - 1).struct.rename_fields(names)
    fields = pl.concat([good.select("line", "raw"), parts.struct.unnest()], how="horizontal")
    return fields, wrong


def _positional_names(body: pl.DataFrame, layout: Layout, path: Path) -> list[str]:
    """``col1..colN`` for a headerless generic file, N read from its first line; positions checked."""
    n_fields = body["raw"][0].count(layout.delimiter) + 1
    past = [c for c in layout.columns if int(c[3:]) > n_fields]
    if past:
        what = {layout.ts_columns[0]: "the timestamp", **layout.rename}
        named = ", ".join(f"{what.get(c, c)} -> column {c[3:]}" for c in past)
        raise DataError(
            f"rows have {n_fields} fields separated by {layout.delimiter!r}, but {named} points past them "
            f"(positions count from 1; first row: {body['raw'][0][:80]!r})",
            location=f"{path}:1",
        )
    return [f"col{i}" for i in range(1, n_fields + 1)]


def _looks_like_data(fields: list[str]) -> bool:
    """A first line whose first field is a date/number is data, not a header."""
    first = fields[0].strip().strip('"') if fields else ""
    return bool(re.match(r"^[\d.:/ T+-]+$", first)) and any(ch.isdigit() for ch in first)


def _check_header(header: list[str], layout: Layout, path: Path) -> None:
    missing = [c for c in layout.columns if c not in header]
    if not missing:
        return
    if _looks_like_data(header):
        raise DataError(
            f"the file seems to have no header: its first line {layout.delimiter.join(header)[:80]!r} "
            "is data. "
            "Pass --no-header and give columns by position (from 1): --format generic --no-header "
            "--ts-column 1 --column open=2 --column high=3 --column low=4 --column close=5 --tz UTC",
            location=f"{path}:1",
        )
    raise DataError(
        f"header {header} lacks column(s) {missing} required by format {layout.name!r} "
        f"(expected {list(layout.columns)}, delimiter {layout.delimiter!r})",
        location=f"{path}:1",
    )


def _split_fields(
    lines: pl.DataFrame, layout: Layout, path: Path
) -> tuple[pl.DataFrame, pl.DataFrame, list[str], Layout]:
    """Split lines into named string columns; rows with the wrong field count are quarantined.

    Returns the fields, the quarantined rows, the names of header columns the layout does not use,
    and the layout (adjusted to a known header spelling).
    """
    body = lines.filter(pl.col("raw").str.strip_chars() != "")
    if body.height == 0:
        raise DataError("file is empty", location=str(path))
    header_names = list(layout.columns)
    unknown: list[str] = []
    if layout.positional:
        header_names = _positional_names(body, layout, path)
    elif layout.header:
        header = [h.strip() for h in body["raw"][0].split(layout.delimiter)]
        layout = header_variant(layout, header)
        _check_header(header, layout, path)
        known = set(layout.columns) | set(layout.rename)
        repeated = sorted({h for h in header if h in known and header.count(h) > 1})
        if repeated:
            raise DataError(
                f"header {header} names column(s) {repeated} more than once; cannot tell which to use",
                location=f"{path}:1",
            )
        # Columns the layout does not use are carried under internal names: a header may repeat them or
        # use names the reader needs itself (line, raw, or a rename target such as 'open').
        unknown = [h for h in header if h not in known]
        header_names = [h if h in known else f"_unused_{i}" for i, h in enumerate(header)]
        body = body.slice(1)
        if body.height == 0:
            raise DataError("file has a header but no data rows", location=str(path))
    fields, wrong = split_lines(
        body,
        header_names,
        layout.delimiter,
        path,
        hint=f"as format {layout.name!r} expects",
        wrong_what="Wrong delimiter or wrong --format?",
    )
    if layout.positional:
        fields = fields.drop([c for c in header_names if c not in set(layout.columns) | set(layout.rename)])
    return fields, wrong, unknown, layout


# ISO-8601 as vendors write it. Each row is tried against every format: polars' own inference picks one
# format from the first row, so a single odd first row would make every other row unparseable.
_ISO_NAIVE = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
_ISO_OFFSET = (
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M%#z",
    "%Y-%m-%dT%H:%M%#z",
)


def _parse_ts(fields: pl.DataFrame, layout: Layout) -> tuple[pl.Expr, pl.Expr]:
    """Timestamp expressions: (naive local time, UTC time of stamps that carry an offset)."""
    text = pl.concat_str([pl.col(c).str.strip_chars() for c in layout.ts_columns], separator=" ")
    no_offset = pl.lit(None, dtype=UTC_TS)
    if layout.ts_format is None:
        naive = pl.coalesce([text.str.strptime(pl.Datetime("us"), f, strict=False) for f in _ISO_NAIVE])
        aware = pl.coalesce([text.str.strptime(UTC_TS, f, strict=False) for f in _ISO_OFFSET])
        return naive, aware
    if "%z" in layout.ts_format:
        return pl.lit(None, dtype=pl.Datetime("us")), text.str.strptime(
            UTC_TS, layout.ts_format, strict=False
        )
    return text.str.strptime(pl.Datetime("us"), layout.ts_format, strict=False), no_offset


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _check_parquet(path: Path) -> bytes:
    if not path.is_file():
        raise DataError("file not found", location=str(path))
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(
            f"file is above the {MAX_FILE_BYTES / 2**30:.0f} GiB limit for one file; split it",
            location=str(path),
        )
    try:
        pl.read_parquet_schema(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the same to the user
        raise DataError(
            f"not a readable Parquet file ({type(exc).__name__}: {exc})", location=str(path)
        ) from exc
    return b""


def _parquet_fields(path: Path, layout: Layout) -> tuple[pl.DataFrame, Layout, list[str]]:
    """A Parquet file as the text fields the CSV path produces: one string column per field.

    Datetime columns become ISO-8601 text (tz-aware ones in UTC with ``+00:00``), so the same
    time-zone, DST and quarantine rules apply as for CSV; ``line`` is the 1-based row number.
    """
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001
        raise DataError(
            f"cannot read Parquet file ({type(exc).__name__}: {exc})", location=str(path)
        ) from exc
    missing = [c for c in layout.columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"Parquet columns {frame.columns} lack {missing} required by format {layout.name!r}",
            location=str(path),
        )
    if frame.height == 0:
        raise DataError("Parquet file has no rows", location=str(path))
    known = set(layout.columns) | set(layout.rename)
    unknown = [c for c in frame.columns if c not in known]
    frame = frame.drop(unknown)
    exprs: list[pl.Expr] = []
    iso = False
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            iso = iso or name in layout.ts_columns
            if dtype.time_zone:
                exprs.append(col.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.f+00:00"))
            else:
                exprs.append(col.dt.strftime("%Y-%m-%dT%H:%M:%S%.f"))
        elif dtype == pl.Date:
            iso = iso or name in layout.ts_columns
            exprs.append(col.dt.strftime("%Y-%m-%d"))
        else:
            exprs.append(col.cast(pl.String))
    raw = pl.struct(pl.all()).struct.json_encode().alias("raw")
    fields = frame.select(raw, *exprs).with_row_index("line", offset=1)
    return fields, (replace(layout, ts_format=None) if iso else layout), unknown


def read_bars_file(
    path: Path | str,
    *,
    symbol: str,
    fmt: str | Layout | None = None,
    interval: str | None = None,
    source: str | None = None,
) -> ParseResult:
    """Read one vendor file into normalized bars plus quarantined rows.

    Parameters
    ----------
    path : Path | str
        The file.
    symbol : str
        The instrument (validated against the symbol pattern).
    fmt : str | Layout | None
        A format name from :data:`~tasks.sources.layouts.LAYOUTS`, a custom :class:`Layout`
        (see :func:`~tasks.sources.layouts.generic_layout`), or ``None`` to detect it.
    interval : str | None
        Bar interval; inferred from the stamps when the format does not fix it.
    source : str | None
        Source label stored with the bars; defaults to the format name.

    Returns
    -------
    ParseResult
        Bars in UTC stamped at bar start, quarantined rows with reasons, and notes.
    """
    path = Path(path)
    validate_symbol(symbol)
    if interval is not None and interval not in INTERVALS:
        raise ConfigError(f"interval {interval!r} is not one of {list(INTERVALS)}")
    head = _check_readable(path) if not _is_parquet(path) else _check_parquet(path)
    layout = with_interval(_choose_layout(path, fmt, head), interval)
    fields, wrong_width, unknown, layout, lines_read = _read_fields(path, layout)
    notes: list[str] = [f"ignored unknown columns {unknown}"] if unknown else []

    frame, tz_bad = _stamped(fields, layout, path, notes)
    if frame.height == 0 and tz_bad.height + wrong_width.height == 0:
        raise DataError("file has no data rows", location=str(path))
    bars, resolved_interval = _to_bars(frame, layout, path, symbol=symbol, source=source)
    checked = check_bars(bars)
    if resolved_interval == "unknown" and checked.bars.height:
        raise ConfigError(
            f"{path}: one usable bar cannot show its interval; pass --interval (one of {list(INTERVALS)})"
        )
    quarantine = pl.concat([wrong_width, tz_bad, checked.quarantine]).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    if quarantine.height:
        notes.append(_quarantine_note(quarantine))
    return ParseResult(
        bars=checked.bars.select(BAR_SCHEMA.keys()),
        quarantine=quarantine,
        layout=layout.name,
        interval=resolved_interval,
        checksum=file_checksum(path),
        lines_read=lines_read,
        notes=notes + checked.notes,
    )


def _choose_layout(path: Path, fmt: str | Layout | None, head: bytes) -> Layout:
    """The layout named by ``fmt``, or the one detected from the file's header (``fmt=None``)."""
    if fmt is None and _is_parquet(path):
        return detect_layout(path, [",".join(pl.read_parquet_schema(path))])
    if fmt is None:
        return detect_layout(path, head.decode("utf-8", errors="replace").splitlines()[:200])
    if isinstance(fmt, Layout):
        return fmt
    if fmt in LAYOUTS:
        return LAYOUTS[fmt]
    raise ConfigError(f"unknown format {fmt!r}; expected one of {sorted(LAYOUTS)} or 'generic'")


def _read_fields(path: Path, layout: Layout) -> tuple[pl.DataFrame, pl.DataFrame, list[str], Layout, int]:
    """The file's fields, rows of the wrong width, unknown columns, the final layout and lines read."""
    if _is_parquet(path):
        fields, layout, unknown = _parquet_fields(path, layout)
        return fields, pl.DataFrame(schema=QUARANTINE_SCHEMA), unknown, layout, fields.height
    lines = _read_lines(path)
    fields, wrong_width, unknown, layout = _split_fields(lines, layout, path)
    lines_read = int(lines.filter(pl.col("raw").str.strip_chars() != "").height)
    return fields, wrong_width, unknown, layout, lines_read


def _stamped(
    fields: pl.DataFrame, layout: Layout, path: Path, notes: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse stamps and prices into UTC rows, and the rows whose stamp is quarantined (``notes`` grow)."""
    naive, aware = _parse_ts(fields, layout)
    frame = fields.with_columns(naive.alias("_ts_naive"), aware.alias("_ts_aware"))
    if layout.name == "histdata":
        frame, note = _reclock(frame)
        notes += [note] if note else []
    frame = _apply_prices(frame, layout)
    return _to_utc(frame, layout, path)


def _to_bars(
    frame: pl.DataFrame, layout: Layout, path: Path, *, symbol: str, source: str | None
) -> tuple[pl.DataFrame, str]:
    """Stamp UTC rows at bar start in the bar columns; return them and the resolved interval."""
    # With no usable row there is nothing to infer from (and nothing to stamp): every line is
    # in quarantine. A single row cannot show its interval: ask for --interval.
    distinct = frame["ts"].drop_nulls().n_unique()
    resolved_interval = layout.interval or (
        _infer_interval(frame["ts"].drop_nulls(), path) if distinct > 1 else "unknown"
    )
    if layout.stamp == "end" and resolved_interval in _INTERVAL_SECONDS:
        frame = frame.with_columns(pl.col("ts") - pl.duration(seconds=_INTERVAL_SECONDS[resolved_interval]))
    if layout.name == "lean_equity" and resolved_interval == "1h":
        frame = _lean_first_hour(frame)
    bars = frame.select(
        pl.lit(symbol).alias("symbol"),
        pl.lit(resolved_interval).alias("interval"),
        pl.col("ts").cast(UTC_TS),
        *[pl.col(c) for c in ("open", "high", "low", "close", "volume")],
        pl.lit(source or layout.name).alias("source"),
        pl.format("{}:{}", pl.lit(str(path)), pl.col("line")).alias("location"),
        pl.col("raw"),
    )
    return bars, resolved_interval


def _quarantine_note(quarantine: pl.DataFrame) -> str:
    reasons = quarantine.group_by("reason").len().sort("len", descending=True)
    summary = ", ".join(f"{r} ({n})" for r, n in reasons.iter_rows())
    return f"{quarantine.height} rows quarantined: {summary}"


def _reclock(frame: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """Put weeks whose clock ran off New York time back on it (see :mod:`tasks.sources.clock`)."""
    rows = frame.with_row_index("_i").filter(pl.col("_ts_naive").is_not_null())
    if rows.height < 2:
        return frame, None
    fix = reclock_weeks(rows["_ts_naive"])
    if not fix.weeks:
        return frame, None
    shifts = pl.DataFrame({"_i": rows["_i"], "_shift": fix.shift_hours})
    frame = (
        frame.with_row_index("_i")
        .join(shifts, on="_i", how="left", maintain_order="left")
        .with_columns(
            (pl.col("_ts_naive") + pl.duration(hours=pl.col("_shift").fill_null(0))).alias("_ts_naive")
        )
        .drop("_i", "_shift")
    )
    return frame, fix.note()


def _apply_prices(frame: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    frame = frame.rename({k: v for k, v in layout.rename.items() if k in frame.columns})
    if layout.prices == "bidask_mid":
        frame = frame.with_columns(
            [
                (
                    (
                        pl.col(f"bid_{p}").str.strip_chars().cast(pl.Float64, strict=False)
                        + pl.col(f"ask_{p}").str.strip_chars().cast(pl.Float64, strict=False)
                    )
                    / 2
                ).alias(p)
                for p in ("open", "high", "low", "close")
            ]
        ).with_columns(pl.lit(None, dtype=pl.Float64).alias("volume"))
    else:
        if "volume" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("volume"))
        frame = frame.with_columns(
            [
                pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
                for c in ("open", "high", "low", "close", "volume")
            ]
        )
    return frame


def _to_utc(frame: pl.DataFrame, layout: Layout, path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Convert local stamps to UTC; unparseable stamps and DST gaps/overlaps are quarantined."""
    naive = pl.col("_ts_naive")
    aware = pl.col("_ts_aware")
    location = pl.format("{}:{}", pl.lit(str(path)), pl.col("line"))
    ts_text = pl.concat_str([pl.col(c) for c in layout.ts_columns], separator=" ")
    early = naive.dt.replace_time_zone(layout.tz, ambiguous="earliest", non_existent="null")
    late = naive.dt.replace_time_zone(layout.tz, ambiguous="latest", non_existent="null")
    frame = frame.with_columns(early.alias("_early"), late.alias("_late"))
    # A stamp with an offset is an instant already; only naive stamps are read in the layout's zone.
    reason = (
        pl.when(aware.is_not_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(naive.is_null())
        .then(
            pl.format(
                "unparseable timestamp '{}' (expected format {})",
                ts_text,
                pl.lit(layout.ts_format or "ISO-8601"),
            )
        )
        .when(pl.col("_early").is_null())
        .then(pl.format("local time {} does not exist in {} (DST gap)", ts_text, pl.lit(layout.tz)))
        .when(pl.col("_early") != pl.col("_late"))
        .then(pl.format("local time {} is ambiguous in {} (DST overlap)", ts_text, pl.lit(layout.tz)))
    )
    frame = frame.with_columns(pl.coalesce([aware, pl.col("_early").dt.convert_time_zone("UTC")]).alias("ts"))
    frame = frame.with_columns(reason.alias("_reason"))
    bad = frame.filter(pl.col("_reason").is_not_null()).select(
        location.alias("location"), pl.col("_reason").alias("reason"), pl.col("raw")
    )
    return frame.filter(pl.col("_reason").is_null()), bad


def _lean_first_hour(frame: pl.DataFrame) -> pl.DataFrame:
    """Lean stamps the 09:30-10:00 hourly bar 09:00 ET; restamp it at its real start, 09:30."""
    local = pl.col("ts").dt.convert_time_zone("America/New_York")
    first = (local.dt.hour() == 9) & (local.dt.minute() == 0)
    return frame.with_columns(
        pl.when(first).then(pl.col("ts") + pl.duration(minutes=30)).otherwise(pl.col("ts")).alias("ts")
    )
