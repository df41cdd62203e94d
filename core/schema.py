"""Frame schemas shared by the warehouse and the stage code."""

from __future__ import annotations

import polars as pl

from core.errors import ConfigError

UTC_TS = pl.Datetime("us", "UTC")

#: Normalized bars, as every source emits them: UTC, stamped at bar start.
BAR_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "interval": pl.String(),
    "ts": UTC_TS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "source": pl.String(),
}
BAR_KEY = ("symbol", "interval", "ts")
BAR_VALUES = ("open", "high", "low", "close", "volume", "source")

#: Rows set aside with a reason, never silently dropped.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "location": pl.String(),
    "reason": pl.String(),
    "raw": pl.String(),
}

#: Daily realized measures imported from a realized library (Oxford-Man layout or simple).
REALIZED_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "date": pl.Date(),
    "source": pl.String(),
    "rv": pl.Float64(),  # realized variance of the session, decimal (0.0001 = 1% daily volatility)
    "bv": pl.Float64(),  # bipower variation, same units
    "rq": pl.Float64(),  # realized quarticity, decimal variance squared
    "rs_pos": pl.Float64(),  # upside realized semivariance
    "rs_neg": pl.Float64(),  # downside realized semivariance
    "rk_parzen": pl.Float64(),  # realized kernel (Parzen)
    "medrv": pl.Float64(),
    "ret": pl.Float64(),  # close-to-close log return of the session
    "ret_oc": pl.Float64(),  # open-to-close log return
    "close_price": pl.Float64(),
    "nobs": pl.Int64(),
    "extra": pl.String(),
}

INTERVALS = ("1m", "5m", "15m", "30m", "1h", "1d")
#: The intraday ones (minute mode runs on any of them).
INTRADAY_INTERVALS = ("1m", "5m", "15m", "30m", "1h")

#: Bar length in seconds of every interval the warehouse stores.
INTERVAL_SECONDS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "1d": 86400,
}


def interval_seconds(interval: str) -> int:
    """Length of one bar of ``interval`` in seconds (raises ConfigError for an unknown interval)."""
    try:
        return INTERVAL_SECONDS[interval]
    except KeyError:
        raise ConfigError(
            f"unknown interval {interval!r}: expected one of {list(INTERVAL_SECONDS)}"
        ) from None


def empty_bars() -> pl.DataFrame:
    """A zero-row frame in :data:`BAR_SCHEMA`."""
    return pl.DataFrame(schema=BAR_SCHEMA)


def empty_quarantine() -> pl.DataFrame:
    """A zero-row frame in :data:`QUARANTINE_SCHEMA`."""
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def conform_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast ``frame`` to :data:`BAR_SCHEMA` (raises if a column is missing)."""
    missing = [c for c in BAR_SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"bars frame lacks columns {missing}; expected {list(BAR_SCHEMA)}")
    return frame.select([pl.col(c).cast(t) for c, t in BAR_SCHEMA.items()])


# ---------------------------------------------------------------------------------- daily features
#: Version of the feature definitions stored with every features_daily row.
FEATURE_SET_VERSION = "v1"

#: Columns and types of :func:`tasks.features.build_daily_features` output, in order.
DAILY_FEATURES_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "session_date": pl.Date(),
    "interval": pl.String(),
    "sampling_interval": pl.String(),
    "session_end": pl.Datetime("us", "UTC"),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "ret_cc": pl.Float64(),
    "ret_oc": pl.Float64(),
    "ret_overnight": pl.Float64(),
    "n_bars": pl.Int64(),
    "expected_bars": pl.Int64(),
    "coverage": pl.Float64(),
    "low_coverage": pl.Boolean(),
    "n_returns": pl.Int64(),
    "rv": pl.Float64(),
    "bv": pl.Float64(),
    "jv": pl.Float64(),
    "rq": pl.Float64(),
    "tq": pl.Float64(),
    "rs_pos": pl.Float64(),
    "rs_neg": pl.Float64(),
    "bns_z": pl.Float64(),
    "bns_p": pl.Float64(),
    "jump_count": pl.Int64(),
    "rv_d": pl.Float64(),
    "rv_w": pl.Float64(),
    "rv_m": pl.Float64(),
}

#: Columns and types of :func:`tasks.features.cross_asset_features` output, in order.
CROSS_ASSET_SCHEMA: dict[str, pl.DataType] = {
    "session_date": pl.Date(),
    "symbol_a": pl.String(),
    "symbol_b": pl.String(),
    "window": pl.Int64(),
    "corr_ret": pl.Float64(),
    "corr_logrv": pl.Float64(),
}


# ---------------------------------------------------------------------------------- data quality
#: Frame layout of ``dq_results`` (JSON columns travel as text).
DQ_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "suite": pl.String(),
    "partition": pl.String(),
    "expectation": pl.String(),
    "column_name": pl.String(),
    "severity": pl.String(),
    "success": pl.Boolean(),
    "observed_value": pl.String(),
    "unexpected_count": pl.Int64(),
    "element_count": pl.Int64(),
    "details": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
}


# ---------------------------------------------------------------------------------- predictions
#: Return quantile levels every model predicts.
QUANTILES: tuple[float, ...] = (0.01, 0.025, 0.05, 0.10, 0.50, 0.90, 0.95, 0.975, 0.99)


def quantile_column(level: float) -> str:
    """Column name of a quantile level: 0.01 -> ``q01``, 0.025 -> ``q025``, 0.5 -> ``q50``."""
    text = f"{level:.3f}".rstrip("0").split(".")[1]
    return "q" + (text if len(text) > 1 else text + "0")


QUANTILE_COLUMNS: tuple[str, ...] = tuple(quantile_column(q) for q in QUANTILES)

#: One row per (model, symbol, origin, horizon).
PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "symbol": pl.String(),
    "origin": pl.Date(),  # session t: everything used is known at its end
    "target": pl.Date(),  # session t + horizon
    "horizon": pl.Int32(),
    "variance": pl.Float64(),  # variance of the target session's return
    "rv": pl.Float64(),  # realized-variance forecast for the target session
    "mean": pl.Float64(),
    **{c: pl.Float64() for c in QUANTILE_COLUMNS},
    "family": pl.String(),  # gaussian | student_t | skew_t | fhs | quantile | calibrated
    "params": pl.String(),  # JSON: the family's fitted parameters
}


def empty_predictions() -> pl.DataFrame:
    """A zero-row frame in :data:`PREDICTION_SCHEMA`."""
    return pl.DataFrame(schema=PREDICTION_SCHEMA)
