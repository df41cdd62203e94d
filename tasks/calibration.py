"""Online calibration of stored return quantiles: ACI, DtACI, FHS and EVT around any forecaster.

Entry points
------------
:func:`calibrate` ``(preds, realized, method, **settings)``
    ``preds``: out-of-fold prediction rows (:data:`core.schema.PREDICTION_SCHEMA`: ``symbol``,
    ``origin``, ``target``, ``mean``, ``variance``, ``q01`` .. ``q99``, ``family``, ``params``; ``model``
    and ``horizon`` optional), one or more models and symbols. ``realized``: ``symbol``, ``target``,
    ``ret`` (the realized return of the target session, e.g. :func:`tasks.evaluate.realized_frame`);
    or ``None`` when ``preds`` carries ``ret`` already. Returns the same rows, in the same order, with
    calibrated quantile columns (non-decreasing in the level), ``family = "calibrated"``, ``params``
    (JSON: ``method``, ``raw_family``, ``raw_params``) and a Boolean column ``calibrated``. Rows still
    in warm-up are returned unchanged (``calibrated = False``).
:func:`calibrate_models` ``(preds, realized, config)``
    A method (and settings) per model from a config mapping, e.g.
    ``{"har": "evt+aci", "gjr_garch": {"method": "aci", "gamma": 0.01}}``.

Methods (``+`` chains them left to right, e.g. ``evt+aci``: ACI on top of the EVT quantiles)
    ``none``   the raw quantiles.
    ``aci``    adaptive conformal inference per level (Gibbs & Candes 2021), step size ``gamma`` (a
               float, or ``{level: gamma}`` with :data:`ACI_GAMMA` for levels not named).
    ``faci``   DtACI (Gibbs & Candes 2022): ACI experts over a grid of step sizes, weighted online;
               nothing to tune (``gammas``, ``interval`` exist but default to the paper's choices).
    ``fhs``    filtered historical simulation: empirical quantiles of the standardized residuals of
               the last ``window`` realized targets, times the row's forecast sigma.
    ``evt``    FHS body, GPD tails beyond the ``tail`` quantile (McNeil & Frey 2000), shape and scale
               refitted every ``refit`` origins.
    Details in :mod:`tasks.calibration_conformal`, :mod:`tasks.calibration_tails` and
    :mod:`tasks.calibration_grid` (the raw quantile function read off the grid).

The online rule
---------------
Per (model, symbol, horizon), in origin order: the calibrated quantiles of the row with origin ``t``
use only the rows whose TARGET is ``<= t`` (a return known at t's close) and whose ``ret`` is finite.
Nothing else about the future enters; a test garbles every later return and checks it.

Warm-up: ``aci``/``faci`` start at the nominal level, which IS the raw quantile, and change it from
the first realized target on, so only rows with no realized target before them are raw. ``fhs`` needs
``min_obs`` (default 100) realized residuals, ``evt`` ``min_obs`` (default 200, so each 10% tail has
20 exceedances); earlier rows are raw.

No crossing: each level is calibrated on its own, so after each stage a row's quantiles are sorted
across levels (the rearrangement of Chernozhukov, Fernandez-Val & Galichon 2010, which never moves a
set of quantile estimates further from the true ones); the recursions keep tracking each level's own
one-sided set.

ES: a ``calibrated`` row is not a parametric family, so :func:`tasks.risk.var_es_frame` takes its ES
from the quantile function (linear between levels, exponential tail below ``q01``) and the ES test
simulates from the same function.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from core.schema import QUANTILE_COLUMNS
from tasks.calibration_conformal import FACI_GAMMAS, FACI_INTERVAL, aci_recursion, faci_recursion
from tasks.calibration_grid import LEVEL_FLOOR, LEVELS, grid_cdf, grid_quantile
from tasks.calibration_tails import rolling_standard_quantiles

#: Default ACI step size of every level (Gibbs & Candes 2021 used 0.005).
ACI_GAMMA = 0.005
#: Family name of a calibrated row.
CALIBRATED_FAMILY = "calibrated"

_LOWER = LEVELS <= 0.5
_TARGET = np.where(_LOWER, LEVELS, 1.0 - LEVELS)  # target miscoverage of each level's one-sided set
_ROW = "__calibration_row"


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class AciSettings:
    """``gamma``: one step size, or ``{level: step}`` (levels not named use :data:`ACI_GAMMA`)."""

    gamma: float | Mapping[float, float] = ACI_GAMMA

    def __post_init__(self) -> None:
        self.gammas()

    def gammas(self) -> np.ndarray:
        """Step size per schema level."""
        try:
            if isinstance(self.gamma, Mapping):
                out = np.full(LEVELS.size, ACI_GAMMA)
                for level, g in self.gamma.items():
                    hit = np.isclose(LEVELS, float(level))
                    if not hit.any():
                        raise ConfigError(f"gamma names level {level!r}, not one of {LEVELS.tolist()}")
                    out[hit] = float(g)
            else:
                out = np.full(LEVELS.size, float(self.gamma))
        except (TypeError, ValueError):
            raise ConfigError(f"gamma must be a number or {{level: number}}; got {self.gamma!r}") from None
        if not np.all((out > 0) & (out < 1)):  # also catches NaN
            raise ConfigError(f"gamma must be in (0, 1); got {self.gamma!r}")
        return out


@dataclass(frozen=True)
class FaciSettings:
    """DtACI's expert step sizes and interval length (the paper's defaults)."""

    gammas: tuple[float, ...] = FACI_GAMMAS
    interval: int = FACI_INTERVAL

    def __post_init__(self) -> None:
        g = np.asarray(self.gammas, dtype=float)
        if g.ndim != 1 or g.size == 0 or not np.all((g > 0) & (g < 1)):
            raise ConfigError(f"gammas must be step sizes in (0, 1); got {self.gammas!r}")
        if not (isinstance(self.interval, int) and self.interval >= 1):
            raise ConfigError(f"interval must be an integer >= 1; got {self.interval!r}")


@dataclass(frozen=True)
class FhsSettings:
    """Residual window, and fewest residuals before calibrating (warm-up)."""

    window: int = 500
    min_obs: int = 100

    def __post_init__(self) -> None:
        ints = isinstance(self.window, int) and isinstance(self.min_obs, int)
        if not (ints and 1 <= self.min_obs <= self.window):
            raise ConfigError(f"need integers 1 <= min_obs <= window; got {self.min_obs!r}, {self.window!r}")


@dataclass(frozen=True)
class EvtSettings(FhsSettings):
    """As FHS, plus the threshold level ``tail`` of each GPD tail and the refit interval (origins)."""

    window: int = 1000
    min_obs: int = 200
    tail: float = 0.10
    refit: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.tail, float) and 0.0 < self.tail < 0.5):
            raise ConfigError(f"tail must be a float in (0, 0.5); got {self.tail!r}")
        if not (isinstance(self.refit, int) and self.refit >= 1):
            raise ConfigError(f"refit must be an integer >= 1; got {self.refit!r}")


_SETTINGS: dict[str, type[Any] | None] = {
    "none": None,
    "aci": AciSettings,
    "faci": FaciSettings,
    "fhs": FhsSettings,
    "evt": EvtSettings,
}


def calibration_methods() -> list[str]:
    """Names :func:`calibrate` accepts (each may be chained with ``+``)."""
    return sorted(_SETTINGS)


def parse_method(method: str, settings: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The stages of ``method`` (``"evt+aci"``) with their settings objects.

    Raises
    ------
    ConfigError
        For an unknown method, or a setting no stage takes.
    """
    names = [m.strip() for m in str(method).split("+")]
    unknown = [n for n in names if n not in _SETTINGS]
    if unknown or not names:
        raise ConfigError(f"method must be one of {calibration_methods()} (chained with '+'); got {method!r}")
    stages: list[tuple[str, Any]] = []
    used: set[str] = set()
    for name in names:
        cls = _SETTINGS[name]
        if cls is None:
            stages.append((name, None))
            continue
        keys = {f.name for f in fields(cls)}
        used |= keys
        stages.append((name, cls(**{k: v for k, v in settings.items() if k in keys})))
    extra = sorted(set(settings) - used)
    if extra:
        raise ConfigError(f"calibration method {method!r} takes no setting(s) {extra}")
    return stages


# ------------------------------------------------------------------------------------- one series
@dataclass(frozen=True)
class _Series:
    """One (model, symbol, horizon) in origin order, with its realized targets as events."""

    q: np.ndarray  # (n, L) raw grid
    mean: np.ndarray
    sd: np.ndarray
    ret: np.ndarray  # NaN where unrealized
    events: np.ndarray  # row index of each realized target, in target order
    known: np.ndarray  # per row: events known at its origin

    @property
    def issued_at(self) -> np.ndarray:
        """Per event: how many events were known when its row was issued."""
        return self.known[self.events]


def _series(group: pl.DataFrame) -> _Series:
    origin = group["origin"].cast(pl.Date).to_physical().to_numpy().astype(np.int64)
    target = group["target"].cast(pl.Date).to_physical().to_numpy().astype(np.int64)
    if np.any(np.diff(origin) <= 0):
        raise DataError("calibration needs one row per (model, symbol, horizon, origin)")
    q = group.select(QUANTILE_COLUMNS).cast(pl.Float64).fill_null(np.nan).to_numpy()
    if not np.isfinite(q).all():
        raise DataError("calibration needs finite raw quantiles in every row")
    ret = group["ret"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    realized = np.flatnonzero(np.isfinite(ret))
    events = realized[np.argsort(target[realized], kind="stable")]
    known = np.searchsorted(target[events], origin, side="right")
    mean = group["mean"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    var = group["variance"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    with np.errstate(invalid="ignore"):
        sd = np.sqrt(var)
    return _Series(np.maximum.accumulate(q, axis=1), mean, sd, ret, events, known)


def _conformal(
    s: _Series, q: np.ndarray, states: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles at the working levels of an ACI-type recursion ``states(beta, issued_at)``."""
    pit = grid_cdf(q[s.events], s.ret[s.events])
    beta = np.where(_LOWER[None, :], pit[:, None], 1.0 - pit[:, None])
    working = states(beta, s.issued_at)[s.known]
    level = np.where(_LOWER[None, :], working, 1.0 - working)
    return grid_quantile(q, level), s.known > 0


def _tails(s: _Series, q: np.ndarray, method: str, cfg: FhsSettings) -> tuple[np.ndarray, np.ndarray]:
    """FHS/EVT quantiles (NaN rows in warm-up)."""
    ev = s.events
    if not (np.isfinite(s.mean).all() and np.isfinite(s.sd).all() and np.all(s.sd > 0)):
        raise DataError(f"calibration {method!r} needs a finite mean and a positive variance in every row")
    z = (s.ret[ev] - s.mean[ev]) / s.sd[ev]
    evt = isinstance(cfg, EvtSettings)
    zq = rolling_standard_quantiles(
        z,
        s.known,
        LEVELS,
        method="evt" if evt else "fhs",
        window=cfg.window,
        min_obs=cfg.min_obs,
        tail=cfg.tail if isinstance(cfg, EvtSettings) else 0.10,
        refit=cfg.refit if isinstance(cfg, EvtSettings) else 1,
    )
    ok = np.isfinite(zq).all(axis=1)
    out = q.copy()
    out[ok] = s.mean[ok, None] + s.sd[ok, None] * zq[ok]
    return out, ok


def _stage(s: _Series, q: np.ndarray, name: str, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Apply one method to the grid ``q``: new grid and the rows it changed."""
    if name == "aci":
        gam = cfg.gammas()
        return _conformal(s, q, lambda b, idx: aci_recursion(b, _TARGET, gam, idx, LEVEL_FLOOR))
    if name == "faci":
        return _conformal(
            s, q, lambda b, idx: faci_recursion(b, _TARGET, cfg.gammas, cfg.interval, idx, LEVEL_FLOOR)
        )
    if name in ("fhs", "evt"):
        return _tails(s, q, name, cfg)
    return q, np.zeros(q.shape[0], dtype=bool)


def _json(text: str | None) -> Any:
    """Parsed JSON params, or the text itself when it is not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _calibrate_group(group: pl.DataFrame, stages: list[tuple[str, Any]], method: str) -> pl.DataFrame:
    """Calibrated rows of one (model, symbol, horizon), sorted by origin."""
    s = _series(group)
    q, changed = s.q, np.zeros(group.height, dtype=bool)
    for name, cfg in stages:
        q_new, rows = _stage(s, q, name, cfg)
        q = np.where(rows[:, None], np.sort(q_new, axis=1), q)  # sorting = rearrangement (no crossing)
        changed |= rows
    raw_q = group.select(QUANTILE_COLUMNS).cast(pl.Float64).to_numpy()
    q = np.where(changed[:, None], q, raw_q)
    raw_fam = group["family"].to_list()
    raw_par = group["params"].to_list() if "params" in group.columns else [None] * group.height
    fams, params = [], []
    for c, f, p in zip(changed.tolist(), raw_fam, raw_par, strict=True):
        fams.append(CALIBRATED_FAMILY if c else f)
        params.append(json.dumps({"method": method, "raw_family": f, "raw_params": _json(p)}) if c else p)
    return group.with_columns(
        *(pl.Series(c, q[:, j], dtype=pl.Float64) for j, c in enumerate(QUANTILE_COLUMNS)),
        pl.Series("family", fams, dtype=pl.String),
        pl.Series("params", params, dtype=pl.String),
        pl.Series("calibrated", changed, dtype=pl.Boolean),
    )


# ------------------------------------------------------------------------------------- entry points
def _with_returns(preds: pl.DataFrame, realized: pl.DataFrame | None) -> pl.DataFrame:
    need = ["symbol", "origin", "target", "mean", "variance", "family", *QUANTILE_COLUMNS]
    missing = [c for c in need if c not in preds.columns]
    if missing:
        raise DataError(f"prediction frame lacks columns {missing}")
    frame = preds.with_row_index(_ROW)
    if realized is None:
        if "ret" not in preds.columns:
            raise DataError("no realized returns: pass realized (symbol, target, ret) or a 'ret' column")
        return frame
    for col in ("symbol", "target", "ret"):
        if col not in realized.columns:
            raise DataError(f"realized frame lacks column {col!r}")
    ret = realized.select("symbol", pl.col("target").cast(pl.Date), pl.col("ret").cast(pl.Float64))
    if ret.select("symbol", "target").is_duplicated().any():
        raise DataError("realized frame has more than one return per (symbol, target)")
    return frame.drop("ret", strict=False).join(ret, on=["symbol", "target"], how="left")


def calibrate(
    preds: pl.DataFrame, realized: pl.DataFrame | None = None, method: str = "aci", **settings: Any
) -> pl.DataFrame:
    """Calibrate the return quantiles of ``preds`` online (see the module docstring).

    Parameters
    ----------
    preds : pl.DataFrame
        Prediction rows (``PREDICTION_SCHEMA`` columns; ``model`` and ``horizon`` optional).
    realized : pl.DataFrame | None
        ``symbol``, ``target``, ``ret``; None when ``preds`` has ``ret``.
    method : str
        ``none``, ``aci``, ``faci``, ``fhs``, ``evt``, or a chain such as ``evt+aci``.
    **settings
        Settings of the stages (:class:`AciSettings`, :class:`FaciSettings`, :class:`FhsSettings`,
        :class:`EvtSettings`).

    Returns
    -------
    pl.DataFrame
        ``preds``' rows in their order with calibrated quantiles, ``family``, ``params``, and
        ``calibrated``; ``ret`` is added when ``realized`` was given.
    """
    stages = parse_method(method, settings)
    frame = _with_returns(preds, realized)
    keys = [k for k in ("model", "symbol", "horizon") if k in frame.columns]
    parts = [
        _calibrate_group(group, stages, method)
        for _, group in frame.sort([*keys, "origin"]).group_by(keys, maintain_order=True)
    ]
    out = pl.concat(parts, how="vertical") if parts else frame.with_columns(calibrated=pl.lit(False))
    return out.sort(_ROW).drop(_ROW)


def calibrate_models(
    preds: pl.DataFrame,
    realized: pl.DataFrame | None,
    config: Mapping[str, str | Mapping[str, Any]],
    default: str = "none",
) -> pl.DataFrame:
    """Calibrate each model of ``preds`` with its own method from ``config``.

    Parameters
    ----------
    config : Mapping[str, str | Mapping[str, Any]]
        Model name -> method, or -> ``{"method": ..., **settings}``.
    default : str
        Method of a model that ``config`` does not name.
    """
    if "model" not in preds.columns:
        raise DataError("calibrate_models needs a 'model' column")
    parts = []
    for model in preds["model"].unique(maintain_order=True).to_list():
        entry = config.get(model, default)
        spec = {"method": entry} if isinstance(entry, str) else dict(entry)
        if "method" not in spec:
            raise ConfigError(f"calibration config of {model!r} names no 'method'")
        method = str(spec.pop("method"))
        rows = preds.with_row_index(_ROW + "m").filter(pl.col("model") == model)
        parts.append(calibrate(rows, realized, method, **spec))
    return pl.concat(parts, how="vertical").sort(_ROW + "m").drop(_ROW + "m")
