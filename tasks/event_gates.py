"""The research plan's weekly event gates, each with its figure, gate and pass/fail.

Pure functions, polars in, :class:`GateResult` lists out; no I/O (except :func:`load_directions`,
which reads one small CSV), no Prefect.

Event sessions
--------------
:func:`event_sessions` maps each scored row's TARGET session to the scheduled events released in its
news window ``(close(target - 1), close(target)]`` of the symbol's session calendar (the rule of
``tasks.events.event_features``: an 08:30 New York CPI print belongs to that day's equity session, a
Sunday-evening release to the next FX day). A row is an event day of type ``k`` when ``ev_k == 1``; a
non-event day has no scheduled event of any of the types. ``z_k`` is the mean surprise z of the
releases of type ``k`` in that window (CPI m/m and core CPI m/m print together).

Gates (research plan, "Evaluation metrics")
-------------------------------------------
1. Envelope calibration, per event type: ``mean(q90 - q10)`` on event days over the mean on non-event
   days within +-7 calendar days of an event day, computed per symbol (a ratio is scale-free) and
   averaged over symbols; gate ``>= 1.5``.
2. Directional accuracy after a surprise: for each release with ``|z| > 0.5`` in the session ``S``,
   the first predictions that can know it are those of origin ``S``; the predicted shift is
   ``sign(q50_event - q50_base)`` of those rows and the expected direction ``sign(z) * d(type,
   asset class)`` from :func:`load_directions`. Gate ``>= 60%``; with no qualifying event the gate
   is not passed (``passed=None``, "no qualifying events").
3. Non-event-day regression (ship-stop): on non-event target sessions, the relative MAE difference of
   ``q50`` against the realized return, ``|MAE_e - MAE_b| / MAE_b < 2%``, and the difference of
   directional accuracy ``P(sign(q50) == sign(ret))`` below 2 points.
4. Walk-forward Sharpe: ``quantile_event`` Sharpe ``>=`` ``quantile`` Sharpe (mean over the symbols
   both were backtested on; per-symbol figures in ``detail``).

Models: the research plan compares its predictors under the names kronos-event and kronos-base
(:data:`tasks.model_catalog.RESEARCH_NAMES`: ``kronos_event`` and ``kronos``). When both were scored the
event gates (1-4) read them; otherwise they read volrisk's stand-ins ``quantile_event`` and ``quantile``
(:func:`gate_pair`). Notes name a model by its research name too (``kronos-event (kronos_event)``).
5. Ensemble lift, per symbol: stacked Sharpe ``>=`` best single Sharpe + 0.1; otherwise the result says
   "fell back to <best single>" and ``detail["serve"]`` names the model to serve.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from tasks.events import EVENT_TYPES, check_events, target_windows
from tasks.model_catalog import RESEARCH_NAMES

#: Shipped direction table (``data/events/README.md``).
SHIPPED_DIRECTIONS_FILE = Path(__file__).resolve().parents[1] / "data" / "events" / "directions.csv"
#: Session calendar by asset class, when the caller gives none per symbol (as ``tasks.ingest``).
CALENDAR_OF_CLASS: dict[str, str] = {
    "crypto": "24x7",
    "fx": "fx",
    "equity": "XNYS",
    "equity_index": "XNYS",
    "index": "XNYS",
    "commodity": "24x7",
}

ENVELOPE_GATE = 1.5
DIRECTION_GATE = 0.60
MAE_GATE = 0.02
DIRECTION_DIFF_GATE = 2.0  # percentage points
LIFT_GATE = 0.1


#: (event model, base model) pairs the event gates compare, in order of preference: the research
#: plan's kronos-event vs kronos-base, then the stand-ins volrisk always has.
GATE_PAIRS: tuple[tuple[str, str], ...] = (("kronos_event", "kronos"), ("quantile_event", "quantile"))


def gate_pair(models: set[str]) -> tuple[str, str]:
    """The first of :data:`GATE_PAIRS` whose two models were both scored (else the stand-ins)."""
    for event_model, base_model in GATE_PAIRS:
        if {event_model, base_model} <= models:
            return event_model, base_model
    return GATE_PAIRS[-1]


def research_label(model: str) -> str:
    """``kronos-event (kronos_event)`` for a model of the research plan, else the registry name."""
    names = {v: k for k, v in RESEARCH_NAMES.items()}
    return f"{names[model]} ({model})" if model in names else model


@dataclass(frozen=True)
class GateResult:
    """One gate of the weekly evaluation.

    Attributes
    ----------
    test : str
        ``envelope_calibration``, ``directional_accuracy``, ``non_event_mae``,
        ``non_event_direction``, ``walk_forward_sharpe``, ``ensemble_lift``.
    scope : str
        Event type (``FOMC``), symbol, or ``all``.
    figure : float | None
        The measured figure (None when it cannot be computed).
    gate : str
        The gate, e.g. ``">= 1.5"``.
    passed : bool | None
        None when the figure is missing (never counts as a pass).
    n : int
        Observations behind the figure (event days, events, sessions, symbols).
    note : str
        Human-readable remark ("no qualifying events", "fell back to har").
    ship_stop : bool
        Whether failing this gate stops a release.
    detail : dict
        JSON-able extras (per-symbol or per-type figures, the model to serve).
    """

    test: str
    scope: str
    figure: float | None
    gate: str
    passed: bool | None
    n: int
    note: str = ""
    ship_stop: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


GATES_SCHEMA: dict[str, pl.DataType] = {
    "test": pl.String(),
    "scope": pl.String(),
    "figure": pl.Float64(),
    "gate": pl.String(),
    "passed": pl.Boolean(),
    "n": pl.Int64(),
    "note": pl.String(),
    "ship_stop": pl.Boolean(),
}


def gates_frame(results: Sequence[GateResult]) -> pl.DataFrame:
    """The gates as a frame (``detail`` left out), in :data:`GATES_SCHEMA`."""
    rows = [{k: v for k, v in asdict(r).items() if k != "detail"} for r in results]
    return pl.DataFrame(rows, schema=GATES_SCHEMA) if rows else pl.DataFrame(schema=GATES_SCHEMA)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# ------------------------------------------------------------------------------------------ directions
def load_directions(path: str | Path | None = None) -> dict[tuple[str, str], int]:
    """Expected return sign after a positive surprise, per (event type, asset class).

    Parameters
    ----------
    path : str | Path | None
        CSV with columns ``type,asset_class,direction[,note]`` (direction -1, 0 or 1); default the
        shipped ``data/events/directions.csv``.

    Returns
    -------
    dict[tuple[str, str], int]
        ``(TYPE, asset_class) -> direction`` (type upper-case, asset class lower-case).
    """
    path = Path(path) if path is not None else SHIPPED_DIRECTIONS_FILE
    if not path.is_file():
        raise DataError("direction table not found", location=str(path))
    out: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower() for c in reader.fieldnames or []}
        missing = {"type", "asset_class", "direction"} - cols
        if missing:
            raise DataError(f"missing column(s) {sorted(missing)}", location=f"{path}:1")
        for row in reader:
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            where = f"{path}:{reader.line_num}"
            try:
                d = int(row["direction"])
            except ValueError as exc:
                raise DataError(
                    f"direction must be -1, 0 or 1; got {row['direction']!r}", location=where
                ) from exc
            if d not in (-1, 0, 1):
                raise DataError(f"direction must be -1, 0 or 1; got {d}", location=where)
            out[(row["type"].upper(), row["asset_class"].lower())] = d
    return out


# ------------------------------------------------------------------------------------ event sessions
def _symbol_calendar(symbol: str, keys: pl.DataFrame, calendars: Mapping[str, str] | None) -> str:
    """The session calendar of ``symbol``: given, or :data:`CALENDAR_OF_CLASS` of its asset class."""
    cal = (calendars or {}).get(symbol)
    if cal is None:
        ac = str(keys["asset_class"][0]).lower() if "asset_class" in keys.columns else ""
        if ac not in CALENDAR_OF_CLASS:
            raise ConfigError(f"no calendar for symbol {symbol!r} (asset class {ac!r}): pass calendars=")
        cal = CALENDAR_OF_CLASS[ac]
    return cal


def _type_columns(
    of_type: pl.DataFrame, start: np.ndarray, end: np.ndarray, key: str
) -> dict[str, pl.Series]:
    """``ev_<key>``, ``z_<key>`` and ``known_<key>`` of the windows ``(start, end]`` (epoch us)."""
    cols: dict[str, pl.Series] = {}
    sched = np.sort(of_type.filter(pl.col("scheduled"))["event_ts"].dt.epoch("us").to_numpy())
    hits = np.searchsorted(sched, end, side="right") - np.searchsorted(sched, start, side="right")
    cols[f"ev_{key}"] = pl.Series(f"ev_{key}", (hits > 0).astype(np.int8))
    rel = (
        of_type.filter(pl.col("surprise_z").is_not_null())
        .group_by("event_ts")
        .agg(pl.col("surprise_z").mean())
        .sort("event_ts")
    )
    ts = rel["event_ts"].dt.epoch("us").to_numpy()
    csum = np.concatenate([[0.0], np.cumsum(rel["surprise_z"].to_numpy())])
    lo = np.searchsorted(ts, start, side="right")
    hi = np.searchsorted(ts, end, side="right")
    cnt = hi - lo
    z = np.where(cnt > 0, (csum[hi] - csum[lo]) / np.maximum(cnt, 1), np.nan)
    cols[f"z_{key}"] = pl.Series(f"z_{key}", z, dtype=pl.Float64).fill_nan(None)
    all_ts = of_type["event_ts"].dt.epoch("us").to_numpy()
    known = (end >= all_ts.min()) & (start < all_ts.max()) if all_ts.size else np.zeros(end.size, bool)
    cols[f"known_{key}"] = pl.Series(f"known_{key}", known)
    return cols


def _symbol_sessions(g: pl.DataFrame, events: pl.DataFrame, cal: str, types: Sequence[str]) -> pl.DataFrame:
    """:func:`event_sessions` rows of one symbol's keys ``g`` on session calendar ``cal``."""
    win = target_windows(cal, g["origin"], 1).rename({"session_date": "origin"})
    frame = g.select("symbol", "origin", "target").join(
        win.select("origin", "win_start", "win_end"), on="origin", how="left"
    )
    start = frame["win_start"].dt.epoch("us").to_numpy()
    end = frame["win_end"].dt.epoch("us").to_numpy()
    cols: dict[str, pl.Series] = {}
    for kind in types:
        cols |= _type_columns(events.filter(pl.col("type") == kind.upper()), start, end, kind.lower())
    return frame.drop("win_start", "win_end").with_columns(**cols)


def _empty_sessions(types: Sequence[str]) -> pl.DataFrame:
    """A zero-row :func:`event_sessions` frame."""
    schema: dict[str, pl.DataType] = {"symbol": pl.String(), "origin": pl.Date(), "target": pl.Date()}
    for kind in types:
        key = kind.lower()
        schema |= {f"ev_{key}": pl.Int8(), f"z_{key}": pl.Float64(), f"known_{key}": pl.Boolean()}
    return pl.DataFrame(schema=schema).with_columns(pl.lit(False).alias("any_event"))


def event_sessions(
    scored: pl.DataFrame,
    events: pl.DataFrame,
    *,
    calendars: Mapping[str, str] | None = None,
    types: Sequence[str] = EVENT_TYPES,
) -> pl.DataFrame:
    """Per (symbol, origin): the target session and its scheduled events and surprise z by type.

    Parameters
    ----------
    scored : pl.DataFrame
        Rows with ``symbol``, ``origin`` (Date), ``target`` (Date) and, without ``calendars``,
        ``asset_class``.
    events : pl.DataFrame
        ``tasks.events.EVENTS_SCHEMA`` frame.
    calendars : Mapping[str, str] | None
        Symbol -> session calendar; missing symbols use :data:`CALENDAR_OF_CLASS` of their
        asset class.
    types : Sequence[str]
        Event types.

    Returns
    -------
    pl.DataFrame
        ``symbol, origin, target`` then per type ``ev_<k>`` (Int8, scheduled release in the target
        window), ``z_<k>`` (Float64, mean surprise z of the releases in that window, null if none),
        ``known_<k>`` (Boolean, the window lies inside the span of the calendar's releases of that
        type), and ``any_event`` (Boolean).
    """
    events = check_events(events)
    keys = scored.select(
        "symbol", "origin", "target", *(["asset_class"] if "asset_class" in scored.columns else [])
    )
    keys = keys.unique(["symbol", "origin"], keep="first").sort(["symbol", "origin"])
    parts: list[pl.DataFrame] = []
    for (symbol,), g in keys.group_by(["symbol"], maintain_order=True):
        cal = _symbol_calendar(str(symbol), g, calendars)
        parts.append(_symbol_sessions(g, events, cal, types))
    if not parts:
        return _empty_sessions(types)
    out = pl.concat(parts)
    ev_cols = [f"ev_{k.lower()}" for k in types]
    any_event = pl.any_horizontal([pl.col(c) > 0 for c in ev_cols]) if ev_cols else pl.lit(False)
    return out.with_columns(any_event.alias("any_event"))


def _with_sessions(scored: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    return scored.join(sessions.drop("target"), on=["symbol", "origin"], how="left")


# ---------------------------------------------------------------------------------------------- gates
def _symbol_envelope(g: pl.DataFrame, key: str, window_days: int) -> tuple[int, dict[str, float] | None]:
    """Event days in one symbol's rows ``g`` and its envelope ratio (None without a usable control)."""
    g = g.filter(pl.col("band").is_not_null() & pl.col("band").is_finite())
    ev = g.filter(pl.col(key) == 1)
    if ev.height == 0:
        return 0, None
    ev_days = np.sort(ev["target"].cast(pl.Int64).to_numpy())
    quiet = g.filter(~pl.col("any_event").fill_null(False))
    qd = quiet["target"].cast(pl.Int64).to_numpy()
    pos = np.searchsorted(ev_days, qd)
    left = np.abs(qd - ev_days[np.clip(pos - 1, 0, ev_days.size - 1)])
    right = np.abs(ev_days[np.clip(pos, 0, ev_days.size - 1)] - qd)
    near = np.minimum(left, right) <= window_days
    control = quiet.filter(pl.Series(near))
    if control.height == 0:
        return ev.height, None
    mean_ev = float(ev["band"].mean())  # type: ignore[arg-type]
    mean_ctl = float(control["band"].mean())  # type: ignore[arg-type]
    if mean_ctl > 0:
        return ev.height, {
            "ratio": mean_ev / mean_ctl,
            "event_days": ev.height,
            "control_days": control.height,
        }
    return ev.height, None


def _envelope_gate(
    kind: str, per_symbol: dict[str, dict[str, float]], n_events: int, gate: float, model: str
) -> GateResult:
    """The ``envelope_calibration`` gate of one event type from its per-symbol ratios."""
    ratios = [v["ratio"] for v in per_symbol.values()]
    figure = float(np.mean(ratios)) if ratios else None
    note = "" if figure is not None else ("no event days" if n_events == 0 else "no control days")
    return GateResult(
        "envelope_calibration",
        kind.upper(),
        _finite(figure),
        f">= {gate:g}",
        None if figure is None else bool(figure >= gate),
        n_events,
        note,
        detail={"model": model, "per_symbol": per_symbol},
    )


def envelope_calibration(
    scored: pl.DataFrame,
    sessions: pl.DataFrame,
    *,
    model: str,
    types: Sequence[str] = EVENT_TYPES,
    window_days: int = 7,
    gate: float = ENVELOPE_GATE,
) -> list[GateResult]:
    """Spread ratio of the ``q90 - q10`` envelope on event days, one gate per event type.

    Parameters
    ----------
    scored : pl.DataFrame
        Scored rows (``model, symbol, origin, target, q10, q90``).
    sessions : pl.DataFrame
        :func:`event_sessions` of those rows.
    model : str
        The model judged (the event-conditioned one).
    types : Sequence[str]
        Event types, one gate each.
    window_days : int
        Controls are non-event target sessions within this many calendar days of an event day.
    gate : float
        Pass when the ratio is at least this.

    Returns
    -------
    list[GateResult]
        ``figure`` = mean over symbols of ``mean band(event days) / mean band(controls)``;
        ``n`` = event days; ``detail`` = per-symbol ratios and counts.
    """
    frame = _with_sessions(scored.filter(pl.col("model") == model), sessions).with_columns(
        (pl.col("q90") - pl.col("q10")).alias("band")
    )
    out: list[GateResult] = []
    for kind in types:
        key = f"ev_{kind.lower()}"
        per_symbol: dict[str, dict[str, float]] = {}
        n_events = 0
        for (symbol,), g in frame.group_by(["symbol"], maintain_order=True):
            n, ratio = _symbol_envelope(g, key, window_days)
            n_events += n
            if ratio is not None:
                per_symbol[str(symbol)] = ratio
        out.append(_envelope_gate(kind, per_symbol, n_events, gate, model))
    return out


def _direction_pairs(
    scored: pl.DataFrame, sessions: pl.DataFrame, event_model: str, base_model: str, z_cols: list[str]
) -> pl.DataFrame:
    """Both models' ``q50`` per (symbol, origin) with the surprise z the origin session first knows."""
    cols = ["symbol", "origin", "asset_class", "q50"]
    e = scored.filter(pl.col("model") == event_model).select(cols).rename({"q50": "q50_event"})
    b = scored.filter(pl.col("model") == base_model).select(
        "symbol", "origin", pl.col("q50").alias("q50_base")
    )
    pairs = e.join(b, on=["symbol", "origin"], how="inner")
    # Release in the TARGET window of origin o happens in session target(o) = S; the first
    # predictions that know it are those of origin S.
    known = sessions.select("symbol", pl.col("target").alias("origin"), *z_cols)
    return pairs.join(known, on=["symbol", "origin"], how="inner")


def _direction_hits(
    sel: pl.DataFrame, kind: str, zc: str, directions: Mapping[tuple[str, str], int]
) -> list[bool]:
    """Per surprise row of type ``kind``: did the predicted shift take the expected direction."""
    hits: list[bool] = []
    for row in sel.iter_rows(named=True):
        d = directions.get((kind.upper(), str(row["asset_class"]).lower()), 0)
        if d == 0 or row["q50_event"] is None or row["q50_base"] is None:
            continue
        expected = int(np.sign(row[zc])) * d
        shift = int(np.sign(row["q50_event"] - row["q50_base"]))
        hits.append(shift == expected)
    return hits


def directional_accuracy(
    scored: pl.DataFrame,
    sessions: pl.DataFrame,
    *,
    event_model: str,
    base_model: str,
    directions: Mapping[tuple[str, str], int],
    types: Sequence[str] = EVENT_TYPES,
    z_min: float = 0.5,
    gate: float = DIRECTION_GATE,
) -> GateResult:
    """``P(sign(q50_event - q50_base) == expected direction)`` on releases with ``|z| > z_min``.

    Parameters
    ----------
    scored : pl.DataFrame
        Scored rows with ``asset_class``.
    sessions : pl.DataFrame
        :func:`event_sessions` of those rows.
    event_model, base_model : str
        The event-conditioned model and its base.
    directions : Mapping[tuple[str, str], int]
        :func:`load_directions` table.
    types : Sequence[str]
        Event types.
    z_min : float
        Smallest ``|z|`` that counts as a surprise.
    gate : float
        Pass when the accuracy is at least this.

    Returns
    -------
    GateResult
        Pooled over types and symbols; ``detail["per_type"]`` = accuracy and n per type. With no
        qualifying event: ``figure=None``, ``passed=None``, note "no qualifying events".
    """
    z_cols = [f"z_{k.lower()}" for k in types]
    pairs = _direction_pairs(scored, sessions, event_model, base_model, z_cols)
    per_type: dict[str, dict[str, Any]] = {}
    hits_all: list[bool] = []
    for kind, zc in zip(types, z_cols, strict=True):
        hits = _direction_hits(pairs.filter(pl.col(zc).abs() > z_min), kind, zc, directions)
        per_type[kind.upper()] = {"n": len(hits), "accuracy": float(np.mean(hits)) if hits else None}
        hits_all += hits
    n = len(hits_all)
    figure = float(np.mean(hits_all)) if n else None
    return GateResult(
        "directional_accuracy",
        "all",
        figure,
        f">= {gate:.0%}",
        None if figure is None else bool(figure >= gate),
        n,
        "" if n else "no qualifying events",
        detail={"per_type": per_type, "z_min": z_min, "event_model": event_model, "base_model": base_model},
    )


def _uncovered_share(scored: pl.DataFrame, sessions: pl.DataFrame, event_model: str) -> float | None:
    """Share of the event model's rows where some event type lies outside the calendar's span."""
    known_cols = [c for c in sessions.columns if c.startswith("known_")]
    if not (known_cols and scored.height):
        return None
    return float(
        _with_sessions(scored.filter(pl.col("model") == event_model), sessions)
        .select(~pl.all_horizontal([pl.col(c).fill_null(False) for c in known_cols]))
        .to_series()
        .mean()  # type: ignore[arg-type]
    )


def _non_event_pairs(
    scored: pl.DataFrame, sessions: pl.DataFrame, event_model: str, base_model: str
) -> pl.DataFrame:
    """``symbol, target, ret, qe, qb`` on non-event target sessions both models predicted."""
    frame = _with_sessions(scored, sessions).filter(
        ~pl.col("any_event").fill_null(False) & pl.col("ret").is_not_null() & pl.col("q50").is_not_null()
    )
    e = frame.filter(pl.col("model") == event_model).select(
        "symbol", "target", "ret", pl.col("q50").alias("qe")
    )
    b = frame.filter(pl.col("model") == base_model).select("symbol", "target", pl.col("q50").alias("qb"))
    return e.join(b, on=["symbol", "target"], how="inner")


def _non_event_figures(pairs: pl.DataFrame) -> tuple[dict[str, float], float, float, np.ndarray]:
    """Both models' MAE and sign accuracy, the relative MAE gap, the accuracy gap (points), ``ret != 0``."""
    r = pairs["ret"].to_numpy()
    qe, qb = pairs["qe"].to_numpy(), pairs["qb"].to_numpy()
    mae_e, mae_b = float(np.mean(np.abs(qe - r))), float(np.mean(np.abs(qb - r)))
    rel = abs(mae_e - mae_b) / mae_b if mae_b > 0 else math.nan
    nz = r != 0
    acc_e = float(np.mean(np.sign(qe[nz]) == np.sign(r[nz]))) if nz.any() else math.nan
    acc_b = float(np.mean(np.sign(qb[nz]) == np.sign(r[nz]))) if nz.any() else math.nan
    diff = abs(acc_e - acc_b) * 100.0
    figures = {"mae_event": mae_e, "mae_base": mae_b, "acc_event": acc_e, "acc_base": acc_b}
    return figures, rel, diff, nz


def non_event_regression(
    scored: pl.DataFrame,
    sessions: pl.DataFrame,
    *,
    event_model: str,
    base_model: str,
    mae_gate: float = MAE_GATE,
    direction_gate: float = DIRECTION_DIFF_GATE,
) -> list[GateResult]:
    """Ship-stop check that event conditioning does not hurt quiet days (two gates).

    On target sessions with no scheduled event of any type, over the (symbol, target) rows both
    models predicted: ``|MAE_e - MAE_b| / MAE_b`` of ``q50`` against ``ret`` (gate ``< 2%``) and
    ``|acc_e - acc_b|`` in percentage points of ``P(sign(q50) == sign(ret))`` over ``ret != 0``
    (gate ``< 2``).

    Returns
    -------
    list[GateResult]
        ``non_event_mae`` and ``non_event_direction`` (``ship_stop=True``); ``detail`` has both
        models' figures and the share of rows where some event type was outside the calendar.
    """
    pairs = _non_event_pairs(scored, sessions, event_model, base_model)
    n = pairs.height
    uncovered = _uncovered_share(scored, sessions, event_model)
    if n == 0:
        note = "no non-event sessions scored by both models"
        return [
            GateResult("non_event_mae", "all", None, f"< {mae_gate:.0%}", None, 0, note, True),
            GateResult("non_event_direction", "all", None, f"< {direction_gate:g} pts", None, 0, note, True),
        ]
    figures, rel, diff, nz = _non_event_figures(pairs)
    detail = {**figures, "uncovered_share": uncovered, "event_model": event_model, "base_model": base_model}
    rel_f, diff_f = _finite(rel), _finite(diff)
    return [
        GateResult(
            "non_event_mae",
            "all",
            rel_f,
            f"< {mae_gate:.0%}",
            None if rel_f is None else bool(rel_f < mae_gate),
            n,
            "",
            True,
            detail,
        ),
        GateResult(
            "non_event_direction",
            "all",
            diff_f,
            f"< {direction_gate:g} pts",
            None if diff_f is None else bool(diff_f < direction_gate),
            int(nz.sum()),
            "",
            True,
            detail,
        ),
    ]


def _sharpes(metrics: pl.DataFrame) -> dict[str, dict[str, float]]:
    """model -> symbol -> finite Sharpe."""
    out: dict[str, dict[str, float]] = {}
    for row in metrics.select("model", "symbol", "sharpe").iter_rows():
        model, symbol, sharpe = row
        if sharpe is not None and math.isfinite(sharpe):
            out.setdefault(str(model), {})[str(symbol)] = float(sharpe)
    return out


def walk_forward_sharpe(strategy_metrics: pl.DataFrame, *, event_model: str, base_model: str) -> GateResult:
    """Gate: mean Sharpe of ``event_model`` >= that of ``base_model`` over their common symbols.

    ``figure`` is the difference of the mean Sharpes (``>= 0`` passes); per-symbol Sharpes in
    ``detail``.
    """
    s = _sharpes(strategy_metrics)
    ev, base = s.get(event_model, {}), s.get(base_model, {})
    common = sorted(set(ev) & set(base))
    if not common:
        return GateResult(
            "walk_forward_sharpe",
            "all",
            None,
            ">= 0",
            None,
            0,
            f"no symbol with a Sharpe for both {event_model} and {base_model}",
        )
    diff = float(np.mean([ev[c] for c in common]) - np.mean([base[c] for c in common]))
    return GateResult(
        "walk_forward_sharpe",
        "all",
        diff,
        ">= 0",
        bool(diff >= 0),
        len(common),
        f"{research_label(event_model)} - {research_label(base_model)} mean Sharpe",
        detail={"per_symbol": {c: {event_model: ev[c], base_model: base[c]} for c in common}},
    )


def ensemble_lift(
    strategy_metrics: pl.DataFrame,
    *,
    ensemble_model: str = "ensemble",
    margin: float = LIFT_GATE,
    exclude: Sequence[str] = (),
) -> list[GateResult]:
    """Per symbol: stacked Sharpe >= best single-model Sharpe + ``margin``.

    The gate measures; it does not decide what the ``ensemble`` serves. That decision is made once,
    per asset class, by ``tasks.scorecard.stacking_decision``, and the report states it once.

    Returns
    -------
    list[GateResult]
        One per symbol; ``figure`` = ensemble Sharpe - best single Sharpe, ``detail`` the best single
        model and both Sharpes. One ``all`` row with ``passed=None`` when the ensemble was not scored.
    """
    s = _sharpes(strategy_metrics)
    gate = f">= best + {margin:g}"
    if ensemble_model not in s:
        return [GateResult("ensemble_lift", "all", None, gate, None, 0, f"model {ensemble_model} not scored")]
    singles = {m: v for m, v in s.items() if m != ensemble_model and m not in exclude}
    out: list[GateResult] = []
    for sym in sorted({sym for v in s.values() for sym in v}):
        cands = {m: v[sym] for m, v in singles.items() if sym in v}
        best = max(cands, key=lambda m: cands[m]) if cands else None
        ens = s[ensemble_model].get(sym)
        if best is None or ens is None:
            note = "no single model with a Sharpe" if best is None else "no ensemble Sharpe"
            out.append(GateResult("ensemble_lift", sym, None, gate, None, 0, note, detail={}))
            continue
        detail = {"best_single": best, "best_sharpe": cands[best], "ensemble_sharpe": ens}
        lift = ens - cands[best]
        passed = bool(lift >= margin)
        note = "" if passed else f"below the best single model ({best}) + {margin:g}"
        out.append(GateResult("ensemble_lift", sym, lift, gate, passed, 1, note, detail=detail))
    return out


def _envelope_gates(
    h1: pl.DataFrame,
    sessions: pl.DataFrame,
    models: set[str],
    event_model: str,
    types: Sequence[str],
    window_days: int,
) -> list[GateResult]:
    """Envelope gates per type, or one unscored result per type when ``event_model`` was not scored."""
    if event_model in models:
        return envelope_calibration(h1, sessions, model=event_model, types=types, window_days=window_days)
    return [
        GateResult(
            "envelope_calibration",
            k.upper(),
            None,
            f">= {ENVELOPE_GATE:g}",
            None,
            0,
            f"model {event_model} not scored",
        )
        for k in types
    ]


def _paired_gates(
    h1: pl.DataFrame,
    sessions: pl.DataFrame,
    models: set[str],
    table: Mapping[tuple[str, str], int],
    event_model: str,
    base_model: str,
    types: Sequence[str],
    z_min: float,
) -> list[GateResult]:
    """Directional accuracy and the two non-event gates (unscored unless both models were scored)."""
    if {event_model, base_model} <= models:
        direction = directional_accuracy(
            h1,
            sessions,
            event_model=event_model,
            base_model=base_model,
            directions=table,
            types=types,
            z_min=z_min,
        )
        return [
            direction,
            *non_event_regression(h1, sessions, event_model=event_model, base_model=base_model),
        ]
    note = f"models {event_model} and {base_model} not both scored"
    return [
        GateResult("directional_accuracy", "all", None, f">= {DIRECTION_GATE:.0%}", None, 0, note),
        GateResult("non_event_mae", "all", None, f"< {MAE_GATE:.0%}", None, 0, note, True),
        GateResult("non_event_direction", "all", None, f"< {DIRECTION_DIFF_GATE:g} pts", None, 0, note, True),
    ]


def event_gates(
    scored: pl.DataFrame,
    events: pl.DataFrame,
    strategy_metrics: pl.DataFrame,
    *,
    calendars: Mapping[str, str] | None = None,
    directions: Mapping[tuple[str, str], int] | str | Path | None = None,
    event_model: str | None = None,
    base_model: str | None = None,
    ensemble_model: str = "ensemble",
    types: Sequence[str] = EVENT_TYPES,
    z_min: float = 0.5,
    window_days: int = 7,
) -> list[GateResult]:
    """All five gates of the research plan, in report order.

    Parameters
    ----------
    scored : pl.DataFrame
        Scored rows (``PREDICTION_SCHEMA`` + ``ret``, ``asset_class``), horizon 1.
    events : pl.DataFrame
        ``tasks.events.EVENTS_SCHEMA`` (e.g. ``load_event_calendar(forexfactory=...)``).
    strategy_metrics : pl.DataFrame
        First output of ``tasks.strategy.compare_strategies``.
    calendars : Mapping[str, str] | None
        Symbol -> session calendar (default from ``asset_class``).
    directions : Mapping | str | Path | None
        Direction table, or a CSV path for :func:`load_directions`; default the shipped table.
    event_model, base_model : str | None
        The compared models; None (both): :func:`gate_pair` of the scored models.
    ensemble_model : str
        The stack's name.
    types : Sequence[str]
        Event types.
    z_min : float
        Surprise threshold of the directional gate.
    window_days : int
        Control window of the envelope gate.

    Returns
    -------
    list[GateResult]
        Envelope per type, directional accuracy, the two non-event gates (ship-stop), walk-forward
        Sharpe, ensemble lift per symbol. A gate whose models were not scored has ``passed=None``.
    """
    table = directions if isinstance(directions, Mapping) else load_directions(directions)
    h1 = scored.filter(pl.col("horizon") == 1) if "horizon" in scored.columns else scored
    sessions = event_sessions(h1, events, calendars=calendars, types=types)
    models = set(h1["model"].unique().to_list()) if h1.height else set()
    if event_model is None or base_model is None:
        event_model, base_model = gate_pair(models)
    results = _envelope_gates(h1, sessions, models, event_model, types, window_days)
    results += _paired_gates(h1, sessions, models, table, event_model, base_model, types, z_min)
    results.append(walk_forward_sharpe(strategy_metrics, event_model=event_model, base_model=base_model))
    results += ensemble_lift(strategy_metrics, ensemble_model=ensemble_model)
    return results
