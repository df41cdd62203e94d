"""Shared plumbing of the daily models: per-symbol series, origins, target sessions, output frames.

Conventions every baseline follows (see ``tasks/models/base.py`` for the time rules):

- A symbol's sessions are its ROWS of ``features_daily``, sorted by ``session_date``. The session
  after ``t`` is the next row of that symbol (the calendar's next session that has data).
- The daily return of a session is ``ret_cc`` (close-to-close); where ``ret_cc`` is null (the previous
  calendar session had no bars) the session's ``ret_oc`` stands in.
- An origin is served for a symbol only when it is one of that symbol's sessions; other
  (symbol, origin) pairs produce no row.
- The target of origin ``t`` at horizon ``h`` is the session ``h`` rows after ``t``. When the data end
  before it (a live forecast), it is the ``h``-th session after the last row: from
  ``tasks.calendars.sessions_between`` when the symbol's calendar is given, otherwise every day when
  the symbol has weekend sessions (24x7) and every weekday when not (exact for FX; exchange holidays
  are then ignored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from core.schema import PREDICTION_SCHEMA, QUANTILE_COLUMNS, empty_predictions

#: Columns every daily baseline reads.
BASE_COLUMNS: tuple[str, ...] = ("symbol", "session_date", "ret_cc", "ret_oc", "rv_d")
#: Floor applied to realized variances before logs and as the smallest variance forecast.
RV_FLOOR = 1e-12


def check_date(value: object, name: str) -> date:
    """``value`` as a ``date`` (a ``datetime`` is refused: sessions are dates)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ConfigError(f"{name} must be a datetime.date; got {value!r}")
    return value


def check_horizon(horizon: object) -> int:
    """``horizon`` as a positive int."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ConfigError(f"horizon must be an integer >= 1; got {horizon!r}")
    return int(horizon)


def check_origins(origins: Sequence[date]) -> list[date]:
    """Distinct origins, sorted; each must be a date."""
    if isinstance(origins, date | str):
        raise ConfigError(f"origins must be a sequence of dates; got {origins!r}")
    return sorted({check_date(o, "origins") for o in origins})


def require_columns(frame: pl.DataFrame, columns: Sequence[str], model: str) -> None:
    """Raise ``DataError`` naming the model and the missing columns."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"model {model!r} needs feature columns {missing}; got {frame.columns}")


def split_symbols(features: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """One frame per symbol, sorted by ``session_date``; a repeated session raises ``DataError``."""
    out: dict[str, pl.DataFrame] = {}
    for (symbol,), part in features.partition_by("symbol", as_dict=True, maintain_order=True).items():
        part = part.sort("session_date")
        if part["session_date"].is_duplicated().any():
            raise DataError(f"features repeat a session_date for symbol {symbol!r}")
        out[str(symbol)] = part
    return out


def daily_returns(frame: pl.DataFrame) -> np.ndarray:
    """Session returns: ``ret_cc``, or ``ret_oc`` where ``ret_cc`` is null."""
    return frame.select(pl.coalesce("ret_cc", "ret_oc")).to_series().cast(pl.Float64).to_numpy()


def floored(values: np.ndarray) -> np.ndarray:
    """Realized variances floored at :data:`RV_FLOOR` (NaN stays NaN)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(values), np.nan, np.maximum(values, RV_FLOOR))


def origin_positions(
    sessions: pl.Series, origins: Sequence[date], first: int = 0
) -> tuple[np.ndarray, list[date]]:
    """Row positions of the origins that are sessions at or after row ``first``.

    Parameters
    ----------
    sessions : pl.Series
        The symbol's sorted session dates.
    origins : Sequence[date]
        Sorted, distinct origins.
    first : int
        Earliest row a forecast can be made from (e.g. the first training row).

    Returns
    -------
    tuple[np.ndarray, list[date]]
        Positions (int64) and the matching origin dates, in order.
    """
    index = {d: i for i, d in enumerate(sessions.to_list())}
    pos = [(index[o], o) for o in origins if o in index and index[o] >= first]
    return np.asarray([p for p, _ in pos], dtype=np.int64), [o for _, o in pos]


def target_sessions(
    sessions: pl.Series, positions: np.ndarray, horizon: int, calendar: str | None = None
) -> list[date]:
    """The session ``horizon`` rows after each position (see the module docstring past the data end)."""
    days: list[date] = sessions.to_list()
    n = len(days)
    out: list[date] = []
    extra: list[date] | None = None
    for p in positions.tolist():
        k = p + horizon
        if k < n:
            out.append(days[k])
            continue
        if extra is None:
            extra = _sessions_after(days, horizon + int(positions.max()) - n + 1, calendar)
        out.append(extra[k - n])
    return out


def _sessions_after(days: list[date], count: int, calendar: str | None) -> list[date]:
    last = days[-1]
    if calendar is not None:
        from tasks.calendars import sessions_between

        found = sessions_between(calendar, last + timedelta(days=1), last + timedelta(days=7 * count + 14))
        if len(found) < count:
            raise DataError(f"calendar {calendar!r} has fewer than {count} sessions after {last}")
        return list(found[:count])
    if any(d.weekday() >= 5 for d in days):
        return [last + timedelta(days=i) for i in range(1, count + 1)]
    start = np.datetime64(last, "D")
    offsets = np.busday_offset(start, np.arange(1, count + 1), roll="forward")
    return [d.astype(object) for d in offsets]


def symbol_calendar(calendar: str | Mapping[str, str] | None, symbol: str) -> str | None:
    """The calendar of ``symbol`` from a model's ``calendar`` setting (one name or a per-symbol map)."""
    if calendar is None or isinstance(calendar, str):
        return calendar
    return calendar.get(symbol)


def check_calendar(calendar: object) -> str | dict[str, str] | None:
    """Validate a ``calendar`` setting: None, a calendar name, or a {symbol: calendar} map."""
    if calendar is None:
        return None
    from tasks.calendars import validate_calendar

    if isinstance(calendar, str):
        return validate_calendar(calendar)
    if isinstance(calendar, Mapping):
        return {str(k): validate_calendar(str(v)) for k, v in calendar.items()}
    raise ConfigError(
        f"calendar must be None, a calendar name or a {{symbol: calendar}} map; got {calendar!r}"
    )


def prediction_frame(
    *,
    model: str,
    symbol: str,
    origins: Sequence[date],
    targets: Sequence[date],
    horizon: int,
    variance: np.ndarray,
    rv: np.ndarray,
    mean: np.ndarray,
    quantiles: np.ndarray,
    family: str,
    params: Mapping[str, Any],
) -> pl.DataFrame:
    """Rows in :data:`~tasks.models.base.PREDICTION_SCHEMA` for one symbol.

    Parameters
    ----------
    model, symbol : str
        Registry name and symbol.
    origins, targets : Sequence[date]
        Origin and target sessions, one per row.
    horizon : int
        Steps ahead.
    variance, rv, mean : np.ndarray
        Return variance, RV forecast and mean per row.
    quantiles : np.ndarray
        Shape ``(rows, 9)`` in :data:`~tasks.models.base.QUANTILES` order.
    family : str
        Family name.
    params : Mapping[str, Any]
        The family's parameters, stored as JSON text.
    """
    n = len(origins)
    if not n:
        return empty_predictions()
    q = np.asarray(quantiles, dtype=float).reshape(n, len(QUANTILE_COLUMNS))
    data: dict[str, Any] = {
        "model": [model] * n,
        "symbol": [symbol] * n,
        "origin": list(origins),
        "target": list(targets),
        "horizon": [horizon] * n,
        "variance": np.asarray(variance, dtype=float),
        "rv": np.asarray(rv, dtype=float),
        "mean": np.broadcast_to(np.asarray(mean, dtype=float), (n,)).copy(),
        **{c: q[:, i] for i, c in enumerate(QUANTILE_COLUMNS)},
        "family": [family] * n,
        "params": [json.dumps(params, sort_keys=True)] * n,
    }
    return pl.DataFrame(data, schema=PREDICTION_SCHEMA)


def concat_predictions(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Stack per-symbol frames, sorted by (symbol, origin)."""
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_predictions()
    return pl.concat(frames, how="vertical").sort("symbol", "origin")
