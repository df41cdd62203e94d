"""Risk backtests over stress windows, and the reliability of every quantile level.

Stress windows (:data:`STRESS_WINDOWS`): the 2008 financial crisis (calendar 2008) and the COVID crash
(March 2020). Each is backtested on its own, over the scored rows whose target lies inside it, with
the same tests as the whole test window (:func:`tasks.risk.risk_backtest`); a window where an asset
has fewer than ``min_rows`` scored targets is left out for that asset. A window of a few weeks has
little power at 99% (21 sessions expect 0.2 breaches), so these tables show how a model behaves when
volatility jumps, and a pass there is weak evidence.

Reliability (:func:`reliability`): for each predicted quantile level tau, the share of realized
returns at or below the predicted tau quantile, per model across assets; a calibrated model lies on
the diagonal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import polars as pl

from core.schema import QUANTILES, quantile_column
from tasks.risk import RISK_COLUMNS, risk_backtest

#: Name -> (first, last) target date of each stress window.
STRESS_WINDOWS: dict[str, tuple[date, date]] = {
    "2008 crisis": (date(2008, 1, 1), date(2008, 12, 31)),
    "March 2020": (date(2020, 3, 1), date(2020, 3, 31)),
}
#: Fewest scored targets of an asset inside a window for it to be backtested there.
MIN_STRESS_ROWS = 15


def stress_backtests(
    frame: pl.DataFrame,
    windows: Mapping[str, tuple[date, date]] = STRESS_WINDOWS,
    min_rows: int = MIN_STRESS_ROWS,
    n_sims: int = 500,
) -> pl.DataFrame:
    """:data:`tasks.risk.RISK_COLUMNS` per (window, model, symbol) over each window that has data.

    Parameters
    ----------
    frame : pl.DataFrame
        Scored rows with ``ret`` (raw models and calibrated twins).
    windows : Mapping[str, tuple[date, date]]
        Name -> (first, last) target date.
    min_rows : int
        Fewest rows of a (model, symbol) inside a window.
    n_sims : int
        Simulations of each ES test.
    """
    parts = []
    for name, (lo, hi) in windows.items():
        inside = frame.filter(pl.col("target").is_between(lo, hi))
        counts = inside.group_by("model", "symbol").len().filter(pl.col("len") >= min_rows)
        inside = inside.join(counts.select("model", "symbol"), on=["model", "symbol"], how="semi")
        if inside.height:
            risk = risk_backtest(inside, n_sims=n_sims)
            parts.append(risk.select(pl.lit(name).alias("window"), pl.all()))
    if not parts:
        return pl.DataFrame(schema={"window": pl.String(), **RISK_COLUMNS})
    return pl.concat(parts, how="vertical")


def reliability(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (model, level): ``observed`` share of returns at or below the predicted quantile, and ``n``.

    Rows with a missing return or quantile are left out of that level.
    """
    rows = []
    for (model,), part in frame.group_by(["model"], maintain_order=True):
        ret = part["ret"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        for level in QUANTILES:
            q = part[quantile_column(level)].cast(pl.Float64).fill_null(np.nan).to_numpy()
            ok = np.isfinite(ret) & np.isfinite(q)
            observed = float(np.mean(ret[ok] <= q[ok])) if ok.any() else None
            rows.append({"model": model, "level": level, "observed": observed, "n": int(ok.sum())})
    schema = {"model": pl.String(), "level": pl.Float64(), "observed": pl.Float64(), "n": pl.Int64()}
    return pl.DataFrame(rows, schema=schema).sort("model", "level")
