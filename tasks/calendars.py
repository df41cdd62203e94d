"""Session calendars: which trading session a bar belongs to, and how many bars a session should hold.

Pure functions, polars in and out, no I/O and no Prefect.

Calendar kinds
--------------
``"24x7"``
    Crypto. Session ``D`` is the UTC day ``[00:00 UTC D, 00:00 UTC D+1)``; every day is a session.
``"fx"``
    Spot FX. Session ``D`` runs from 17:00 America/New_York on ``D-1`` to 17:00 New York on ``D``,
    DST-aware through the tz database. Sessions are Monday to Friday. A bar whose session would be a
    Saturday or Sunday lies in the weekend close (Friday 17:00 NY to Sunday 17:00 NY): it is dropped and
    counted in :attr:`SessionAssignment.dropped_weekend`. FX holidays (25 Dec, 1 Jan) are not removed:
    they remain sessions, usually flagged by low coverage.
any ``exchange_calendars`` name, e.g. ``"XNYS"``
    Exchange-traded instruments. Regular hours, holidays, early closes and lunch breaks all come from
    the ``exchange_calendars`` library (nothing is hand-written). A bar is *regular* when its interval
    ``[ts, ts + interval)`` overlaps the regular hours, so the 1-hour bar stamped 09:00 New York, which
    carries 09:30-10:00, is regular. Other bars on a session's local date are *extended* (pre/post
    market); bars on a local date that is not a session (weekend, holiday) are *closed*.

Bar grid
--------
Bars are stamped at their start in UTC on a grid aligned to the Unix epoch (what ``dt.truncate`` and
data vendors do). :func:`expected_bars` counts the distinct grid bar starts whose interval overlaps the
session: 390 one-minute bars on a normal NYSE day, 210 on an early close, 7 hourly bars.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import exchange_calendars as xcals
import polars as pl

from core.errors import ConfigError, DataError

CRYPTO = "24x7"
FX = "fx"
FX_TIME_ZONE = "America/New_York"
FX_ROLL_HOUR = 17
#: Exchange calendars are built from this date (the library's default start is only 20 years back).
EXCHANGE_START = "1990-01-01"

_UTC_US = pl.Datetime("us", "UTC")
_INTERVAL = re.compile(r"^([1-9][0-9]*)([mh])$")
_MINUTES_PER_DAY = 1440
_US_PER_MINUTE = 60_000_000
_EPOCH = date(1970, 1, 1)
_BOUNDS_SCHEMA: dict[str, pl.DataType] = {
    "session_date": pl.Date(),
    "open": _UTC_US,
    "close": _UTC_US,
    "break_start": _UTC_US,
    "break_end": _UTC_US,
}


@dataclass(frozen=True)
class SessionAssignment:
    """Bars with their session, and a count of every bar that was set aside.

    Attributes
    ----------
    bars : pl.DataFrame
        The kept input rows with two added columns: ``session_date`` (``pl.Date``) and ``is_regular``
        (``pl.Boolean``; False only for extended-hours bars kept by ``include_extended=True``).
    n_input : int
        Rows received.
    dropped_weekend : int
        FX bars in the weekend close.
    dropped_extended : int
        Exchange bars outside regular hours on a session day (0 when ``include_extended=True``).
    dropped_closed : int
        Exchange bars on a local date that is not a session (weekend, holiday).
    """

    bars: pl.DataFrame
    n_input: int
    dropped_weekend: int = 0
    dropped_extended: int = 0
    dropped_closed: int = 0

    @property
    def dropped_out_of_session(self) -> int:
        """Exchange bars dropped for being outside the (regular) session."""
        return self.dropped_extended + self.dropped_closed

    @property
    def n_dropped(self) -> int:
        """Every dropped row; ``n_input == bars.height + n_dropped`` always holds."""
        return self.dropped_weekend + self.dropped_out_of_session

    def counts(self) -> dict[str, int]:
        """Plain-dict summary, suitable for logs and task results."""
        return {
            "n_input": self.n_input,
            "n_kept": self.bars.height,
            "dropped_weekend": self.dropped_weekend,
            "dropped_extended": self.dropped_extended,
            "dropped_closed": self.dropped_closed,
        }


def interval_minutes(interval: str, *, name: str = "interval") -> int:
    """Length of a bar interval such as ``"1m"``, ``"5m"`` or ``"1h"``, in minutes.

    Parameters
    ----------
    interval : str
        ``<n>m`` or ``<n>h``; the length must divide one day (daily bars carry no intraday returns).
    name : str
        Parameter name used in the error message.

    Returns
    -------
    int
        Minutes per bar.

    Raises
    ------
    ConfigError
        If ``interval`` is not of that form.
    """
    match = _INTERVAL.fullmatch(interval) if isinstance(interval, str) else None
    minutes = 0
    if match:
        minutes = int(match.group(1)) * (60 if match.group(2) == "h" else 1)
    if not match or _MINUTES_PER_DAY % minutes != 0:
        raise ConfigError(
            f"invalid {name} {interval!r}: expected an intraday interval '<n>m' or '<n>h' that divides "
            "one day, e.g. '1m', '5m', '15m', '30m', '1h'"
        )
    return minutes


def validate_calendar(calendar: str) -> str:
    """Return ``calendar`` if it is ``"24x7"``, ``"fx"`` or an ``exchange_calendars`` name.

    Raises
    ------
    ConfigError
        Naming the accepted values.
    """
    if calendar in (CRYPTO, FX):
        return calendar
    if isinstance(calendar, str) and calendar in _exchange_names():
        return calendar
    raise ConfigError(
        f"unknown calendar {calendar!r}: expected '24x7' (crypto, UTC day), 'fx' (17:00 New York roll) "
        "or an exchange_calendars name such as 'XNYS'"
    )


@lru_cache(maxsize=1)
def _exchange_names() -> frozenset[str]:
    return frozenset(xcals.get_calendar_names(include_aliases=True))


@lru_cache(maxsize=16)
def _exchange(calendar: str) -> tuple[str, pl.DataFrame]:
    """(time-zone name, schedule) of an exchange calendar; schedule adds a 0-based ``ordinal``."""
    try:
        cal = xcals.get_calendar(calendar, start=EXCHANGE_START)
    except ValueError:  # the calendar's data starts later than EXCHANGE_START
        cal = xcals.get_calendar(calendar)
    sched = cal.schedule
    columns: dict[str, pl.Series] = {
        "session_date": pl.Series("session_date", sched.index.values.astype("datetime64[D]")).cast(pl.Date),
    }
    for col in ("open", "close", "break_start", "break_end"):
        # ``.values`` of a tz-aware pandas column is datetime64[ns] in UTC; NaT becomes null.
        columns[col] = pl.Series(col, sched[col].values).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    frame = pl.DataFrame(columns).with_row_index("ordinal").with_columns(pl.col("ordinal").cast(pl.Int64))
    return str(cal.tz), frame.select(*_BOUNDS_SCHEMA, "ordinal")


def _to_dates(sessions: Iterable[date] | pl.Series, name: str = "sessions") -> pl.Series:
    series = sessions if isinstance(sessions, pl.Series) else pl.Series(list(sessions), dtype=pl.Date)
    if series.len() == 0:
        return pl.Series("session_date", [], dtype=pl.Date)
    if series.dtype != pl.Date:
        raise ConfigError(f"{name} must be dates (pl.Date or datetime.date); got {series.dtype}")
    return series.alias("session_date")


def calendar_coverage(calendar: str) -> tuple[date, date] | None:
    """First and last session an exchange calendar knows; None for ``24x7`` and ``fx`` (unbounded)."""
    calendar = validate_calendar(calendar)
    if calendar in (CRYPTO, FX):
        return None
    _, sched = _exchange(calendar)
    first, last = sched["session_date"].min(), sched["session_date"].max()
    assert isinstance(first, date) and isinstance(last, date)
    return first, last


def _check_range(calendar: str, start: date, end: date) -> None:
    coverage = calendar_coverage(calendar)
    if coverage is None:
        return
    first, last = coverage
    if start < first or end > last:
        raise ConfigError(
            f"dates {start}..{end} fall outside calendar {calendar!r}, which covers {first}..{last}"
        )


def session_bounds(calendar: str, sessions: Iterable[date] | pl.Series) -> pl.DataFrame:
    """UTC instants bounding each session's (regular) hours.

    Parameters
    ----------
    calendar : str
        See :func:`validate_calendar`.
    sessions : Iterable[date] | pl.Series
        Session dates.

    Returns
    -------
    pl.DataFrame
        ``session_date, open, close, break_start, break_end`` (``Datetime(us, UTC)``), one row per input
        date, in input order. ``open``/``close`` are null for a date that is not a session (an FX
        weekend day, an exchange holiday); breaks are null unless the exchange has a lunch break.
    """
    calendar = validate_calendar(calendar)
    dates = _to_dates(sessions)
    frame = pl.DataFrame({"session_date": dates})
    if frame.height == 0:
        return pl.DataFrame(schema=_BOUNDS_SCHEMA)
    if calendar == CRYPTO:
        start = pl.col("session_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return frame.select(
            "session_date",
            start.alias("open"),
            (start + pl.duration(days=1)).alias("close"),
            pl.lit(None, _UTC_US).alias("break_start"),
            pl.lit(None, _UTC_US).alias("break_end"),
        )
    if calendar == FX:
        weekday = pl.col("session_date").dt.weekday() <= 5

        def roll(days_back: int) -> pl.Expr:
            local = pl.col("session_date").cast(pl.Datetime("us")) + pl.duration(
                hours=FX_ROLL_HOUR, days=-days_back
            )
            utc = local.dt.replace_time_zone(FX_TIME_ZONE).dt.convert_time_zone("UTC")
            return pl.when(weekday).then(utc)

        return frame.select(
            "session_date",
            roll(1).alias("open"),
            roll(0).alias("close"),
            pl.lit(None, _UTC_US).alias("break_start"),
            pl.lit(None, _UTC_US).alias("break_end"),
        )
    dmin, dmax = dates.min(), dates.max()
    assert isinstance(dmin, date) and isinstance(dmax, date)
    _check_range(calendar, dmin, dmax)
    _, sched = _exchange(calendar)
    return frame.join(sched.drop("ordinal"), on="session_date", how="left", maintain_order="left")


def expected_bars(calendar: str, interval: str, sessions: Iterable[date] | pl.Series) -> pl.DataFrame:
    """Number of interval-grid bars each session should hold.

    Counts the distinct epoch-aligned grid bar starts ``g`` with ``[g, g + interval)`` overlapping the
    session's regular hours (both segments around a lunch break, counted once). Crypto 1m: 1440; FX 1m:
    the real minutes between the two 17:00 New York instants (1440 on every weekday session; a session
    spanning a DST change would hold 1380 or 1500, but those fall in the weekend close); XNYS 1m: 390,
    or 210 on an early close; XNYS 1h: 7.

    Parameters
    ----------
    calendar : str
        See :func:`validate_calendar`.
    interval : str
        Bar interval, e.g. ``"1m"``.
    sessions : Iterable[date] | pl.Series
        Session dates; a date that is not a session gets 0.

    Returns
    -------
    pl.DataFrame
        ``session_date`` (Date), ``expected_bars`` (Int64), in input order.
    """
    step = interval_minutes(interval) * _US_PER_MINUTE
    bounds = session_bounds(calendar, sessions)

    def us(col: str) -> pl.Expr:
        return pl.col(col).dt.epoch("us")

    def n_grid(lo: pl.Expr, hi: pl.Expr) -> pl.Expr:
        # Grid bars overlapping [lo, hi): ceil(hi / step) - floor(lo / step).
        return (-((-hi) // step)) - (lo // step)

    plain = n_grid(us("open"), us("close"))
    with_break = (
        n_grid(us("open"), us("break_start"))
        + n_grid(us("break_end"), us("close"))
        - pl.max_horizontal(pl.lit(0), (-((-us("break_start")) // step)) - us("break_end") // step)
    )
    count = pl.when(pl.col("break_start").is_not_null()).then(with_break).otherwise(plain)
    return bounds.select("session_date", count.fill_null(0).cast(pl.Int64).alias("expected_bars"))


def sessions_between(calendar: str, start: date, end: date) -> list[date]:
    """Every session date of ``calendar`` with ``start <= date <= end``.

    Parameters
    ----------
    calendar : str
        See :func:`validate_calendar`.
    start, end : date
        Inclusive bounds.

    Returns
    -------
    list[date]
        Sorted session dates (UTC days for crypto, weekdays for FX, exchange sessions otherwise).
    """
    calendar = validate_calendar(calendar)
    if not isinstance(start, date) or not isinstance(end, date) or start > end:
        raise ConfigError(f"start/end must be dates with start <= end; got start={start!r}, end={end!r}")
    days = pl.date_range(start, end, interval="1d", eager=True)
    if calendar == CRYPTO:
        return days.to_list()
    if calendar == FX:
        return days.filter(days.dt.weekday() <= 5).to_list()
    _check_range(calendar, start, end)
    _, sched = _exchange(calendar)
    col = sched["session_date"]
    return col.filter((col >= start) & (col <= end)).to_list()


def session_ordinals(calendar: str, sessions: Iterable[date] | pl.Series) -> pl.Series:
    """Consecutive integer index of each session in ``calendar`` (``previous session = ordinal - 1``).

    Crypto: days since 1970-01-01; FX: weekdays since 1970-01-01; exchanges: position in the
    exchange schedule. A date that is not a session raises :class:`DataError`.
    """
    calendar = validate_calendar(calendar)
    dates = _to_dates(sessions)
    if dates.len() == 0:
        return pl.Series("ordinal", [], dtype=pl.Int64)
    frame = pl.DataFrame({"session_date": dates})
    if calendar == CRYPTO:
        out = frame.select((pl.col("session_date") - pl.lit(_EPOCH)).dt.total_days().alias("ordinal"))
        return out["ordinal"].cast(pl.Int64)
    if calendar == FX:
        bad = frame.filter(pl.col("session_date").dt.weekday() > 5)
        out = frame.select(pl.business_day_count(pl.lit(_EPOCH), pl.col("session_date")).alias("ordinal"))
    else:
        dmin, dmax = dates.min(), dates.max()
        assert isinstance(dmin, date) and isinstance(dmax, date)
        _check_range(calendar, dmin, dmax)
        _, sched = _exchange(calendar)
        out = frame.join(sched.select("session_date", "ordinal"), on="session_date", how="left",
                         maintain_order="left")
        bad = out.filter(pl.col("ordinal").is_null())
    if bad.height:
        raise DataError(
            f"{bad.height} date(s) are not sessions of calendar {calendar!r}, e.g. "
            f"{bad['session_date'].head(3).to_list()}"
        )
    return out["ordinal"].cast(pl.Int64)


def _check_bars(bars: pl.DataFrame, interval: str) -> pl.DataFrame:
    if not isinstance(bars, pl.DataFrame):
        raise DataError(f"bars must be a polars DataFrame in the warehouse bar schema; got {type(bars)}")
    if "ts" not in bars.columns:
        raise DataError(f"bars lack the 'ts' column; got columns {bars.columns}")
    dtype = bars.schema["ts"]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone != "UTC":
        raise DataError(f"bars.ts must be Datetime(us, 'UTC') stamped at bar start; got {dtype}")
    if dtype.time_unit != "us":
        bars = bars.with_columns(pl.col("ts").cast(_UTC_US))
    if bars["ts"].null_count():
        raise DataError(f"bars.ts has {bars['ts'].null_count()} null value(s)")
    if "interval" in bars.columns and bars.height:
        other = bars.select(pl.col("interval").ne_missing(pl.lit(interval)).any()).item()
        if other:  # cheap comparison first; name the offenders only on failure
            found = bars["interval"].unique().to_list()
            raise DataError(f"bars.interval holds {sorted(map(str, found))}; expected only {interval!r}")
    return bars


def assign_sessions(
    bars: pl.DataFrame, calendar: str, interval: str, include_extended: bool = False
) -> SessionAssignment:
    """Attach each bar to its session and set aside, with counts, the bars that belong to none.

    Parameters
    ----------
    bars : pl.DataFrame
        Bars in the warehouse bar schema (``ts`` is ``Datetime(us, UTC)`` at bar start); any symbols.
    calendar : str
        ``"24x7"``, ``"fx"`` or an exchange calendar name (see the module docstring).
    interval : str
        Bar interval, e.g. ``"1m"``; must match ``bars.interval`` when that column is present.
    include_extended : bool
        Exchange calendars only: keep pre/post-market bars on a session day, assigned to that day's
        session (``is_regular`` False). By default they are dropped and counted.

    Returns
    -------
    SessionAssignment
        Kept bars (input order) with ``session_date`` and ``is_regular``, and the dropped counts.
    """
    calendar = validate_calendar(calendar)
    step = interval_minutes(interval)
    bars = _check_bars(bars, interval)
    n_input = bars.height
    ts = pl.col("ts")
    if calendar == CRYPTO:
        out = bars.with_columns(ts.dt.date().alias("session_date"), pl.lit(True).alias("is_regular"))
        return SessionAssignment(out, n_input)
    if calendar == FX:
        # 17:00 New York + 7 h = midnight of the next day: the local wall clock shifted by 7 h gives
        # the session date, DST included.
        local = ts.dt.convert_time_zone(FX_TIME_ZONE).dt.replace_time_zone(None)
        session = (local + pl.duration(hours=24 - FX_ROLL_HOUR)).dt.date()
        tagged = bars.with_columns(session.alias("session_date"), pl.lit(True).alias("is_regular"))
        keep = pl.col("session_date").dt.weekday() <= 5
        out = tagged.filter(keep)
        return SessionAssignment(out, n_input, dropped_weekend=n_input - out.height)
    tz, sched = _exchange(calendar)
    tagged = bars.with_columns(ts.dt.convert_time_zone(tz).dt.date().alias("session_date"))
    if tagged.height:
        dmin, dmax = tagged["session_date"].min(), tagged["session_date"].max()
        assert isinstance(dmin, date) and isinstance(dmax, date)
        _check_range(calendar, dmin, dmax)
    # Schedule columns get a prefix: bars carry their own open/close prices.
    sched = sched.drop("ordinal").rename({c: f"_s_{c}" for c in _BOUNDS_SCHEMA if c != "session_date"})
    joined = tagged.join(sched, on="session_date", how="left", maintain_order="left")
    end = ts + pl.duration(minutes=step)

    def overlaps(lo: str, hi: str) -> pl.Expr:
        return (end > pl.col(f"_s_{lo}")) & (ts < pl.col(f"_s_{hi}"))

    regular = (
        pl.when(pl.col("_s_break_start").is_null())
        .then(overlaps("open", "close"))
        .otherwise(overlaps("open", "break_start") | overlaps("break_end", "close"))
    )
    joined = joined.with_columns(
        pl.col("_s_open").is_null().alias("_closed"), regular.fill_null(False).alias("is_regular")
    )
    n_closed = int(joined["_closed"].sum())
    n_extended = int((~joined["_closed"] & ~joined["is_regular"]).sum())
    keep = ~pl.col("_closed") if include_extended else pl.col("is_regular")
    out = joined.filter(keep).select(*bars.columns, "session_date", "is_regular")
    return SessionAssignment(
        out,
        n_input,
        dropped_extended=0 if include_extended else n_extended,
        dropped_closed=n_closed,
    )
