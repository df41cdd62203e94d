"""Minute mode, one forecast path: quantiles, ONLINE calibration, and the backtests of each variant.

Given the hold-out returns ``r``, their variance forecasts ``v`` (already reseasonalised) and the fitted
standardized family ``F`` of a minute model, :func:`variant_quantiles` gives the quantiles
``sqrt(v) F^-1(tau)`` at the schema levels (:data:`core.schema.QUANTILES`), ``var95 = q05``,
``var99 = q01`` and ``es975 = sqrt(v) ES_F(0.025)``.

Online calibration (:func:`working_levels`)
-------------------------------------------
The probability integral transform ``u_p = F(r_p / sqrt(v_p))`` of each minute feeds the
adaptive conformal recursions of :mod:`tasks.calibration_conformal` (``aci``: Gibbs & Candes 2021 with
one step size per level; ``faci``: DtACI, no tuning; ``caci``: ACI run separately after a breach and
after a non-breach of each level, :func:`tasks.calibration_conformal.conditional_aci_levels`;
``mfaci``, the default: DtACI run separately in each tail state of the previous minute,
:func:`state_faci_levels`, which targets Christoffersen's independence as well as the rate), every
level at once, in time order. The recursions may start on the last training minutes (``warmup``) so
that they enter the hold-out already adapted; only hold-out rows are issued and scored. The level
issued at minute ``p`` is the recursion's state after minutes ``< p`` only (``issued_at = arange``:
a one-minute return is known at the next minute), so nothing at or after ``p`` moves it (tested by
garbling later returns). The calibrated quantile is ``sqrt(v_p) F^-1(a_p)`` at the working level
``a_p`` (clipped to ``[LEVEL_FLOOR, 1 - LEVEL_FLOOR]``), rows sorted across levels (no crossing).
ES 97.5 of a calibrated row is the family's ES at the working level of 0.025:
``sqrt(v) ES_F(a_p)``: the calibrated 2.5% tail is the family's tail below ``F^-1(a_p)``; the ES
test simulates from that same tail (only draws below the 2.5% level enter ``Z2``).

Default ACI steps (:func:`aci_steps`): ``gamma = ACI_STEP_SHARE * min(tau, 1 - tau)`` per level, so a
breach moves every level by the same share of its own tail (0.005 of Gibbs & Candes at 10% would
halve a 1% level after one breach).

Pure numpy/polars.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from core.errors import ConfigError
from core.schema import QUANTILE_COLUMNS, QUANTILES
from tasks.calibration_conformal import aci_recursion, conditional_aci_levels, faci_recursion
from tasks.calibration_grid import LEVEL_FLOOR
from tasks.risk import (
    VAR_LEVELS,
    _family_ppf,
    es_backtest,
    family_standard_es,
    interval_scores,
    var_level_stats,
)
from tasks.risk_recommend import PASS_LEVEL

#: Online calibration methods of minute mode.
MINUTE_CALIBRATIONS: tuple[str, ...] = ("none", "aci", "faci", "caci", "mfaci")
#: ``mfaci`` states: the previous minute's PIT below this (a lower-tail move), above one minus it
#: (an upper-tail move), or neither.
TAIL_STATE_EDGE = 0.05
#: ACI step size per level as a share of the level's tail probability.
ACI_STEP_SHARE = 0.05
#: ES level reported (tail probability).
ES_ALPHA = 0.025

_LEVELS = np.asarray(QUANTILES, dtype=float)
_LOWER = _LEVELS <= 0.5
_TARGET = np.where(_LOWER, _LEVELS, 1.0 - _LEVELS)
_ES_COL = int(np.flatnonzero(np.isclose(_LEVELS, ES_ALPHA))[0])


def family_cdf(family: Any, x: np.ndarray) -> np.ndarray:
    """The standardized family's distribution function (the inverse of ``tasks.risk._family_ppf``)."""
    x = np.asarray(x, dtype=float)
    name = getattr(family, "name", None)
    if name == "gaussian":
        return np.asarray(stats.norm.cdf(x))
    if name == "student_t":
        df = float(family.df)
        return np.asarray(stats.t.cdf(x / math.sqrt((df - 2) / df), df))
    if name == "fhs":
        z = np.asarray(family.residuals, dtype=float)
        return np.interp(x, z, np.linspace(0.0, 1.0, z.size), left=0.0, right=1.0)
    if name == "skew_t":
        return np.asarray(family.standard_cdf(x))
    raise ConfigError(f"no distribution function for family {name!r}")


def aci_steps(share: float = ACI_STEP_SHARE) -> np.ndarray:
    """Default ACI step size of each schema level: ``share * min(tau, 1 - tau)``."""
    if not (isinstance(share, int | float) and 0 < share < 1):
        raise ConfigError(f"ACI step share must be in (0, 1); got {share!r}")
    return share * _TARGET


def tail_state(pit: np.ndarray, edge: float = TAIL_STATE_EDGE) -> np.ndarray:
    """State of each minute for ``mfaci``, from the PREVIOUS minute's PIT (0 for the first).

    0: the previous minute was in neither tail; 1: below ``edge``; 2: above ``1 - edge``.
    """
    u = np.asarray(pit, dtype=float)
    prev = np.concatenate([[0.5], u[:-1]])
    return np.where(prev < edge, 1, np.where(prev > 1.0 - edge, 2, 0)).astype(np.int64)


def _recursion_levels(u: np.ndarray, method: str, gamma: np.ndarray | None) -> np.ndarray:
    """Issued tail probabilities ``(n, 9)`` of one recursion (``aci``, ``faci``, ``caci``) over ``u``."""
    beta = np.where(_LOWER[None, :], u[:, None], 1.0 - u[:, None])
    g = aci_steps() if gamma is None else np.broadcast_to(np.asarray(gamma, dtype=float), _TARGET.shape)
    if method == "caci":
        return conditional_aci_levels(beta, _TARGET, g, LEVEL_FLOOR)
    if method == "aci":
        state = aci_recursion(beta, _TARGET, g, None, LEVEL_FLOOR)
    else:
        state = faci_recursion(beta, _TARGET, floor=LEVEL_FLOOR)
    return np.clip(state[:-1], LEVEL_FLOOR, 1.0 - LEVEL_FLOOR)


def state_faci_levels(pit: np.ndarray, edge: float = TAIL_STATE_EDGE) -> np.ndarray:
    """``mfaci``: DtACI run apart in each :func:`tail_state` (a Mondrian split by the previous minute).

    Minute-level tail moves come in runs that keep their direction (a sell-off minute is followed by
    another more often than by a rally), so one recursion for every minute, driven to the right
    overall rate, still breaches too often right after a breach: Christoffersen's independence
    fails. Each state's recursion sees only the minutes of its state, in time order, and issues the
    level of minute ``p`` from its state's minutes before ``p``; the state of ``p`` is known at
    ``p - 1``. Every state is then driven to the target rate on its own.
    """
    u = np.asarray(pit, dtype=float)
    out = np.empty((u.size, _LEVELS.size))
    state = tail_state(u, edge)
    for k in range(3):
        idx = np.flatnonzero(state == k)
        if idx.size:
            out[idx] = _recursion_levels(u[idx], "faci", None)
    return out


def working_levels(
    pit: np.ndarray, method: str, gamma: np.ndarray | None = None, warmup: int = 0
) -> np.ndarray:
    """Per minute (rows, in time order) and schema level, the level issued BEFORE that minute.

    Parameters
    ----------
    pit : np.ndarray
        ``F(r_p / sqrt(v_p))`` of each minute: ``warmup`` training minutes, then the hold-out.
    method : str
        ``none``, ``aci``, ``faci``, ``caci`` or ``mfaci`` (:func:`state_faci_levels`).
    gamma : np.ndarray | None
        ACI step per level (default :func:`aci_steps`; ``aci`` and ``caci``).
    warmup : int
        Leading rows that only warm the recursions up (not returned).

    Returns
    -------
    np.ndarray
        Shape ``(n - warmup, len(QUANTILES))``: quantile levels (lower levels as ``a``, upper as
        ``1 - a``).
    """
    if method not in MINUTE_CALIBRATIONS:
        raise ConfigError(f"calibration must be one of {list(MINUTE_CALIBRATIONS)}; got {method!r}")
    u = np.asarray(pit, dtype=float)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup <= u.size:
        raise ConfigError(f"warmup must be a whole number in [0, {u.size}]; got {warmup!r}")
    if method == "none":
        return np.broadcast_to(_LEVELS, (u.size - warmup, _LEVELS.size)).copy()
    a = state_faci_levels(u) if method == "mfaci" else _recursion_levels(u, method, gamma)
    return np.where(_LOWER[None, :], a, 1.0 - a)[warmup:]


def variant_quantiles(sd: np.ndarray, family: Any, levels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Quantile grid ``(n, 9)``, ``var95``, ``var99``, ``es975`` and the ES level of each row.

    ``levels`` ``(n, 9)`` are the working levels of a calibrated path (None: the nominal ones).
    """
    sd = np.asarray(sd, dtype=float)
    if levels is None:
        q = sd[:, None] * _family_ppf(family, _LEVELS)[None, :]
        es_level = np.full(sd.size, ES_ALPHA)
        es = sd * family_standard_es(family, ES_ALPHA)
    else:
        q = np.sort(sd[:, None] * _family_ppf(family, levels.ravel()).reshape(levels.shape), axis=1)
        es_level = levels[:, _ES_COL]
        uniq, inv = np.unique(np.round(es_level, 12), return_inverse=True)
        es = sd * np.array([family_standard_es(family, float(a)) for a in uniq])[inv]
    return {
        "q": q,
        "var95": q[:, QUANTILES.index(VAR_LEVELS["var95"])],
        "var99": q[:, QUANTILES.index(VAR_LEVELS["var99"])],
        "es975": np.minimum(es, q[:, _ES_COL]),
        "es_level": es_level,
    }


def variant_frame(
    ts: pl.Series, ret: np.ndarray, var: np.ndarray, out: dict[str, np.ndarray]
) -> pl.DataFrame:
    """One variant's hold-out rows: ``ts``, ``ret``, ``variance``, ``q01``..``q99``, VaR and ES."""
    cols: dict[str, Any] = {"ts": ts, "ret": ret, "variance": var}
    cols |= {c: out["q"][:, j] for j, c in enumerate(QUANTILE_COLUMNS)}
    cols |= {k: out[k] for k in ("var95", "var99", "es975")}
    return pl.DataFrame(cols)


def _es_quantile_fn(sd: np.ndarray, family: Any, es_level: np.ndarray) -> Callable[..., np.ndarray]:
    """``Q(u, rows)`` of the lower 2.5% tail: the family's tail below its ``es_level`` quantile."""

    def qfn(u: np.ndarray, rows: np.ndarray) -> np.ndarray:
        level = np.clip(u * es_level[rows] / ES_ALPHA, LEVEL_FLOOR, 1.0 - LEVEL_FLOOR)
        return sd[rows] * _family_ppf(family, level)

    return qfn


def score_variant(
    ret: np.ndarray, sd: np.ndarray, family: Any, out: dict[str, np.ndarray], n_sims: int, seed: int
) -> dict[str, Any]:
    """Breaches, Kupiec, Christoffersen (ind, CC) at 95/99, ES 97.5 Z2, coverage and reliability.

    ``qlike`` is ``mean(r^2 / v + ln v)`` of the variance path (QLIKE less a constant that is the
    same for every model of one run; lower is better).
    """
    r = np.asarray(ret, dtype=float)
    var = np.asarray(sd, dtype=float) ** 2
    row: dict[str, Any] = {"n": int(r.size), "qlike": float(np.mean(r**2 / var + np.log(var)))}
    for name, p in VAR_LEVELS.items():
        row |= var_level_stats(name, (r < out[name]).astype(int), p, PASS_LEVEL)
    z2 = es_backtest(
        r, out["q"][:, _ES_COL], out["es975"], ES_ALPHA,
        _es_quantile_fn(sd, family, out["es_level"]), n_sims=n_sims, seed=seed,
    )  # fmt: skip
    row |= {"es975_mean": z2.detail["mean_es"], "es975_z2": z2.statistic, "es975_p": z2.pvalue}
    row |= interval_scores(r, {lvl: out["q"][:, j] for j, lvl in enumerate(QUANTILES)})
    row["reliability"] = {f"{lvl:g}": float(np.mean(r < out["q"][:, j])) for j, lvl in enumerate(QUANTILES)}
    return row
