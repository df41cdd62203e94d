"""Partition windows and labels: UTC instants from text, half-open windows, partition names."""

from __future__ import annotations

from datetime import UTC, date, datetime

from core.errors import ConfigError


def parse_utc(value: datetime | date | str, name: str) -> datetime:
    """Read a UTC instant from a datetime, a date or ISO text (naive means UTC).

    Raises
    ------
    ConfigError
        Naming the parameter when the value cannot be read.
    """
    if isinstance(value, datetime):
        out = value
    elif isinstance(value, date):
        out = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            out = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"invalid {name} {value!r}: expected an ISO date or datetime such as '2020-01-01' "
                "or '2020-01-01T00:00:00Z'"
            ) from None
    else:
        raise ConfigError(f"invalid {name} {value!r}: expected a date, datetime or ISO text")
    return out.replace(tzinfo=UTC) if out.tzinfo is None else out.astimezone(UTC)


def parse_window(start: datetime | date | str, end: datetime | date | str) -> tuple[datetime, datetime]:
    """Parse a half-open UTC window ``[start, end)``; raises ConfigError unless ``start < end``."""
    lo, hi = parse_utc(start, "start"), parse_utc(end, "end")
    if not lo < hi:
        raise ConfigError(f"invalid window: start {lo.isoformat()} must be before end {hi.isoformat()}")
    return lo, hi


def _fmt(ts: datetime) -> str:
    return ts.date().isoformat() if ts.time() == datetime.min.time() else ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def partition_label(symbol: str, interval: str, start: datetime, end: datetime) -> str:
    """``"BTC-USDT/1h/2020-01-01..2020-02-01"`` (times shown only when not midnight UTC)."""
    return f"{symbol}/{interval}/{_fmt(start.astimezone(UTC))}..{_fmt(end.astimezone(UTC))}"


def features_partition_label(symbol: str, version: str, start: datetime, end: datetime) -> str:
    """``"BTC-USDT/v1/2020-01-01..2021-01-01"``: a daily-features partition (UTC window)."""
    return f"{symbol}/{version}/{_fmt(start)}..{_fmt(end)}"
