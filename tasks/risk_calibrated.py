"""Calibrated twins of an evaluation's models: which method wraps which model, and their rows.

An evaluation's config names a calibration method per model (:mod:`tasks.calibration`); every model
it names (``"*"``: every model not named) gets a calibrated twin called ``<model>+<method>``, e.g.
``har+fhs+aci``, scored by the same risk backtests as the raw model. The twin's rows are the model's
stored out-of-fold rows passed through :func:`tasks.calibration.calibrate`, which is online: a row at
origin t uses only returns realized by t. Calibration runs over every out-of-fold row, the stack's
warm-up sessions included, so the first scored rows already have a calibration history; the twin's
variance and mean are the raw model's, so only its quantiles (VaR, ES, intervals) differ.

Config (``ExperimentSpec.calibration``; the CLI's ``--calibrate``)::

    {"*": "fhs+aci", "har": "evt+aci", "garch": {"method": "aci", "gamma": 0.01}, "naive": "none"}

``"none"`` gives a model no twin; ``{"*": "none"}`` turns calibration off.

The default, ``fhs+aci`` for every model (FHS reshapes the quantiles from the model's last 500
standardised residuals, then ACI corrects each level's miss rate online), was chosen on the
development data: it passed VaR 95/99 (Kupiec and CC) and 80% coverage within 3 pp on 59 of 60
(model, asset) pairs of the synthetic development panel, 56 of 57 on the bundled assets and 102 of
102 on the benchmark panel, where ``aci`` alone passed 56, 57 and 98 (it corrects the tails but is
slow to narrow HAR's too-wide 80% interval) and the raw models 27, 15 and 43.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from core.errors import ConfigError, DataError
from core.schema import QUANTILE_COLUMNS
from tasks.calibration import calibrate, parse_method

logger = logging.getLogger(__name__)

#: The config key of every model the config does not name.
EVERY_MODEL = "*"
#: The method of :data:`EVERY_MODEL` when the config does not set it.
DEFAULT_METHOD = "fhs+aci"
#: Default config: every model gets a ``fhs+aci`` twin.
DEFAULT_CALIBRATION: dict[str, Any] = {EVERY_MODEL: DEFAULT_METHOD}
#: Joins a model's name and its calibration method in the twin's name.
SEPARATOR = "+"
#: Columns the risk backtests read (:func:`tasks.risk.risk_backtest`).
RISK_INPUT_COLUMNS: tuple[str, ...] = (
    "model", "symbol", "origin", "target", "mean", "variance", *QUANTILE_COLUMNS, "family", "params", "ret",
)  # fmt: skip

CalibrationConfig = Mapping[str, str | Mapping[str, Any]]


def calibrated_name(model: str, method: str) -> str:
    """The twin's name: ``har`` calibrated by ``evt+aci`` is ``har+evt+aci``."""
    return f"{model}{SEPARATOR}{method}"


def base_model(name: str) -> str:
    """The raw model behind a (possibly calibrated) model name."""
    return name.split(SEPARATOR, 1)[0]


def calibration_of(name: str) -> str:
    """The calibration method in a model name, ``raw`` for an uncalibrated one."""
    return name.split(SEPARATOR, 1)[1] if SEPARATOR in name else "raw"


def base_expr(column: str = "model") -> pl.Expr:
    """:func:`base_model` of a column of model names, as a polars expression."""
    return pl.col(column).str.splitn(SEPARATOR, 2).struct.field("field_0")


def calibration_expr(column: str = "model") -> pl.Expr:
    """:func:`calibration_of` of a column of model names, as a polars expression."""
    return pl.col(column).str.splitn(SEPARATOR, 2).struct.field("field_1").fill_null("raw")


def _entry(model: str, entry: Any) -> dict[str, Any]:
    """``{"method": ..., **settings}`` of one config entry, checked by :func:`parse_method`."""
    if isinstance(entry, str):
        spec: dict[str, Any] = {"method": entry}
    elif isinstance(entry, Mapping):
        spec = dict(entry)
    else:
        raise ConfigError(f"calibration of {model!r} must be a method name or a mapping; got {entry!r}")
    if not isinstance(spec.get("method"), str):
        raise ConfigError(f"calibration of {model!r} names no 'method' (e.g. 'aci', 'evt+aci', 'none')")
    settings = {k: v for k, v in spec.items() if k != "method"}
    try:
        parse_method(spec["method"], settings)
    except ConfigError as exc:
        raise ConfigError(f"calibration of {model!r}: {exc}") from None
    return spec


def check_calibration(config: CalibrationConfig | None, models: Sequence[str] | None = None) -> None:
    """Raise :class:`ConfigError` for an unknown method or setting, or a model not evaluated."""
    for model, entry in (config or {}).items():
        _entry(model, entry)
        if models is not None and model != EVERY_MODEL and model not in models:
            raise ConfigError(f"calibration names model {model!r}, which is not evaluated: {sorted(models)}")


def calibration_plan(models: Sequence[str], config: CalibrationConfig | None) -> dict[str, dict[str, Any]]:
    """Model -> ``{"method": ..., **settings}`` for every model that gets a calibrated twin.

    ``config`` None means :data:`DEFAULT_CALIBRATION`; a config without ``"*"`` leaves the models it
    does not name on :data:`DEFAULT_METHOD`. A model the config names but ``models`` lacks (its
    folds all failed) is ignored here: the evaluation checks names before it fits anything.
    """
    cfg = dict(DEFAULT_CALIBRATION) | dict(config or {})
    check_calibration(cfg)
    plan = {}
    for model in models:
        spec = _entry(model, cfg.get(model, cfg[EVERY_MODEL]))
        if spec["method"] != "none":
            plan[model] = spec
    return plan


def calibrated_predictions(
    predictions: pl.DataFrame, realized: pl.DataFrame, plan: Mapping[str, Mapping[str, Any]]
) -> pl.DataFrame:
    """The calibrated twin rows (one-step horizon) of every model in ``plan``.

    Parameters
    ----------
    predictions : pl.DataFrame
        Out-of-fold prediction rows with ``model`` and ``horizon``, warm-up rows included.
    realized : pl.DataFrame
        ``symbol``, ``target``, ``ret`` (:func:`tasks.evaluate.realized_frame`).
    plan : Mapping[str, Mapping[str, Any]]
        :func:`calibration_plan`.

    Returns
    -------
    pl.DataFrame
        :data:`RISK_INPUT_COLUMNS` plus ``calibrated`` (False on warm-up rows left raw); ``model`` is
        the twin's name.
    """
    parts = []
    returns = realized.select("symbol", "target", "ret")
    for model, spec in plan.items():
        rows = predictions.filter((pl.col("model") == model) & (pl.col("horizon") == 1))
        rows = rows.unique(subset=["symbol", "origin"], keep="last", maintain_order=True)
        for part in rows.partition_by("symbol", maintain_order=True):
            twin = _twin(part, returns, model, spec)
            if twin is not None:
                parts.append(twin)
    if not parts:
        return pl.DataFrame(schema={**predictions.select(RISK_INPUT_COLUMNS[:-1]).schema, "ret": pl.Float64})
    return pl.concat(parts, how="vertical_relaxed")


def _twin(
    rows: pl.DataFrame, returns: pl.DataFrame, model: str, spec: Mapping[str, Any]
) -> pl.DataFrame | None:
    """One (model, symbol)'s twin rows; None, with a logged reason, when its rows cannot be calibrated."""
    settings = {k: v for k, v in spec.items() if k != "method"}
    try:
        out = calibrate(rows, returns, str(spec["method"]), **settings)
    except DataError as exc:
        logger.warning("no calibrated twin of %s on %s: %s", model, rows["symbol"][0], exc)
        return None
    name = calibrated_name(model, str(spec["method"]))
    return out.with_columns(pl.lit(name).alias("model")).select(*RISK_INPUT_COLUMNS, "calibrated")


def risk_frame(scored: pl.DataFrame, calibrated: pl.DataFrame | None) -> pl.DataFrame:
    """Raw scored rows and the twins' rows on the same (symbol, target) pairs, for the backtests."""
    raw = scored.select(RISK_INPUT_COLUMNS)
    if calibrated is None or calibrated.height == 0:
        return raw
    pairs = scored.select("symbol", "target").unique()
    twins = calibrated.join(pairs, on=["symbol", "target"], how="semi").select(RISK_INPUT_COLUMNS)
    return pl.concat([raw, twins.cast(dict(raw.schema))], how="vertical")  # type: ignore[arg-type]
