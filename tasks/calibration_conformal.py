"""Adaptive conformal inference on tail probabilities: ACI and its no-tuning version (DtACI/FACI).

Notation
--------
A quantile at schema level ``tau`` is calibrated as a one-sided set with target miscoverage ``a``:
``a = tau`` for a lower level (``tau <= 0.5``; a miss is ``r < Q(a_t)``), ``a = 1 - tau`` for an
upper one (a miss is ``r > Q(1 - a_t)``). With ``u = F(r)`` the probability integral transform of
the realized return under the raw forecast (:func:`tasks.calibration_grid.grid_cdf`), the miss is
``beta < a_t`` where ``beta = u`` (lower) or ``1 - u`` (upper). So a whole recursion runs on the
``beta`` of each realized target and never needs a return again.

ACI (Gibbs & Candes 2021, eq. 2)
    ``a_{t+1} = a_t + gamma (a - err_t)``, ``err_t = 1{beta_t < a_t}``, ``a_1 = a``. Summed, it gives
    the exact identity ``mean(err) = a - (a_{T+1} - a_1) / (gamma T)``: the long-run breach rate is
    within ``(max(a, 1 - a) + gamma) / (gamma T)`` of ``a`` whatever the data. A quantile can only be
    issued at a level inside (0, 1), so the calibration layer judges a miss at the level clipped to
    ``[floor, 1 - floor]`` (``floor``): ``err`` then counts the breaches really issued, and the identity
    holds for them (the paper's ``a_t <= 0`` would be an infinite VaR that is never breached).
DtACI / FACI (Gibbs & Candes 2022, "Conformal inference for online prediction with arbitrary
distribution shifts", Algorithm 1)
    ``k`` ACI experts with step sizes ``gammas`` run side by side; their levels are averaged with
    exponential weights on the pinball loss ``l(beta, theta) = a (beta - theta) - min(0, beta - theta)``,
    learning rate ``eta = sqrt(3 / I) sqrt((log(k I) + 2) / ((1 - a)^2 a^3 + a^2 (1 - a)^3))`` and
    mixing ``sigma = 1 / (2 I)``, the paper's choices for an interval length ``I``: nothing to tune.

Delayed feedback
----------------
Events (realized targets) are processed in target order; ``issued_at[m]`` is the number of events
that were known when event ``m``'s row was issued (its origin), so its miss is judged against the
level issued THEN (``state[issued_at[m]]``), which is the paper's recursion when every target is
known at the next origin (``issued_at[m] == m``).

Pure numpy.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import ConfigError

#: Step sizes of the DtACI experts (the grid of Gibbs & Candes 2022, section 4).
FACI_GAMMAS: tuple[float, ...] = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128)
#: Interval length ``I`` that sets DtACI's learning and mixing rates (the paper's 500).
FACI_INTERVAL = 500


def _issued(m: int, issued_at: np.ndarray | None) -> np.ndarray:
    if issued_at is None:
        return np.arange(m)
    idx = np.asarray(issued_at, dtype=np.int64)
    if idx.shape != (m,) or np.any(idx < 0) or np.any(idx > np.arange(m)):
        raise ConfigError("issued_at[m] must be an integer in [0, m] for every event m")
    return idx


def aci_recursion(
    beta: np.ndarray,
    a: np.ndarray,
    gamma: np.ndarray,
    issued_at: np.ndarray | None = None,
    floor: float = 0.0,
) -> np.ndarray:
    """Working miscoverage levels of ACI after each event, for every level at once.

    Parameters
    ----------
    beta : np.ndarray
        Shape ``(M, L)``: per event (in target order) and level, the tail probability of the
        realized return (``beta < a_t`` is a miss).
    a : np.ndarray
        Target miscoverage per level, shape ``(L,)``.
    gamma : np.ndarray
        Step size per level, shape ``(L,)`` (or a scalar).
    issued_at : np.ndarray | None
        Per event, the state index its row was issued with (default ``arange(M)``: no delay).
    floor : float
        A miss is judged at the level clipped to ``[floor, 1 - floor]``, the level whose quantile was
        really issued (0: the paper's ``a_t <= 0`` never misses).

    Returns
    -------
    np.ndarray
        Shape ``(M + 1, L)``: ``state[0] = a``, ``state[m + 1]`` after event ``m``.
    """
    b = np.atleast_2d(np.asarray(beta, dtype=float))
    a = np.asarray(a, dtype=float)
    g = np.broadcast_to(np.asarray(gamma, dtype=float), a.shape)
    m_events = b.shape[0]
    issued = _issued(m_events, issued_at)
    state = np.empty((m_events + 1, a.size))
    state[0] = a
    for m in range(m_events):
        err = (b[m] < np.clip(state[issued[m]], floor, 1.0 - floor)).astype(float)
        state[m + 1] = state[m] + g * (a - err)
    return state


def faci_rates(a: np.ndarray, k: int, interval: int = FACI_INTERVAL) -> tuple[np.ndarray, float]:
    """DtACI's learning rate ``eta`` per level and mixing rate ``sigma`` (Gibbs & Candes 2022)."""
    a = np.asarray(a, dtype=float)
    denom = (1 - a) ** 2 * a**3 + a**2 * (1 - a) ** 3
    eta = math.sqrt(3.0 / interval) * np.sqrt((math.log(k * interval) + 2.0) / denom)
    return eta, 1.0 / (2.0 * interval)


def _pinball(beta: np.ndarray, theta: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``a (beta - theta) - min(0, beta - theta)``, broadcast over ``(L, k)``."""
    d = beta - theta
    return a * d - np.minimum(0.0, d)


def faci_recursion(
    beta: np.ndarray,
    a: np.ndarray,
    gammas: tuple[float, ...] = FACI_GAMMAS,
    interval: int = FACI_INTERVAL,
    issued_at: np.ndarray | None = None,
    floor: float = 0.0,
) -> np.ndarray:
    """Working miscoverage levels of DtACI (weighted ACI experts) after each event, per level.

    Parameters
    ----------
    beta, a, issued_at, floor
        As for :func:`aci_recursion`.
    gammas : tuple[float, ...]
        The experts' step sizes.
    interval : int
        The interval length ``I`` of the learning and mixing rates.

    Returns
    -------
    np.ndarray
        Shape ``(M + 1, L)``: the weight-averaged expert level issued after each event.
    """
    b = np.atleast_2d(np.asarray(beta, dtype=float))
    a = np.asarray(a, dtype=float)
    g = np.asarray(gammas, dtype=float)
    if g.ndim != 1 or g.size == 0 or np.any(~(g > 0)):
        raise ConfigError(f"gammas must be positive step sizes; got {gammas!r}")
    m_events, k = b.shape[0], g.size
    issued = _issued(m_events, issued_at)
    eta, sigma = faci_rates(a, k, interval)
    experts = np.empty((m_events + 1, a.size, k))
    experts[0] = a[:, None]
    w = np.ones((a.size, k))
    out = np.empty((m_events + 1, a.size))
    out[0] = a
    for m in range(m_events):
        theta = experts[issued[m]]
        beta_m = b[m][:, None]
        loss = _pinball(beta_m, theta, a[:, None])
        w_bar = w * np.exp(-eta[:, None] * (loss - loss.min(axis=1, keepdims=True)))
        total = w_bar.sum(axis=1, keepdims=True)
        w = (1.0 - sigma) * w_bar + total * sigma / k
        w = w / w.sum(axis=1, keepdims=True)
        err = (beta_m < np.clip(theta, floor, 1.0 - floor)).astype(float)
        experts[m + 1] = experts[m] + g[None, :] * (a[:, None] - err)
        out[m + 1] = np.sum(w * experts[m + 1], axis=1)
    return out


def conditional_aci_levels(
    beta: np.ndarray, a: np.ndarray, gamma: np.ndarray, floor: float = 0.0
) -> np.ndarray:
    """Issued miscoverage levels of ACI run separately after a miss and after a hit, per level.

    A Mondrian (group-conditional) version of :func:`aci_recursion` for events that arrive one per
    step with no delay: each level keeps two ACI states, one used when the previous event missed that
    level and one when it did not, and an event updates only the state it was issued with. Both
    groups are then driven to the target rate, so a miss is no more likely right after a miss than
    after a hit: the first-order dependence Christoffersen's independence test looks for. The group
    of event ``m`` is known before ``m`` (it is event ``m - 1``'s miss), so nothing at or after ``m``
    enters its level.

    Parameters
    ----------
    beta : np.ndarray
        Shape ``(M, L)``: per event and level, the tail probability of the realized return.
    a : np.ndarray
        Target miscoverage per level, shape ``(L,)``.
    gamma : np.ndarray
        Step size per level, shape ``(L,)`` (or a scalar).
    floor : float
        Levels are issued, and misses judged, clipped to ``[floor, 1 - floor]``.

    Returns
    -------
    np.ndarray
        Shape ``(M, L)``: the level issued for each event.
    """
    b = np.atleast_2d(np.asarray(beta, dtype=float))
    a = np.asarray(a, dtype=float)
    g = np.broadcast_to(np.asarray(gamma, dtype=float), a.shape)
    cols = np.arange(a.size)
    state = np.vstack([a, a])  # row 0: after a hit, row 1: after a miss
    issued = np.empty_like(b)
    group = np.zeros(a.size, dtype=np.int64)
    for m in range(b.shape[0]):
        level = np.clip(state[group, cols], floor, 1.0 - floor)
        issued[m] = level
        miss = b[m] < level
        state[group, cols] += g * (a - miss)
        group = miss.astype(np.int64)
    return issued
