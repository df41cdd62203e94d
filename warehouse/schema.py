"""Frame schemas shared by the warehouse and the stage code."""

from __future__ import annotations

import polars as pl

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
    "rv": pl.Float64(),
    "bv": pl.Float64(),
    "rk_parzen": pl.Float64(),
    "medrv": pl.Float64(),
    "ret": pl.Float64(),
    "close_price": pl.Float64(),
    "nobs": pl.Int64(),
    "extra": pl.String(),
}

INTERVALS = ("1m", "5m", "15m", "30m", "1h", "1d")


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
