"""``kronos_event``: Kronos conditioned on the economic-event calendar (the research plan's kronos-event).

The conditioning is described in :mod:`tasks.models.kronos` ("``kronos_event``"): a per-type variance
multiplier on target sessions with a scheduled event, and a mean shift after a fresh surprise, both
estimated per symbol on training targets only. Events come from ``ModelData.events``
(:mod:`tasks.events`; the evaluation passes the shipped FOMC dates plus any ForexFactory export, since
the model declares ``use_events``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from tasks.events import EVENT_TYPES, check_events, event_features
from tasks.models.base import ModelData, register
from tasks.models.foundation_base import SymbolState
from tasks.models.frames import symbol_calendar
from tasks.models.kronos import (
    MIN_EVENT_DAYS,
    RATIO_CLIP,
    RIDGE,
    SHRINK_DAYS,
    SLOPE_CLIP,
    Z_CLIP,
    KronosModel,
)


def variance_ratio(rv_target: np.ndarray, event: np.ndarray, quiet: np.ndarray) -> float:
    """Shrunk, clipped ratio of mean target RV on event days to quiet days (1 with too few events)."""
    ev, qt = rv_target[event & np.isfinite(rv_target)], rv_target[quiet & np.isfinite(rv_target)]
    if ev.size < MIN_EVENT_DAYS or qt.size < MIN_EVENT_DAYS or ev.mean() <= 0 or qt.mean() <= 0:
        return 1.0
    shrink = ev.size / (ev.size + SHRINK_DAYS)
    return float(np.clip(np.exp(shrink * np.log(ev.mean() / qt.mean())), *RATIO_CLIP))


def surprise_slope(z: np.ndarray, y: np.ndarray) -> float:
    """Ridge slope (no intercept) of standardized target returns ``y`` on surprises ``z``, clipped."""
    ok = np.isfinite(z) & np.isfinite(y) & (z != 0)
    if not ok.any():
        return 0.0
    b = float(np.sum(z[ok] * y[ok]) / (np.sum(z[ok] ** 2) + RIDGE))
    return float(np.clip(b, -SLOPE_CLIP, SLOPE_CLIP))


@register("kronos_event")
class KronosEvent(KronosModel):
    """``kronos`` plus the event conditioning (module docstring); ``surprise_days``, ``event_types``."""

    name = "kronos_event"
    columns: ClassVar[tuple[str, ...]] = (*KronosModel.columns, "rv_w")
    use_events: ClassVar[bool] = True

    def __init__(
        self, surprise_days: float = 1.0, event_types: Sequence[str] = EVENT_TYPES, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(surprise_days, bool)
            or not isinstance(surprise_days, int | float)
            or surprise_days <= 0
        ):
            raise ConfigError(f"surprise_days must be a positive number; got {surprise_days!r}")
        types = [str(t).upper() for t in event_types] if not isinstance(event_types, str) else []
        if not types or not set(types) <= set(EVENT_TYPES):
            raise ConfigError(
                f"event_types must be a non-empty list of {list(EVENT_TYPES)}; got {event_types!r}"
            )
        self.surprise_days = float(surprise_days)
        self.event_types = types

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "surprise_days": self.surprise_days, "event_types": self.event_types}

    def _events(self, rows: pl.DataFrame, data: ModelData, horizon: int) -> pl.DataFrame:
        """:func:`tasks.events.event_features` of ``rows`` (one symbol's origin sessions)."""
        from tasks.models.quantile import infer_calendar

        if data.events is None:
            raise DataError(f"model {self.name!r} needs ModelData.events (see tasks.events)")
        symbol = str(rows["symbol"][0])
        calendar = symbol_calendar(self.calendar, symbol) or data.calendar_of(symbol) or infer_calendar(rows)
        sessions = rows.select("symbol", "session_date", "session_end")
        return event_features(
            sessions, check_events(data.events), calendar, horizon=horizon, types=self.event_types
        )

    def _fresh_z(self, ev: pl.DataFrame, kind: str) -> np.ndarray:
        """Surprise z of type ``kind`` released within ``surprise_days`` of the origin's close (else 0)."""
        key = kind.lower()
        z = ev[f"z_{key}"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        age = ev[f"z_age_{key}"].cast(pl.Float64).fill_null(np.inf).to_numpy()
        fresh = np.isfinite(z) & (age <= self.surprise_days)
        return np.where(fresh, np.clip(np.nan_to_num(z), -Z_CLIP, Z_CLIP), 0.0)

    def _fit_extra(self, symbol: str, frame: pl.DataFrame, data: ModelData) -> dict[str, Any]:
        ev = self._events(frame, data, 1)
        by_date = frame.select(
            pl.col("session_date").alias("target"),
            pl.col("rv_d").cast(pl.Float64).alias("rv_t"),
            pl.coalesce("ret_cc", "ret_oc").cast(pl.Float64).alias("ret_t"),
        )
        ev = ev.join(by_date, on="target", how="left", maintain_order="left")  # training targets only
        rv_t = ev["rv_t"].fill_null(np.nan).to_numpy()
        scale = np.sqrt(frame["rv_w"].cast(pl.Float64).fill_null(np.nan).to_numpy())
        y = ev["ret_t"].fill_null(np.nan).to_numpy() / scale
        sched = {k: ev[f"sched_{k.lower()}"].to_numpy() == 1 for k in self.event_types}
        none = ~np.logical_or.reduce(list(sched.values()))
        quiet = {k: none & ev[f"known_{k.lower()}"].to_numpy() for k in self.event_types}
        return {
            "event_var": {k: variance_ratio(rv_t, sched[k], quiet[k]) for k in self.event_types},
            "surprise_slope": {k: surprise_slope(self._fresh_z(ev, k), y) for k in self.event_types},
        }

    def _condition(
        self,
        state: SymbolState,
        frame: pl.DataFrame,
        positions: np.ndarray,
        horizon: int,
        data: ModelData,
        mean: np.ndarray,
        var: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        ev = self._events(frame[positions.tolist()], data, horizon)
        mult = np.full(positions.size, np.nan)  # the largest multiplier of the scheduled types
        shift = np.zeros(positions.size)
        for k in self.event_types:
            on = ev[f"sched_{k.lower()}"].to_numpy() == 1
            mult = np.where(on, np.fmax(mult, state.extra["event_var"][k]), mult)
            shift += state.extra["surprise_slope"][k] * self._fresh_z(ev, k)
        return mean + shift * np.sqrt(var), var * np.nan_to_num(mult, nan=1.0)
