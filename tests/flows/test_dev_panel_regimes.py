"""``volrisk dev-panel --regimes``: the crisis preset in the files, the manifest and the log."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from core.errors import ConfigError
from flows.cli import app
from flows.dev_panel import (
    MANIFEST,
    SYNTHETIC_FILE,
    SYNTHETIC_OXFORDMAN_FILE,
    DevPanelRequest,
    build_dev_panel,
)

#: sha256 of the decompressed synthetic files of the request below, from the code before regimes
#: existed (commit 8d56360).
PINNED = {
    SYNTHETIC_FILE: "2c4a756817d3c2e51dac38e9dfa4e0a87f57414bc418e21afbc58aa2ad2f6d80",
    SYNTHETIC_OXFORDMAN_FILE: "ac8cf27a940eabcaef29b64807c482390caac6de46d2fe9c45a89cad201e5902",
}


def _command(out: Path, regimes: str) -> list[str]:
    return ["dev-panel", "--synthetic", "2", "--regimes", regimes, "--no-ingest", "--no-shipped",
            "--out", str(out), "--start", "2006-01-01", "--end", "2009-12-31"]  # fmt: skip


def _q4_2008_against_2007(out: Path) -> dict[str, tuple[float, float]]:
    """Per symbol: mean RV of 2008Q4 over that of 2007, and the same gap in mean log RV."""
    panel = pl.read_csv(out / SYNTHETIC_FILE, try_parse_dates=True)
    result = {}
    for symbol in panel["symbol"].unique().sort().to_list():
        rows = panel.filter(pl.col("symbol") == symbol)
        q4 = rows.filter(pl.col("date").is_between(date(2008, 10, 1), date(2008, 12, 31)))["rv"]
        y07 = rows.filter(pl.col("date").dt.year() == 2007)["rv"]
        result[symbol] = (q4.mean() / y07.mean(), q4.log().mean() - y07.log().mean())  # type: ignore[operator]
    return result


def test_without_regimes_the_files_are_those_pinned_before_regimes(tmp_path: Path) -> None:
    req = DevPanelRequest(
        out=tmp_path, synthetic=3, first=date(2020, 1, 1), last=date(2020, 12, 31), shipped=False
    )
    build_dev_panel(req)
    for name, digest in PINNED.items():
        assert hashlib.sha256(gzip.decompress((tmp_path / name).read_bytes())).hexdigest() == digest, name
    doc = json.loads((tmp_path / MANIFEST).read_text())
    assert doc["synthetic"]["regimes"] == {"preset": "none", "applied": [], "not_applied": []}
    assert "regimes" not in doc["synthetic"]["params"] and doc["notes"] == []


def test_a_preset_whose_regimes_all_lie_outside_the_range_changes_nothing_but_the_manifest(
    tmp_path: Path,
) -> None:
    def build(out: Path, regimes: str) -> list[str]:
        req = DevPanelRequest(
            out=out,
            synthetic=3,
            first=date(2020, 6, 1),
            last=date(2020, 12, 31),
            shipped=False,
            regimes=regimes,
        )
        return build_dev_panel(req).notes

    assert build(tmp_path / "none", "none") == []
    notes = build(tmp_path / "crisis", "crisis")  # June-December 2020: after covid_2020 ends in April
    assert len(notes) == 3 and all("not applied" in n for n in notes)
    for name in PINNED:
        assert (tmp_path / "none" / name).read_bytes() == (tmp_path / "crisis" / name).read_bytes(), name
    doc = json.loads((tmp_path / "crisis" / MANIFEST).read_text())
    assert doc["synthetic"]["regimes"]["applied"] == []
    assert [r["name"] for r in doc["synthetic"]["regimes"]["not_applied"]] == [
        "gfc_2008", "calm_2017", "covid_2020",
    ]  # fmt: skip


def test_the_crisis_command_lifts_2008q4_above_2007_and_says_what_it_left_out(tmp_path: Path) -> None:
    runner = CliRunner()
    crisis = runner.invoke(app, _command(tmp_path / "crisis", "crisis"), env={"COLUMNS": "200"})
    assert crisis.exit_code == 0, crisis.output
    calm = runner.invoke(app, _command(tmp_path / "none", "none"), env={"COLUMNS": "200"})
    assert calm.exit_code == 0, calm.output
    assert "regime covid_2020 (2020-02-24..2020-04-30) is outside the synthetic range" in crisis.output
    with_regime, without = (
        _q4_2008_against_2007(tmp_path / "crisis"),
        _q4_2008_against_2007(tmp_path / "none"),
    )
    for symbol, (ratio, log_gap) in with_regime.items():
        assert ratio > 2.0, symbol  # 2008Q4's mean RV clearly above 2007's
        assert log_gap - without[symbol][1] > 1.0, symbol  # and by the regime: the same seed without it
    doc = json.loads((tmp_path / "crisis" / MANIFEST).read_text())
    regimes = doc["synthetic"]["regimes"]
    assert regimes["preset"] == "crisis"
    assert regimes["applied"] == [
        {"name": "gfc_2008", "start": "2008-09-15", "end": "2009-03-31", "level": 1.5, "t_df": 4.0,
         "loading_scale": 1.3, "ramp": 10.0},
    ]  # fmt: skip
    assert [r["name"] for r in regimes["not_applied"]] == ["calm_2017", "covid_2020"]
    assert any("calm_2017" in n and "not applied" in n for n in doc["notes"])
    assert all("regimes crisis" in m["detail"] for m in doc["members"])


def test_a_bad_preset_answers_in_one_line_before_writing_anything(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, _command(tmp_path, "panic"), env={"COLUMNS": "200"})
    assert out.exit_code == 2
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert lines == ["error: --regimes 'panic': unknown preset; choices: none, crisis"]
    assert not (tmp_path / MANIFEST).exists()
    with pytest.raises(ConfigError, match="choices: none, crisis"):
        DevPanelRequest(out=tmp_path, regimes="Crisis").check()


def test_symbols_on_calendars_that_start_later_are_cut_and_named(tmp_path: Path) -> None:
    req = DevPanelRequest(
        out=tmp_path,
        synthetic=4,
        first=date(2005, 1, 1),
        last=date(2009, 12, 31),
        shipped=False,
        regimes="crisis",
    )
    panel = build_dev_panel(req)  # the fourth symbol trades on Tokyo, whose calendar starts in Dec 2006
    first = {m.symbol: m.first for m in panel.members}
    assert first["SYN_01"] < "2005-01-10" and "2006-12-01" <= first["SYN_04"] < "2007-01-01"
    assert any(n.startswith("SYN_04: calendar XTKS covers only") for n in panel.notes)
