"""Walk-forward folds and cross-validation, in memory.

Time rules (DESIGN.md): folds are chronological, expanding or rolling. Fold ``k`` scores the targets of
a block of ``refit_every`` sessions; its model is fitted on sessions ``<= train_end``, where ``train_end``
lies ``embargo`` sessions (at least the horizon) before the block's first target. A random split is
not offered. :func:`cross_validate` is the one fit-then-forecast loop: the fold tasks of
``flows/steps/evaluate.py`` run it one fold at a time, and the ensemble runs it for its own
out-of-fold rows.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

import polars as pl

from core.errors import ConfigError, DataError
from tasks.models.base import Forecaster, ModelData

WindowKind = Literal["expanding", "rolling"]


# ------------------------------------------------------------------------------------------ folds
@dataclass(frozen=True)
class Fold:
    """One walk-forward fold of one symbol.

    Attributes
    ----------
    fold : int
        Fold number, 0 first.
    train_start : date
        First training session.
    train_end : date
        Last training session (its target included).
    origins : tuple[date, ...]
        Forecast origins; their targets are the fold's test sessions.
    targets : tuple[date, ...]
        The test sessions (origin + horizon sessions).
    """

    fold: int
    train_start: date
    train_end: date
    origins: tuple[date, ...]
    targets: tuple[date, ...]


def check_fold_settings(
    refit_every: int,
    horizon: int,
    embargo: int | None,
    window: WindowKind,
    train_size: int | None,
    min_train: int,
) -> int:
    """Validate walk-forward settings (see :func:`walk_forward_folds`); return the embargo in sessions."""
    for name, value in (("refit_every", refit_every), ("horizon", horizon), ("min_train", min_train)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}")
    gap = horizon + 1 if embargo is None else embargo
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < horizon:
        raise ConfigError(f"embargo must be an integer >= horizon ({horizon}); got {embargo!r}")
    if window not in ("expanding", "rolling"):
        raise ConfigError(
            f"window must be 'expanding' or 'rolling'; got {window!r} (a random split is not offered)"
        )
    if window == "rolling" and (train_size is None or train_size < min_train):
        raise ConfigError(f"a rolling window needs train_size >= min_train ({min_train}); got {train_size!r}")
    return gap


def walk_forward_folds(
    sessions: Sequence[date],
    test_start: date,
    test_end: date,
    *,
    refit_every: int = 63,
    horizon: int = 1,
    embargo: int | None = None,
    window: WindowKind = "expanding",
    train_size: int | None = None,
    min_train: int = 250,
) -> list[Fold]:
    """Chronological folds over the test sessions in ``[test_start, test_end]``.

    Parameters
    ----------
    sessions : Sequence[date]
        The symbol's sorted, distinct sessions.
    test_start, test_end : date
        The test window: targets are the sessions inside it.
    refit_every : int
        Sessions per fold (the model is refitted at each fold).
    horizon : int
        Target = origin + ``horizon`` sessions.
    embargo : int | None
        Sessions between ``train_end`` and the fold's first target; at least ``horizon``; default
        ``horizon + 1`` (one session of safety beyond the minimum).
    window : {"expanding", "rolling"}
        Expanding from the first session, or the last ``train_size`` sessions.
    train_size : int | None
        Rolling window length (required for ``"rolling"``).
    min_train : int
        Fewest training sessions a fold needs; earlier test sessions are dropped.

    Returns
    -------
    list[Fold]
        Empty when no test session has enough history.
    """
    gap = check_fold_settings(refit_every, horizon, embargo, window, train_size, min_train)
    if test_start > test_end:
        raise ConfigError(f"test_start {test_start} is after test_end {test_end}")
    days = list(sessions)
    if any(b <= a for a, b in zip(days, days[1:], strict=False)):
        raise DataError("sessions must be sorted and distinct")
    first_target = max(min_train - 1 + gap, horizon)
    test_idx = [i for i, d in enumerate(days) if test_start <= d <= test_end and i >= first_target]
    folds: list[Fold] = []
    for k, lo in enumerate(range(0, len(test_idx), refit_every)):
        block = test_idx[lo : lo + refit_every]
        end_i = block[0] - gap
        start_i = 0 if window == "expanding" else max(0, end_i - int(train_size or 0) + 1)
        folds.append(
            Fold(
                fold=k,
                train_start=days[start_i],
                train_end=days[end_i],
                origins=tuple(days[i - horizon] for i in block),
                targets=tuple(days[i] for i in block),
            )
        )
    return folds


# ------------------------------------------------------------------------------------------ panel folds
@dataclass(frozen=True)
class PanelFold:
    """One walk-forward fold of a pooled model: one fit serves every member of a panel.

    Attributes
    ----------
    fold : int
        Fold number on the panel's date axis, 0 first.
    train_start, train_end : date
        The fit sees every member's sessions in ``[train_start, train_end]``.
    origins : dict[str, tuple[date, ...]]
        Each member's forecast origins (members without a target in the fold are absent).
    """

    fold: int
    train_start: date
    train_end: date
    origins: dict[str, tuple[date, ...]]


def _member_pairs(
    days: Sequence[date], lo: date, hi: date, horizon: int, first_target: int
) -> list[tuple[date, date]]:
    """(origin, target) pairs of one member: its targets in ``[lo, hi]`` with enough history."""
    return [(days[i - horizon], d) for i, d in enumerate(days) if lo <= d <= hi and i >= first_target]


def _panel_train_start(
    sessions: Mapping[str, Sequence[date]], train_end: date, window: WindowKind, train_size: int | None
) -> date:
    """Expanding: the panel's first session; rolling: the earliest member's ``train_size``-th
    session back from ``train_end``, so every member gets at least ``train_size`` of its own."""
    firsts = []
    for days in sessions.values():
        before = [d for d in days if d <= train_end]
        if before:
            k = 0 if window == "expanding" else max(0, len(before) - int(train_size or 0))
            firsts.append(before[k])
    return min(firsts) if firsts else train_end


def panel_walk_forward(
    sessions: Mapping[str, Sequence[date]],
    windows: Mapping[str, tuple[date, date]],
    *,
    refit_every: int = 63,
    horizon: int = 1,
    embargo: int | None = None,
    window: WindowKind = "expanding",
    train_size: int | None = None,
    min_train: int = 250,
) -> list[PanelFold]:
    """Chronological folds of a panel on the union of its members' session dates.

    Each member's targets are chosen as :func:`walk_forward_folds` chooses them (its sessions in its
    own test window, with ``min_train - 1 + embargo`` of its sessions before). The panel's target
    dates (the union) go in blocks of ``refit_every``; a block's ``train_end`` is the panel date
    ``embargo`` dates before its first target, the same for every member: each fit's training data
    ends before the block's first target for EVERY member, so the walk-forward stays time-ordered
    across the whole panel. A member joins a block only once it has ``min_train`` of its own sessions
    up to that ``train_end``, as in its own walk-forward (a block that starts on an older member's
    target would otherwise train a younger one on fewer). Arguments are those of
    :func:`walk_forward_folds`, per member.
    """
    gap = check_fold_settings(refit_every, horizon, embargo, window, train_size, min_train)
    first_target = max(min_train - 1 + gap, horizon)
    pairs = {
        s: _member_pairs(list(sessions[s]), lo, hi, horizon, first_target) for s, (lo, hi) in windows.items()
    }
    axis = sorted({d for days in sessions.values() for d in days})
    targets = sorted({t for ps in pairs.values() for _, t in ps})
    index = {d: i for i, d in enumerate(axis)}
    folds: list[PanelFold] = []
    for lo in range(0, len(targets), refit_every):
        block = targets[lo : lo + refit_every]
        end_i = index[block[0]] - gap
        if end_i < 0:
            continue
        train_end = axis[end_i]
        grown = {s for s in pairs if bisect_right(sessions[s], train_end) >= min_train}
        origins = {
            s: tuple(o for o, t in ps if block[0] <= t <= block[-1]) for s, ps in pairs.items() if s in grown
        }
        start = _panel_train_start(sessions, train_end, window, train_size)
        folds.append(PanelFold(len(folds), start, train_end, {s: o for s, o in origins.items() if o}))
    return folds


# ------------------------------------------------------------------------------------------ fitting
def fold_training_data(data: ModelData, fold: Fold) -> ModelData:
    """``data`` cut to the fold's training window: sessions in ``[train_start, train_end]``."""
    train = data.upto(fold.train_end)
    return replace(train, features=train.features.filter(pl.col("session_date") >= fold.train_start))


def fit_predict(model: Forecaster, data: ModelData, fold: Fold, horizon: int = 1) -> pl.DataFrame:
    """Fit ``model`` on the fold's training window and forecast its origins.

    The forecasts see data up to the fold's last origin only, so nothing after it can leak in.
    """
    model.fit(fold_training_data(data, fold), fold.train_end)
    return model.predict(data.upto(fold.origins[-1]), list(fold.origins), horizon=horizon)


def cross_validate(
    model: Callable[[], Forecaster], data: ModelData, folds: Sequence[Fold], horizon: int = 1
) -> pl.DataFrame:
    """Out-of-fold forecasts of a fresh ``model()`` per fold, stacked in fold order.

    Parameters
    ----------
    model : Callable[[], Forecaster]
        Builds an unfitted forecaster (called once per fold, so no fold sees another's fit).
    data : ModelData
        Everything the model may read; each fold cuts it to its own window.
    folds : Sequence[Fold]
        From :func:`walk_forward_folds`.
    horizon : int
        Forecast horizon in sessions.

    Returns
    -------
    pl.DataFrame
        Predictions in :data:`core.schema.PREDICTION_SCHEMA` (empty folds contribute nothing).
    """
    frames = [fit_predict(model(), data, fold, horizon) for fold in folds]
    if not frames:
        raise DataError("cross_validate needs at least one fold")
    return pl.concat(frames, how="vertical_relaxed")
