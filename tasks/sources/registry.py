"""Every ingest source by name: vendor files, synthetic bars, Yahoo Finance and realized measures.

``SOURCES[name]`` is a :class:`~tasks.sources.base.Source`. The slow modules (scipy for synthetic
bars, pandas for Yahoo) load on first use, so planning an ingest stays quick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from core.errors import ConfigError
from core.hashing import content_hash
from core.schema import QUARANTINE_SCHEMA
from tasks.ingest import clip_to_range, month_windows, parse_file
from tasks.sources.base import Loaded, Partition, Source, SourceRequest
from tasks.sources.files import file_checksum
from tasks.sources.layouts import LAYOUTS, Layout, generic_from_params


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return datetime(value.year, value.month, value.day, tzinfo=UTC).isoformat()


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class FileSource:
    """Vendor files in one of :data:`~tasks.sources.layouts.LAYOUTS` (or a generic layout)."""

    name: str = "file"

    def plan(self, req: SourceRequest) -> list[Partition]:
        """One partition per file; one symbol for all files or one per file."""
        paths, formats = req.paths, req.formats
        if not paths:
            raise ConfigError("source 'file' needs at least one path")
        if len(formats) != len(paths):
            raise ConfigError(f"give one format for all {len(paths)} files or one per file")
        if len(req.symbols) not in (1, len(paths)):
            raise ConfigError(
                f"give one --symbol for all {len(paths)} files or one per file (the flag repeats: "
                f"--symbol A --symbol B); got {len(req.symbols)}"
            )
        parts = []
        for i, path in enumerate(req.resolve(paths)):
            symbol = req.symbols[0] if len(req.symbols) == 1 else req.symbols[i]
            params = {
                "path": str(path), "file_name": path.name, "symbol": symbol, "fmt": formats[i],
                "interval": req.interval, "checksum": file_checksum(path), "start": _iso(req.start),
                "end": _iso(req.end), "generic": req.generic if formats[i] == "generic" else None,
            }  # fmt: skip
            where = str(path)
            label = {"source": "file", "symbol": symbol, "interval": req.interval or "?", "location": where}
            parts.append(Partition(params, label))
        return parts

    def load(self, params: Mapping[str, Any]) -> Loaded:
        """Parse one file and clip it to the request's range."""
        fmt = params["fmt"]
        layout: str | Layout | None = generic_from_params(params.get("generic")) if fmt == "generic" else fmt
        parsed = parse_file(
            params["path"],
            symbol=params["symbol"],
            fmt=layout,
            interval=params["interval"],
            start=_when(params.get("start")),
            end=_when(params.get("end")),
        )
        known = LAYOUTS.get(parsed.layout)
        source = known.name if known else parsed.layout
        return Loaded(parsed.bars, parsed.quarantine, source, parsed.interval, parsed.checksum, parsed.notes)


@dataclass(frozen=True)
class SyntheticSource:
    """Seeded synthetic bars (:func:`tasks.sources.synthetic.generate_bars`), one month per partition."""

    name: str = "synthetic"

    def plan(self, req: SourceRequest) -> list[Partition]:
        """One partition per (symbol, calendar month)."""
        if req.start is None or req.end is None:
            raise ConfigError("source 'synthetic' needs both start and end")
        interval = req.interval or "1m"
        return [
            Partition(
                {
                    "symbol": symbol,
                    "start": lo.isoformat(),
                    "end": hi.isoformat(),
                    "interval": interval,
                    "seed": req.seed,
                },
                {
                    "source": "synthetic",
                    "symbol": symbol,
                    "interval": interval,
                    "location": f"{lo:%Y-%m-%d}..{hi:%Y-%m-%d}",
                },
            )
            for symbol in req.symbols
            for lo, hi in month_windows(req.start, req.end)
        ]

    def load(self, params: Mapping[str, Any]) -> Loaded:
        """Generate one window (same seed, same bars)."""
        from tasks.sources.synthetic import generate_bars

        symbol, start, end = params["symbol"], params["start"], params["end"]
        interval, seed = params["interval"], params["seed"]
        lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
        synth = generate_bars(symbol, lo, hi, interval, seed=seed)
        return Loaded(
            clip_to_range(synth.bars, lo, hi),
            pl.DataFrame(schema=QUARANTINE_SCHEMA),
            self.name,
            interval,
            content_hash("synthetic", symbol, start, end, interval, seed),
        )


@dataclass(frozen=True)
class YFinanceSource:
    """Yahoo Finance bars, one partition per request window Yahoo accepts."""

    name: str = "yfinance"

    def plan(self, req: SourceRequest) -> list[Partition]:
        """One partition per (symbol, window); a window that ended over a day ago is cached for good."""
        from tasks.sources.yfinance_source import plan_windows

        if req.start is None or req.end is None:
            raise ConfigError("source 'yfinance' needs both start and end")
        interval, now = req.interval or "1d", req.now
        parts = []
        for symbol in req.symbols:
            for lo, hi in plan_windows(req.start, req.end, interval, now=now):
                bucket = "closed" if hi <= now - timedelta(days=1) else f"open-{req.run_id}"
                params = {"symbol": symbol, "start": lo.isoformat(), "end": hi.isoformat(),
                          "interval": interval, "cache_bucket": bucket}  # fmt: skip
                where = f"yfinance {lo:%Y-%m-%d %H:%M}..{hi:%Y-%m-%d %H:%M}"
                label = {"source": "yfinance", "symbol": symbol, "interval": interval, "location": where}
                parts.append(Partition(params, label))
        return parts

    def load(self, params: Mapping[str, Any]) -> Loaded:
        """Fetch one window (one attempt: the Prefect task retries transient failures)."""
        from tasks.sources.yfinance_source import fetch_yfinance

        lo, hi = datetime.fromisoformat(params["start"]), datetime.fromisoformat(params["end"])
        fetched = fetch_yfinance(params["symbol"], lo, hi, params["interval"], attempts=1)
        return Loaded(
            fetched.bars, fetched.quarantine, self.name, params["interval"], fetched.checksum, fetched.notes
        )


@dataclass(frozen=True)
class RealizedSource:
    """Daily realized measures (Oxford-Man layout or ``date,symbol,rv``), one partition per file."""

    name: str = "realized"

    def plan(self, req: SourceRequest) -> list[Partition]:
        """One partition per file."""
        if not req.paths:
            raise ConfigError("source 'realized' needs at least one path")
        return [
            Partition(
                {"path": str(path), "file_name": path.name, "checksum": file_checksum(path)},
                {"source": "realized", "symbol": "-", "interval": "1d", "location": str(path)},
            )
            for path in req.resolve(req.paths)
        ]

    def load(self, params: Mapping[str, Any]) -> Loaded:
        """Parse one realized-measure file; ``frame`` holds REALIZED_SCHEMA rows."""
        from tasks.sources.realized import read_realized_file

        parsed = read_realized_file(params["path"])
        return Loaded(parsed.realized, parsed.quarantine, self.name, "1d", parsed.checksum, parsed.notes)


#: Every source by name; the ingest flow dispatches through this table.
SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Add ``source`` to :data:`SOURCES` under its name (a second one of the same name is refused)."""
    if source.name in SOURCES:
        raise ConfigError(f"source {source.name!r} is registered twice")
    SOURCES[source.name] = source
    return source


for _source in (FileSource(), SyntheticSource(), YFinanceSource(), RealizedSource()):
    register(_source)
