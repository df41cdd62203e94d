"""The development panel: its files, its instrument registrations and its manifest.

The development panel is the set of assets on which settings (hyper-parameters, windows, model
choices) may be chosen. It holds a synthetic panel with a common volatility factor
(:mod:`tasks.synthetic_panel`) and every realized series built from the shipped bar files
(:mod:`tasks.shipped_realized`). ``volrisk dev-panel`` (:mod:`flows.cli_devpanel`) writes it with
:func:`build_dev_panel`, registers it with :func:`register_instruments` and then ingests it; the
manifest (:data:`MANIFEST`) names every member, so a report can say which assets were used for tuning
and keep them out of its out-of-sample claims.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from core.errors import ConfigError
from flows.samples import SAMPLES_DIR

if TYPE_CHECKING:
    from tasks.shipped_realized import ShippedSeries

#: ``../shared/data`` beside the checkout (absent on a user's fresh clone).
SHARED_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
SYNTHETIC_FILE = "synthetic_simple.csv.gz"
SYNTHETIC_OXFORDMAN_FILE = "synthetic_oxfordman.csv.gz"
SHIPPED_FILE = "shipped_simple.csv.gz"
#: ``default_source`` of every symbol the panel registers; an evaluation reports these as in-sample.
DEV_PANEL_SOURCE = "dev_panel"
MANIFEST = "dev_panel.json"
DEFAULT_FIRST, DEFAULT_LAST = date(2011, 1, 1), date(2021, 12, 31)
#: The rule the development panel exists for.
RULE = (
    "settings (hyper-parameters, windows, model choices) are chosen on the development panel only; "
    "out-of-sample results are reported only on assets outside it"
)


@dataclass(frozen=True)
class DevPanelRequest:
    """What to build: the synthetic part's size, seed and range, and where the shipped bars are."""

    out: Path
    synthetic: int = 6
    seed: int = 12
    first: date = DEFAULT_FIRST
    last: date = DEFAULT_LAST
    shipped: bool = True
    samples_dir: Path = SAMPLES_DIR
    shared_dir: Path | None = SHARED_DATA_DIR
    regimes: str = "none"  # a preset of tasks.synthetic_panel.REGIME_PRESETS

    def check(self) -> DevPanelRequest:
        """Return ``self``, or raise :class:`ConfigError` on an empty or impossible request."""
        if self.synthetic < 0:
            raise ConfigError(f"--synthetic {self.synthetic}: expected 0 or more symbols")
        if self.synthetic == 0 and not self.shipped:
            raise ConfigError("an empty development panel: give --synthetic N or keep the shipped series")
        if self.first > self.last:
            raise ConfigError(f"--start {self.first} is after --end {self.last}")
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {self.out} exists and is not a folder")
        from tasks.synthetic_panel import REGIME_PRESETS

        if self.regimes not in REGIME_PRESETS:
            raise ConfigError(
                f"--regimes {self.regimes!r}: unknown preset; choices: {', '.join(REGIME_PRESETS)}"
            )
        return self


@dataclass(frozen=True)
class Member:
    """One symbol of the development panel."""

    symbol: str
    kind: str  # "synthetic" or "shipped"
    asset_class: str
    calendar: str
    first: str
    last: str
    days: int
    file: str
    detail: str


@dataclass
class DevPanel:
    """What :func:`build_dev_panel` wrote."""

    members: list[Member]
    ingest: list[Path]  # generic-layout files that `volrisk ingest realized` imports
    written: list[Path]
    notes: list[str] = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        """Every member's symbol, in panel order."""
        return [m.symbol for m in self.members]


def write_gz(path: Path, text: str) -> Path:
    """Write ``text`` gzip-compressed with a zero mtime, so the same text gives the same bytes."""
    path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    return path


def _spans(panel: pl.DataFrame) -> dict[str, tuple[str, str, int]]:
    """Per symbol: first date, last date and row count."""
    stats = panel.group_by("symbol").agg(pl.col("date").min(), pl.col("date").max().alias("last"), pl.len())
    return {r[0]: (str(r[1]), str(r[2]), int(r[3])) for r in stats.iter_rows()}


def _synthetic_part(req: DevPanelRequest) -> tuple[list[Member], list[Path], list[str]]:
    """Simulate the synthetic panel; write it in the generic and the Oxford-Man layout.

    Returns the members, the two files and notes: regimes of the preset outside the range (not
    applied) or cut by it, and symbols whose exchange calendar starts after ``req.first`` (or ends
    before ``req.last``), whose rows then start (end) with the calendar.
    """
    from tasks.synthetic_panel import (
        PanelParams,
        clipped_range,
        default_symbols,
        oxfordman_csv,
        regime_preset,
        regimes_in_range,
        simple_csv,
        simulate_panel,
    )

    specs = default_symbols(req.synthetic)
    applied, notes = regimes_in_range(regime_preset(req.regimes), req.first, req.last)
    params = PanelParams(regimes=tuple(applied))
    panel = simulate_panel(specs, req.first, req.last, params, seed=req.seed, clip_to_calendars=True)
    simple = write_gz(req.out / SYNTHETIC_FILE, simple_csv(panel))
    oxford = write_gz(req.out / SYNTHETIC_OXFORDMAN_FILE, oxfordman_csv(panel))
    spans = _spans(panel)
    regimes = f", regimes {req.regimes}" if req.regimes != "none" else ""
    members = [
        Member(s.symbol, "synthetic", "equity_index", s.calendar, *spans[s.symbol], SYNTHETIC_FILE,
               f"seed {req.seed}, vol {s.annual_vol:.2f}, loading {s.loading:.1f}{regimes}")
        for s in specs
    ]  # fmt: skip
    for s in specs:
        lo, hi = clipped_range(s.calendar, req.first, req.last)
        if (lo, hi) != (req.first, req.last):
            notes.append(
                f"{s.symbol}: calendar {s.calendar} covers only {lo}..{hi} of the range; rows cut to it"
            )
    return members, [simple, oxford], notes


def _origin(series: ShippedSeries) -> str:
    """Where a shipped series comes from, in a few words."""
    files = series.files[0].rsplit("/", 1)[-1] if len(series.files) == 1 else f"{len(series.files)} files"
    how = f", {series.resample} returns" if series.resample else ""
    return f"{series.fmt}: {files}" + (", Garman-Klass range" if series.symbol.endswith("_GK") else how)


def _shipped_part(req: DevPanelRequest) -> tuple[list[Member], Path, list[str]]:
    """Build the realized series of the shipped bar files; write them in the generic layout."""
    from tasks.shipped_realized import panel_csv, shipped_realized_panel

    shared = req.shared_dir if req.shared_dir is not None and req.shared_dir.is_dir() else None
    panel, built, notes = shipped_realized_panel({"samples": req.samples_dir, "shared": shared})
    path = write_gz(req.out / SHIPPED_FILE, panel_csv(panel))
    spans = _spans(panel)
    members = [
        Member(s.symbol, "shipped", s.asset_class, s.calendar, *spans[s.symbol], SHIPPED_FILE, _origin(s))
        for s in built
        if s.symbol in spans
    ]
    return members, path, notes


def build_dev_panel(req: DevPanelRequest) -> DevPanel:
    """Write the development panel's files and its manifest under ``req.out``.

    Returns
    -------
    DevPanel
        Its members, the generic-layout files to ingest, every file written and notes (series left
        out because their files are absent).
    """
    req.check()
    req.out.mkdir(parents=True, exist_ok=True)
    members: list[Member] = []
    ingest: list[Path] = []
    written: list[Path] = []
    notes: list[str] = []
    if req.synthetic:
        syn, files, notes = _synthetic_part(req)
        members += syn
        ingest.append(files[0])
        written += files
    if req.shipped:
        shipped, path, left_out = _shipped_part(req)
        members += shipped
        ingest.append(path)
        written.append(path)
        notes += left_out
    panel = DevPanel(members, ingest, written, notes)
    written.append(write_manifest(req, panel))
    return panel


def manifest(req: DevPanelRequest, panel: DevPanel) -> dict[str, Any]:
    """The manifest: the role and rule, how the panel was made, and every member."""
    from tasks.synthetic_panel import PanelParams, regime_preset, regimes_in_range

    applied, _ = regimes_in_range(regime_preset(req.regimes), req.first, req.last)
    params = {k: v for k, v in asdict(PanelParams()).items() if k != "regimes"}
    return {
        "role": "development",
        "rule": RULE,
        "symbols": panel.symbols,
        "members": [asdict(m) for m in panel.members],
        "synthetic": {
            "count": req.synthetic,
            "seed": req.seed,
            "first": str(req.first),
            "last": str(req.last),
            "params": params,
            "regimes": {
                "preset": req.regimes,
                "applied": [r.describe() for r in applied],
                "not_applied": [r.describe() for r in regime_preset(req.regimes) if r not in applied],
            },
        },
        "files": [p.name for p in panel.written],
        "notes": panel.notes,
    }


def write_manifest(req: DevPanelRequest, panel: DevPanel) -> Path:
    """Write :func:`manifest` as ``req.out / MANIFEST`` (sorted keys, so reruns give the same file)."""
    path = req.out / MANIFEST
    path.write_text(json.dumps(manifest(req, panel), indent=2, sort_keys=True) + "\n")
    return path


def register_instruments(warehouse: str, members: list[Member]) -> list[str]:
    """Register every member (``volrisk instruments set`` equivalents); return those newly registered.

    A member already registered the same way is left alone; one registered otherwise is refused,
    as an ingest refuses it (change it with ``volrisk instruments set`` first).
    """
    from tasks.instruments import InstrumentInfo, ingest_registration
    from warehouse.catalog import Instrument, get_instrument, upsert_instrument
    from warehouse.resource import Warehouse

    new: list[str] = []
    with Warehouse.at(warehouse).writing() as con:
        for m in members:
            found = get_instrument(con, m.symbol)
            stored = InstrumentInfo(*(getattr(found, f) for f in InstrumentInfo._fields)) if found else None
            info = ingest_registration(m.symbol, stored, m.asset_class, m.calendar, source=DEV_PANEL_SOURCE)
            if info is not None:
                upsert_instrument(con, Instrument(*info))
                new.append(m.symbol)
    return new
