"""LHAR: HAR-RV on log realized variance plus the leverage effect (Corsi & Renò 2012).

Model, for origin session ``t`` and horizon ``h``::

    log RV(t+h) = b0 + bd log rv_d(t) + bw log rv_w(t) + bm log rv_m(t)
                  + gd r-(t) + gw r-_w(t) + gm r-_m(t) + e

with ``r-(t) = min(r(t), 0)`` the negative part of session ``t``'s return (``ret_cc``, or ``ret_oc``
where that is null: :func:`tasks.models.frames.daily_returns`). The weekly and monthly terms come in
two forms (``leverage``):

- ``"aggregate"`` (default): ``r-_w = min(mean of r over the last 5 sessions, 0)`` and the same over
  22: the negative part of the aggregated return, a week that fell overall whatever its single days
  did (our reading of Corsi & Renò's heterogeneous leverage).
- ``"daily"``: the means of ``r-`` over the last 5 and 22 sessions: every falling day counts, however
  the week ended (what R's ``highfrequency::HARmodel(leverage = c(1, 5, 22))`` fits).

The paper itself could not be consulted offline to settle which form it uses; both are here, and the
default was chosen on the development panel (README, Evaluation).
The means ending at ``t`` follow :func:`tasks.models.har_linear.rolling_mean` (the same cover rule as
the HAR means). A fall in price raises future volatility more than a rise of the same size, so the
``g`` are negative; equity indices show it most (Corsi & Renò 2012, Table 3 on the S&P 500).
Estimation, the log-normal bias correction and ``window`` are those of :class:`tasks.models.har.Har`.
Training needs every session's return (a missing one raises ``DataError`` naming the session, as for
every variance model); at prediction a missing return counts as no move (0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl

from core.errors import ConfigError
from tasks.models.base import register
from tasks.models.har import Har, har_design
from tasks.models.har_linear import rolling_mean
from tasks.models.variance import MeanMode

#: Session windows of the weekly and monthly leverage means.
WEEK, MONTH = 5, 22


#: Forms of the weekly and monthly leverage terms (module docstring).
LEVERAGE_FORMS: tuple[str, ...] = ("aggregate", "daily")


def _negative(x: np.ndarray) -> np.ndarray:
    """``min(x, 0)``, NaN kept."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(x), np.nan, np.minimum(x, 0.0))


def leverage_terms(ret: np.ndarray, fill: bool, form: str = "aggregate") -> np.ndarray:
    """``[r-, r-_w, r-_m]`` per row (NaN where a training row lacks them; 0 fills at prediction)."""
    r = np.asarray(ret, dtype=float)
    if fill:
        r = np.nan_to_num(r, nan=0.0)
    neg = _negative(r)
    if form == "daily":
        return np.column_stack([neg, rolling_mean(neg, WEEK, fill), rolling_mean(neg, MONTH, fill)])
    week, month = rolling_mean(r, WEEK, fill), rolling_mean(r, MONTH, fill)
    return np.column_stack([neg, _negative(week), _negative(month)])


@register("lhar")
class LHar(Har):
    """HAR-RV plus the daily, weekly and monthly negative returns (see the module docstring).

    Parameters
    ----------
    leverage : {"aggregate", "daily"}
        Form of the weekly and monthly terms; the other parameters are :class:`Har`'s.
    """

    name = "lhar"
    required_inputs: ClassVar[tuple[str, ...]] = ("ret_cc",)

    def __init__(
        self,
        leverage: str = "aggregate",
        window: int | None = None,
        family: str | None = None,
        mean: MeanMode = "zero",
        var_scale: str | float = "fit",
        calendar: str | Mapping[str, str] | None = None,
    ) -> None:
        if leverage not in LEVERAGE_FORMS:
            raise ConfigError(f"leverage must be one of {list(LEVERAGE_FORMS)}; got {leverage!r}")
        super().__init__(window=window, family=family, mean=mean, var_scale=var_scale, calendar=calendar)
        self.leverage = leverage

    def _settings(self) -> dict[str, Any]:
        return super()._settings() | {"leverage": self.leverage}

    def _design(self, frame: pl.DataFrame, ret: np.ndarray, fill: bool) -> np.ndarray:
        return np.column_stack(
            [har_design(frame, self.jumps, fill), leverage_terms(ret, fill, self.leverage)]
        )
