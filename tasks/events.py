"""Economic events: loading calendars, surprise z-scores and per-session event features.

Pure functions, polars in and out, except the three ``read_*`` loaders, which read one file each, and
:func:`load_event_calendar`, which combines them.

Normalized events frame (:data:`EVENTS_SCHEMA`)
------------------------------------------------
``event_ts``
    Release instant, UTC.
``date``
    Calendar date of ``event_ts`` in America/New_York (US releases are scheduled in New York time).
``type``
    Upper-case event type: ``FOMC``, ``CPI``, ``NFP`` or any other the user names.
``name``
    The source's own event name (``"Core CPI m/m"``, ``"FOMC rate decision (SEP)"``).
``scheduled``
    Whether the release time was on a public calendar in advance. Only scheduled events raise the
    target-session flags of :func:`event_features`; an unscheduled one (the emergency FOMC meetings of
    2020-03-03 and 2020-03-15) was unknowable beforehand.
``actual``, ``forecast``, ``previous``
    Parsed numbers (:func:`parse_value`); null where the source has none.
``surprise``
    ``actual - forecast`` (null when either is null).
``surprise_z``
    ``surprise`` divided by the sample standard deviation (ddof=1) of the surprises of the SAME type
    released STRICTLY BEFORE this event (expanding window, no look-ahead). Null until ``min_count``
    earlier surprises of that type exist, and when that standard deviation is 0. Events released at the
    same instant (CPI m/m and Core CPI m/m) do not see each other. The mean of past surprises is not
    subtracted: a consensus forecast should be unbiased, and a z of 0 must mean "as expected".
``source``
    File name the row came from.

Event features (:func:`event_features`)
---------------------------------------
For an origin session ``t`` and its target ``T = t + horizon`` (per the session calendar):

* ``sched_<type>`` (0/1): a SCHEDULED event of that type is released in ``(close(T-1), close(T)]``,
  i.e. inside the window whose news the close-to-close return of ``T`` absorbs (an 08:30 New York CPI
  release belongs to that day's equity session). Only timestamps of scheduled events are read, never
  their values.
* ``known_<type>``: the target window overlaps the span ``[first, last]`` release of that type in the
  events frame, so a 0 flag means "no event" rather than "not covered by the calendar".
* ``z_<type>`` and ``z_age_<type>``: the surprise z of the latest release of that type at or before
  the origin's ``session_end`` (the mean over rows released at that same instant that have a z), and
  its age in days at ``session_end``. Null when there is none. An event released after the origin's
  ``session_end`` is invisible at that origin.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from tasks.calendars import session_bounds, sessions_between, validate_calendar

#: Event types that get target-session flags and surprise features by default.
EVENT_TYPES: tuple[str, ...] = ("FOMC", "CPI", "NFP")
#: Time zone that defines the ``date`` column and the default of user CSVs.
NEW_YORK = "America/New_York"
#: Minimum number of earlier surprises of a type before a surprise z is defined.
DEFAULT_MIN_COUNT = 5

_UTC = pl.Datetime("us", "UTC")
EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "event_ts": _UTC,
    "date": pl.Date(),
    "type": pl.String(),
    "name": pl.String(),
    "currency": pl.String(),
    "scheduled": pl.Boolean(),
    "actual": pl.Float64(),
    "forecast": pl.Float64(),
    "previous": pl.Float64(),
    "surprise": pl.Float64(),
    "surprise_z": pl.Float64(),
    "source": pl.String(),
}

#: ForexFactory event name -> event type (exact names; "ADP Non-Farm Employment Change" is NOT NFP).
FOREXFACTORY_TYPES: dict[str, str] = {
    "Non-Farm Employment Change": "NFP",
    "CPI m/m": "CPI",
    "Core CPI m/m": "CPI",
    "FOMC Statement": "FOMC",
    "Federal Funds Rate": "FOMC",
}
#: Scheduled FOMC decisions have been announced at 14:00 New York since 2013.
FOMC_SCHEDULED_TIME = "14:00"

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
_VALUE = re.compile(r"^([<>]=?|[≤≥])?\s*([+-]?(?:\d+(?:,\d{3})*|\d*)(?:\.\d+)?)\s*([KMBT%]?)$", re.IGNORECASE)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_USER_REQUIRED = ("date", "time", "type", "actual", "forecast")
_USER_OPTIONAL = ("previous", "currency", "scheduled", "name")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


# --------------------------------------------------------------------------------------------- values
def parse_value(text: str | None) -> float | None:
    """Parse a calendar value string into a float.

    ``"2509K"`` -> 2509000.0, ``"1.5M"`` -> 1500000.0, ``"-0.2%"`` -> -0.2 (percent values stay in
    percent), ``"<0.25%"`` -> 0.25 (a bound is read as its value), ``"1,234"`` -> 1234.0. Suffixes K,
    M, B, T are case-insensitive.

    Parameters
    ----------
    text : str | None
        The raw string; ``None``, empty or whitespace give ``None``.

    Returns
    -------
    float | None

    Raises
    ------
    ValueError
        When the string is not a number in one of these forms (e.g. ``"0.14|1.2"``).
    """
    if text is None:
        return None
    s = text.strip()
    if not s:
        return None
    m = _VALUE.match(s)
    if m is None or m.group(2) in ("", "+", "-", "."):
        raise ValueError(f"cannot parse value {text!r}; expected e.g. '2509K', '-0.2%', '1.5M', '<0.25%'")
    number = float(m.group(2).replace(",", ""))
    suffix = m.group(3).upper()
    value = number * _SUFFIX["" if suffix == "%" else suffix]
    if not math.isfinite(value):
        raise ValueError(f"value {text!r} is not finite")
    return value


def _parse_bool(text: str, *, where: str, column: str) -> bool:
    s = text.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise DataError(f"column {column!r}: expected 1/0/true/false, got {text!r}", location=where)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {tz!r}; use an IANA name such as 'America/New_York'") from exc


def _local_to_utc(day: date, hour: int, minute: int, second: int, zone: ZoneInfo, where: str) -> datetime:
    """Local wall time -> UTC; a time skipped by a DST change is refused, a repeated one takes the first."""
    naive = datetime(day.year, day.month, day.day, hour, minute, second)
    local = naive.replace(tzinfo=zone, fold=0)
    back = local.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None)
    if back != naive:
        raise DataError(f"local time {naive} does not exist in {zone.key} (DST gap)", location=where)
    return local.astimezone(ZoneInfo("UTC"))


# ---------------------------------------------------------------------------------------------- frame
def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Rows (without surprise columns) -> a sorted frame in :data:`EVENTS_SCHEMA`."""
    base = {c: t for c, t in EVENTS_SCHEMA.items() if c not in ("date", "surprise", "surprise_z")}
    frame = pl.DataFrame(rows, schema=base) if rows else pl.DataFrame(schema=base)
    frame = frame.with_columns(
        pl.col("event_ts").dt.convert_time_zone(NEW_YORK).dt.date().alias("date"),
        (pl.col("actual") - pl.col("forecast")).alias("surprise"),
        pl.lit(None, pl.Float64).alias("surprise_z"),
    )
    return frame.select(list(EVENTS_SCHEMA)).sort(["event_ts", "type", "name"], maintain_order=True)


def empty_events() -> pl.DataFrame:
    """A zero-row frame in :data:`EVENTS_SCHEMA`."""
    return pl.DataFrame(schema=EVENTS_SCHEMA)


def check_events(events: pl.DataFrame) -> pl.DataFrame:
    """Return ``events`` in :data:`EVENTS_SCHEMA` column order, or raise :class:`DataError`.

    Raises
    ------
    DataError
        When a column is missing or has the wrong type, or ``event_ts``/``type`` is null.
    """
    missing = [c for c in EVENTS_SCHEMA if c not in events.columns]
    if missing:
        raise DataError(f"events frame lacks columns {missing}; build it with tasks.events loaders")
    wrong = [
        f"{c}: {events.schema[c]} (expected {t})" for c, t in EVENTS_SCHEMA.items() if events.schema[c] != t
    ]
    if wrong:
        raise DataError(f"events frame has wrong column types: {wrong}")
    if events.height and (events["event_ts"].null_count() or events["type"].null_count()):
        raise DataError("events frame has null event_ts or type")
    return events.select(list(EVENTS_SCHEMA))


def surprise_zscores(events: pl.DataFrame, *, min_count: int = DEFAULT_MIN_COUNT) -> pl.DataFrame:
    """Recompute ``surprise`` and ``surprise_z`` from past surprises only (see the module docstring).

    Parameters
    ----------
    events : pl.DataFrame
        Frame in :data:`EVENTS_SCHEMA`.
    min_count : int
        Earlier non-null surprises of the same type needed before a z is defined (>= 2).

    Returns
    -------
    pl.DataFrame
        ``events`` sorted by (event_ts, type, name) with both columns recomputed.
    """
    if min_count < 2:
        raise ConfigError(f"min_count must be >= 2 (a standard deviation needs two values); got {min_count}")
    events = check_events(events).sort(["event_ts", "type", "name"], maintain_order=True)
    events = events.with_columns((pl.col("actual") - pl.col("forecast")).alias("surprise"))
    ts = events["event_ts"].dt.epoch("us").to_numpy()
    types = events["type"].to_list()
    surprise = events["surprise"].to_numpy(allow_copy=True).astype(float)  # null -> nan
    z = np.full(events.height, np.nan)
    for kind in set(types):
        idx = np.flatnonzero(np.array([t == kind for t in types]))
        # Welford over earlier release instants only; rows sharing an instant are added together after.
        n, mean, m2 = 0, 0.0, 0.0
        start = 0
        while start < idx.size:
            stop = start
            while stop < idx.size and ts[idx[stop]] == ts[idx[start]]:
                stop += 1
            group = idx[start:stop]
            if n >= min_count:
                sd = math.sqrt(m2 / (n - 1))
                if sd > 0:
                    z[group] = surprise[group] / sd
            for s in surprise[group]:
                if np.isfinite(s):
                    n += 1
                    delta = s - mean
                    mean += delta / n
                    m2 += delta * (s - mean)
            start = stop
    return events.with_columns(pl.Series("surprise_z", z, dtype=pl.Float64).fill_nan(None))


def combine_events(*frames: pl.DataFrame, min_count: int = DEFAULT_MIN_COUNT) -> pl.DataFrame:
    """Concatenate event frames, drop repeated (type, name, event_ts) rows, recompute surprise z.

    Parameters
    ----------
    *frames : pl.DataFrame
        Frames in :data:`EVENTS_SCHEMA` (e.g. the FOMC dates and a ForexFactory export).
    min_count : int
        See :func:`surprise_zscores`.

    Returns
    -------
    pl.DataFrame
    """
    parts = [check_events(f) for f in frames]
    if not parts:
        return empty_events()
    merged = pl.concat(parts).unique(subset=["type", "name", "event_ts"], keep="first", maintain_order=True)
    return surprise_zscores(merged, min_count=min_count)


# -------------------------------------------------------------------------------------------- loaders
def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError("events file not found", location=str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc}", location=str(path)) from exc
    if not text.strip():
        raise DataError("events file is empty", location=str(path))
    return text


def _rows(
    text: str, path: Path, required: Sequence[str]
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line number, row)]) of a CSV; the header must hold ``required``."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration as exc:  # pragma: no cover - _read_text refuses empty files
        raise DataError("events file is empty", location=str(path)) from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"missing column(s) {missing}; header is {header}", location=f"{path}:1")
    rows: list[tuple[int, dict[str, str]]] = []
    for cells in reader:
        line = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DataError(f"expected {len(header)} fields, got {len(cells)}", location=f"{path}:{line}")
        rows.append((line, dict(zip(header, (c.strip() for c in cells), strict=True))))
    if not rows:
        raise DataError("events file has a header but no rows", location=str(path))
    return header, rows


def _value(row: dict[str, str], column: str, where: str) -> float | None:
    try:
        return parse_value(row.get(column))
    except ValueError as exc:
        raise DataError(f"column {column!r}: {exc}", location=where) from exc


def _date(text: str, where: str, column: str = "date") -> date:
    if not _DATE.match(text):
        raise DataError(f"column {column!r}: expected YYYY-MM-DD, got {text!r}", location=where)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise DataError(f"column {column!r}: invalid date {text!r}", location=where) from exc


def _time(text: str, where: str, column: str = "time") -> tuple[int, int, int]:
    m = _TIME.match(text)
    if m is None:
        raise DataError(f"column {column!r}: expected HH:MM or HH:MM:SS, got {text!r}", location=where)
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise DataError(f"column {column!r}: invalid time {text!r}", location=where)
    return hour, minute, second


def read_events_csv(
    path: str | Path, *, tz: str = NEW_YORK, min_count: int = DEFAULT_MIN_COUNT
) -> pl.DataFrame:
    """Read a user event file ``date,time,type,actual,forecast[,previous][,currency][,scheduled][,name]``.

    Parameters
    ----------
    path : str | Path
        CSV with a header row. ``date`` is ``YYYY-MM-DD``, ``time`` is ``HH:MM[:SS]`` wall time in
        ``tz``; ``type`` is upper-cased (``FOMC``, ``CPI``, ``NFP``, ...); values use
        :func:`parse_value` forms and may be empty. ``scheduled`` (1/0, default 1) and ``name``
        (default: the type) are optional; ``currency`` defaults to ``USD``.
    tz : str
        IANA time zone of ``date``/``time`` (default America/New_York).
    min_count : int
        See :func:`surprise_zscores`.

    Returns
    -------
    pl.DataFrame
        :data:`EVENTS_SCHEMA`, sorted by ``event_ts``.

    Raises
    ------
    DataError
        Naming ``file:line`` and the column for any unusable row.
    """
    path = Path(path)
    zone = _zone(tz)
    _, rows = _rows(_read_text(path), path, _USER_REQUIRED)
    out: list[dict[str, object]] = []
    for line, row in rows:
        where = f"{path}:{line}"
        day = _date(row["date"], where)
        hour, minute, second = _time(row["time"], where)
        kind = row["type"].upper()
        if not kind:
            raise DataError("column 'type' is empty", location=where)
        scheduled = True
        if row.get("scheduled"):
            scheduled = _parse_bool(row["scheduled"], where=where, column="scheduled")
        out.append(
            {
                "event_ts": _local_to_utc(day, hour, minute, second, zone, where),
                "type": kind,
                "name": row.get("name") or kind,
                "currency": (row.get("currency") or "USD").upper(),
                "scheduled": scheduled,
                "actual": _value(row, "actual", where),
                "forecast": _value(row, "forecast", where),
                "previous": _value(row, "previous", where),
                "source": path.name,
            }
        )
    return surprise_zscores(_frame(out), min_count=min_count)


def read_fomc_dates(path: str | Path) -> pl.DataFrame:
    """Read the FOMC decision-dates file (``date,announce_time_et,scheduled,sep,...``).

    Each row is one FOMC decision: ``type="FOMC"``, released at ``announce_time_et`` New York time
    (14:00 when empty), ``scheduled`` from the file (the 2020-03-03 and 2020-03-15 emergency meetings
    are 0), ``name`` ``"FOMC rate decision"`` plus ``" (SEP)"`` on projection meetings. The file holds no
    actual/forecast values, so ``surprise`` is null.

    Parameters
    ----------
    path : str | Path
        E.g. ``data/events/fomc_decision_dates_2015_2026.csv``.

    Returns
    -------
    pl.DataFrame
        :data:`EVENTS_SCHEMA`.
    """
    path = Path(path)
    zone = _zone(NEW_YORK)
    _, rows = _rows(_read_text(path), path, ("date", "announce_time_et", "scheduled", "sep"))
    out: list[dict[str, object]] = []
    for line, row in rows:
        where = f"{path}:{line}"
        day = _date(row["date"], where)
        clock = row["announce_time_et"] or FOMC_SCHEDULED_TIME
        hour, minute, second = _time(clock, where, "announce_time_et")
        sep = _parse_bool(row["sep"], where=where, column="sep")
        out.append(
            {
                "event_ts": _local_to_utc(day, hour, minute, second, zone, where),
                "type": "FOMC",
                "name": "FOMC rate decision" + (" (SEP)" if sep else ""),
                "currency": "USD",
                "scheduled": _parse_bool(row["scheduled"], where=where, column="scheduled"),
                "actual": None,
                "forecast": None,
                "previous": None,
                "source": path.name,
            }
        )
    frame = _frame(out)
    dupes = frame.filter(pl.col("date").is_duplicated())
    if dupes.height:
        raise DataError(f"repeated FOMC dates {dupes['date'].unique().to_list()}", location=str(path))
    return frame


def read_forexfactory_csv(
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    currencies: Iterable[str] | None = ("USD",),
    min_count: int = DEFAULT_MIN_COUNT,
) -> pl.DataFrame:
    """Read a ForexFactory calendar export (``event_dt,currency,impact,event,actual,forecast,previous``).

    ``event_dt`` is UTC (``2019-12-06 13:30:00+00:00``). Only events whose exact name is in
    ``mapping`` (and whose currency is in ``currencies``) are kept, with the mapped type. An FOMC event
    not released at 14:00 New York is marked unscheduled (the emergency meetings of 2020); all others
    are scheduled.

    Parameters
    ----------
    path : str | Path
        The export file.
    mapping : Mapping[str, str] | None
        Event name -> type; default :data:`FOREXFACTORY_TYPES`.
    currencies : Iterable[str] | None
        Currencies kept (default USD only); ``None`` keeps all.
    min_count : int
        See :func:`surprise_zscores`.

    Returns
    -------
    pl.DataFrame
        :data:`EVENTS_SCHEMA`.
    """
    path = Path(path)
    names = dict(FOREXFACTORY_TYPES if mapping is None else mapping)
    if not names:
        raise ConfigError("mapping is empty: name at least one event, e.g. {'CPI m/m': 'CPI'}")
    keep = None if currencies is None else {c.upper() for c in currencies}
    required = ("event_dt", "currency", "event", "actual", "forecast", "previous")
    _, rows = _rows(_read_text(path), path, required)
    ny = _zone(NEW_YORK)
    out: list[dict[str, object]] = []
    for line, row in rows:
        kind = names.get(row["event"])
        currency = row["currency"].upper()
        if kind is None or (keep is not None and currency not in keep):
            continue
        where = f"{path}:{line}"
        try:
            ts = datetime.fromisoformat(row["event_dt"])
        except ValueError as exc:
            raise DataError(f"column 'event_dt': cannot parse {row['event_dt']!r}", location=where) from exc
        if ts.tzinfo is None or ts.utcoffset() != timedelta(0):
            raise DataError(
                f"column 'event_dt': expected a UTC time, got {row['event_dt']!r}", location=where
            )
        scheduled = True
        if kind.upper() == "FOMC":
            scheduled = ts.astimezone(ny).strftime("%H:%M") == FOMC_SCHEDULED_TIME
        out.append(
            {
                "event_ts": ts,
                "type": kind.upper(),
                "name": row["event"],
                "currency": currency,
                "scheduled": scheduled,
                "actual": _value(row, "actual", where),
                "forecast": _value(row, "forecast", where),
                "previous": _value(row, "previous", where),
                "source": path.name,
            }
        )
    return surprise_zscores(_frame(out), min_count=min_count)


# ------------------------------------------------------------------------------------------- features
def target_windows(calendar: str, origins: pl.Series, horizon: int = 1) -> pl.DataFrame:
    """The target session ``origin + horizon`` of each origin date, and the target's news window.

    Parameters
    ----------
    calendar : str
        Session calendar (``"24x7"``, ``"fx"``, ``"XNYS"``, ...).
    origins : pl.Series
        Origin session dates (Date); each must be a session of ``calendar``.
    horizon : int
        Sessions ahead (>= 1).

    Returns
    -------
    pl.DataFrame
        One row per distinct origin, sorted: ``session_date``, ``target`` (Date), ``win_start`` =
        close of session ``T - 1`` and ``win_end`` = close of ``T`` (UTC); the window is
        ``(win_start, win_end]``.
    """
    calendar = validate_calendar(calendar)
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1; got {horizon}")
    if origins.dtype != pl.Date:
        raise ConfigError(f"origins must be dates; got {origins.dtype}")
    days = origins.unique().sort()
    if days.len() == 0:
        schema: dict[str, pl.DataType] = {
            "session_date": pl.Date(),
            "target": pl.Date(),
            "win_start": _UTC,
            "win_end": _UTC,
        }
        return pl.DataFrame(schema=schema)
    first, last = days.min(), days.max()
    assert isinstance(first, date) and isinstance(last, date)
    grid = sessions_between(calendar, first, last + timedelta(days=10 + 3 * horizon))
    pos = {d: i for i, d in enumerate(grid)}
    bad = [d for d in days.to_list() if d not in pos]
    if bad:
        raise DataError(
            f"{len(bad)} origin date(s) are not sessions of calendar {calendar!r}, e.g. {bad[:3]}"
        )
    idx = [pos[d] for d in days.to_list()]
    if max(idx) + horizon >= len(grid):  # pragma: no cover - the padding covers any realistic gap
        raise DataError("calendar has too few sessions after the last origin")
    target = [grid[i + horizon] for i in idx]
    before = [grid[i + horizon - 1] for i in idx]
    close_t = session_bounds(calendar, target)["close"]
    close_b = session_bounds(calendar, before)["close"]
    return pl.DataFrame(
        {
            "session_date": days,
            "target": pl.Series(target, dtype=pl.Date),
            "win_start": close_b,
            "win_end": close_t,
        }
    )


def event_features(
    sessions: pl.DataFrame,
    events: pl.DataFrame,
    calendar: str,
    *,
    horizon: int = 1,
    types: Sequence[str] = EVENT_TYPES,
) -> pl.DataFrame:
    """Event features per (symbol, origin session): target-session flags and latest surprise z-scores.

    Parameters
    ----------
    sessions : pl.DataFrame
        Origin sessions: ``symbol``, ``session_date`` (Date), ``session_end`` (UTC), one calendar.
    events : pl.DataFrame
        :data:`EVENTS_SCHEMA` frame (e.g. :func:`combine_events` of the loaders).
    calendar : str
        Session calendar of the symbols (``"24x7"``, ``"fx"``, ``"XNYS"``); defines the target session.
    horizon : int
        Target = origin + ``horizon`` sessions of ``calendar``.
    types : Sequence[str]
        Event types to describe; column suffixes are their lower-case names.

    Returns
    -------
    pl.DataFrame
        ``symbol, session_date, target`` then, per type ``k``: ``sched_k`` (Int8), ``known_k``
        (Boolean), ``z_k`` and ``z_age_k`` (Float64, days); see the module docstring. Row order is
        that of ``sessions``.
    """
    calendar = validate_calendar(calendar)
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1; got {horizon}")
    for col, dtype in (("session_date", pl.Date), ("session_end", _UTC)):
        if col not in sessions.columns or sessions.schema[col] != dtype:
            raise DataError(f"sessions need column {col!r} of type {dtype}; got {sessions.schema.get(col)}")
    if "symbol" not in sessions.columns:
        raise DataError("sessions need a 'symbol' column")
    if sessions["session_end"].null_count():
        raise DataError("sessions have a null session_end")
    events = check_events(events)
    windows = target_windows(calendar, sessions["session_date"], horizon)
    frame = sessions.select("symbol", "session_date", "session_end").join(
        windows, on="session_date", how="left", maintain_order="left"
    )
    start = frame["win_start"].dt.epoch("us").to_numpy()
    end = frame["win_end"].dt.epoch("us").to_numpy()
    origin_end = frame["session_end"].dt.epoch("us").to_numpy()
    columns: dict[str, pl.Series] = {}
    for kind in types:
        key = kind.lower()
        of_type = events.filter(pl.col("type") == kind.upper())
        ts_all = of_type["event_ts"].dt.epoch("us").to_numpy()
        sched = np.sort(of_type.filter(pl.col("scheduled"))["event_ts"].dt.epoch("us").to_numpy())
        hits = np.searchsorted(sched, end, side="right") - np.searchsorted(sched, start, side="right")
        columns[f"sched_{key}"] = pl.Series(f"sched_{key}", (hits > 0).astype(np.int8))
        if ts_all.size:
            known = (end >= ts_all.min()) & (start < ts_all.max())
        else:
            known = np.zeros(frame.height, dtype=bool)
        columns[f"known_{key}"] = pl.Series(f"known_{key}", known)
        releases = (
            of_type.filter(pl.col("surprise_z").is_not_null())
            .group_by("event_ts")
            .agg(pl.col("surprise_z").mean())
            .sort("event_ts")
        )
        rel_ts = releases["event_ts"].dt.epoch("us").to_numpy()
        rel_z = releases["surprise_z"].to_numpy()
        last = np.searchsorted(rel_ts, origin_end, side="right") - 1
        has = last >= 0
        safe = np.where(has, last, 0)
        z = np.where(has, rel_z[safe] if rel_z.size else np.nan, np.nan)
        age = np.where(has, (origin_end - (rel_ts[safe] if rel_ts.size else 0)) / 86_400e6, np.nan)
        columns[f"z_{key}"] = pl.Series(f"z_{key}", z, dtype=pl.Float64).fill_nan(None)
        columns[f"z_age_{key}"] = pl.Series(f"z_age_{key}", age, dtype=pl.Float64).fill_nan(None)
    return frame.select("symbol", "session_date", "target").with_columns(**columns)


# ------------------------------------------------------------------------------------------ entry points
#: The FOMC decision dates shipped with the project (``data/events/README.md``).
SHIPPED_FOMC_FILE = (
    Path(__file__).resolve().parents[1] / "data" / "events" / "fomc_decision_dates_2015_2026.csv"
)


def load_event_calendar(
    *,
    fomc: str | Path | None = SHIPPED_FOMC_FILE,
    csv_paths: Sequence[str | Path] = (),
    forexfactory: str | Path | None = None,
    tz: str = NEW_YORK,
    min_count: int = DEFAULT_MIN_COUNT,
) -> pl.DataFrame:
    """The events frame a model reads: FOMC dates, user CSVs and a ForexFactory export, combined.

    Parameters
    ----------
    fomc : str | Path | None
        FOMC decision-dates file (default: the shipped copy); ``None`` skips it.
    csv_paths : Sequence[str | Path]
        User event files (:func:`read_events_csv`), times in ``tz``.
    forexfactory : str | Path | None
        A ForexFactory export (:func:`read_forexfactory_csv`, default mapping, USD only).
    tz : str
        Time zone of the user files.
    min_count : int
        See :func:`surprise_zscores` (recomputed over the combined frame).

    Returns
    -------
    pl.DataFrame
        :data:`EVENTS_SCHEMA`, deduplicated on (type, name, event_ts), sorted.
    """
    frames = [read_fomc_dates(fomc)] if fomc is not None else []
    frames += [read_events_csv(p, tz=tz, min_count=min_count) for p in csv_paths]
    if forexfactory is not None:
        frames.append(read_forexfactory_csv(forexfactory, min_count=min_count))
    return combine_events(*frames, min_count=min_count)


#: A ForexFactory export (US CPI / NFP actual vs forecast) looked for under the configured data roots.
FOREXFACTORY_GLOB = "econ_calendar/forexfactory_calendar_*.csv"


def default_event_calendar() -> pl.DataFrame:
    """The events models and gates read by default: the shipped FOMC dates, plus the newest
    ForexFactory export found under the configured data roots (``econ_calendar/``), if any."""
    from tasks.config import get_settings

    forexfactory = None
    for root in get_settings().data_roots:
        found = sorted(Path(root).glob(FOREXFACTORY_GLOB))
        if found:
            forexfactory = found[-1]
            break
    return load_event_calendar(forexfactory=forexfactory)
