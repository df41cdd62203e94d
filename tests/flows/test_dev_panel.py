"""``volrisk dev-panel``: the development panel's files, manifest, registrations and warehouse."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import ConfigError
from flows.cli import app
from flows.dev_panel import (
    MANIFEST,
    SHIPPED_FILE,
    SYNTHETIC_FILE,
    SYNTHETIC_OXFORDMAN_FILE,
    DevPanelRequest,
    build_dev_panel,
)
from tasks.calendars import sessions_between
from tasks.sources.realized import read_realized_file


def _request(out: Path, **kw: object) -> DevPanelRequest:
    base: dict[str, object] = {
        "synthetic": 3,
        "first": date(2020, 1, 1),
        "last": date(2020, 12, 31),
        "shipped": False,
    }
    return DevPanelRequest(out=out, **{**base, **kw})  # type: ignore[arg-type]


def test_the_files_and_the_manifest_name_every_member(tmp_path: Path) -> None:
    panel = build_dev_panel(_request(tmp_path))
    assert panel.symbols == ["SYN_01", "SYN_02", "SYN_03"]
    assert [p.name for p in panel.ingest] == [SYNTHETIC_FILE]
    assert {p.name for p in panel.written} == {SYNTHETIC_FILE, SYNTHETIC_OXFORDMAN_FILE, MANIFEST}
    doc = json.loads((tmp_path / MANIFEST).read_text())
    assert doc["role"] == "development" and "only on assets outside it" in doc["rule"]
    assert doc["symbols"] == panel.symbols and doc["synthetic"]["seed"] == 12
    assert [m["calendar"] for m in doc["members"]] == ["XNYS", "XLON", "XFRA"]
    for name in (SYNTHETIC_FILE, SYNTHETIC_OXFORDMAN_FILE):
        parsed = read_realized_file(tmp_path / name)  # both layouts pass the importer's unit check
        assert parsed.symbols == panel.symbols and parsed.quarantine.height == 0


def test_the_same_request_writes_the_same_bytes(tmp_path: Path) -> None:
    build_dev_panel(_request(tmp_path / "a"))
    build_dev_panel(_request(tmp_path / "b"))
    build_dev_panel(_request(tmp_path / "c", seed=13))
    for name in (SYNTHETIC_FILE, SYNTHETIC_OXFORDMAN_FILE, MANIFEST):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / SYNTHETIC_FILE).read_bytes() != (tmp_path / "c" / SYNTHETIC_FILE).read_bytes()


def test_the_shipped_part_comes_from_the_bundled_bars(tmp_path: Path) -> None:
    empty = tmp_path / "no-shared"
    empty.mkdir()
    panel = build_dev_panel(_request(tmp_path / "out", synthetic=0, shipped=True, shared_dir=empty))
    assert panel.symbols == ["SPY_RV", "EURUSD_RV", "BTC_RV", "SPY_RV5M"]  # SHIPPED_SERIES order
    assert [p.name for p in panel.ingest] == [SHIPPED_FILE]
    assert len(panel.notes) == 5  # the five series of ../shared/data are named as left out
    assert {m.kind for m in panel.members} == {"shipped"}


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"synthetic": -1}, "--synthetic"), ({"synthetic": 0}, "empty"), ({"first": date(2022, 1, 1)}, "after")],
)
def test_impossible_requests_are_refused(tmp_path: Path, kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_dev_panel(_request(tmp_path, **kw))


def test_the_command_without_ingest_lists_the_tuning_set(tmp_path: Path) -> None:
    args = ["dev-panel", "--synthetic", "2", "--no-shipped", "--no-ingest", "--out", str(tmp_path),
            "--start", "2020-01-01", "--end", "2020-06-30"]  # fmt: skip
    out = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "development (tuning) set: SYN_01 SYN_02" in out.output
    assert "only on assets outside it" in out.output
    assert (tmp_path / MANIFEST).is_file()


def test_a_bad_option_answers_in_one_line(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["dev-panel", "--synthetic", "-2", "--out", str(tmp_path)])
    assert out.exit_code == 2 and "--synthetic -2" in out.output
    assert not (tmp_path / MANIFEST).exists()


@pytest.mark.slow  # about 40 s on the shared 2-core machine: two runs of the command, each with a flow run
def test_the_command_registers_ingests_and_builds_features(tmp_path: Path, prefect_harness: None) -> None:
    from warehouse.catalog import get_instrument
    from warehouse.db import session
    from warehouse.features import read_features

    wh = tmp_path / "wh.duckdb"
    empty = tmp_path / "no-shared"
    empty.mkdir()
    args = ["dev-panel", "--synthetic", "2", "--out", str(tmp_path / "panel"), "--start", "2019-01-01",
            "--end", "2020-12-31", "--shared-data", str(empty), "-w", str(wh)]  # fmt: skip
    out = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    with session(wh, read_only=True) as con:
        feats = read_features(con, ["SYN_01", "SYN_02", "SPY_RV", "SPY_RV5M"])
        inst = get_instrument(con, "SYN_02")
    assert inst is not None and (inst.asset_class, inst.calendar, inst.default_source) == (
        "equity_index", "XLON", "dev_panel",
    )  # fmt: skip
    counts = dict(feats.group_by("symbol").len().iter_rows())
    assert counts["SYN_01"] == len(sessions_between("XNYS", date(2019, 1, 1), date(2020, 12, 31)))
    assert counts["SPY_RV"] > 5500 and counts["SPY_RV5M"] > 30
    assert (feats["interval"] == "realized").all()
    rerun = CliRunner().invoke(app, args, env={"COLUMNS": "200"})  # idempotent: nothing changes
    assert rerun.exit_code == 0 and "0 instrument(s); 6 already were" in rerun.output, rerun.output
