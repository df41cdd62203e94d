"""LHAR: HAR-RV on log realized variance plus the leverage effect (Corsi & Renò 2012).

Model, for origin session ``t`` and horizon ``h``::

    log RV(t+h) = b0 + bd log rv_d(t) + bw log rv_w(t) + bm log rv_m(t)
                  + gd r-(t) + gw r-_w(t) + gm r-_m(t) + e

with ``r-(t) = min(r(t), 0)`` the negative part of session ``t``'s return (``ret_cc``, or ``ret_oc``
where that is null: :func:`tasks.models.frames.daily_returns`) and ``r-_w``, ``r-_m`` its means over
the last 5 and 22 sessions ending at ``t`` (:func:`tasks.models.har_linear.rolling_mean`, the same
cover rule as the HAR means). A fall in price raises future volatility more than a rise of the same
size, so the ``g`` are negative; equity indices show it most (Corsi & Renò 2012, Table 3 on the
S&P 500). Estimation, the log-normal bias correction and ``window`` are those of
:class:`tasks.models.har.Har`. A session with no return enters training only through the rows whose
inputs are all present; at prediction a missing return counts as no fall (0).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl

from tasks.models.base import register
from tasks.models.har import Har, har_design
from tasks.models.har_linear import rolling_mean

#: Session windows of the weekly and monthly leverage means.
WEEK, MONTH = 5, 22


def leverage_terms(ret: np.ndarray, fill: bool) -> np.ndarray:
    """``[r-, r-_w, r-_m]`` per row (NaN where a training row lacks them; 0 fills at prediction)."""
    r = np.asarray(ret, dtype=float)
    if fill:
        r = np.nan_to_num(r, nan=0.0)
    with np.errstate(invalid="ignore"):
        neg = np.where(np.isnan(r), np.nan, np.minimum(r, 0.0))
    return np.column_stack([neg, rolling_mean(neg, WEEK, fill), rolling_mean(neg, MONTH, fill)])


@register("lhar")
class LHar(Har):
    """HAR-RV plus the daily, weekly and monthly negative returns (see the module docstring)."""

    name = "lhar"
    required_inputs: ClassVar[tuple[str, ...]] = ("ret_cc",)

    def _design(self, frame: pl.DataFrame, ret: np.ndarray, fill: bool) -> np.ndarray:
        return np.column_stack([har_design(frame, self.jumps, fill), leverage_terms(ret, fill)])
