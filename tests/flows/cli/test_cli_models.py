"""``volrisk models``: every registered model, its kind, and whether it can run here (and why not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.cli_models import model_rows
from tasks.model_catalog import BUILTIN_MODELS, RESEARCH_NAMES
from tasks.models import foundation_weights as fw

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_every_model_is_listed_with_its_kind(tmp_path: Path) -> None:
    out = runner.invoke(app, ["models"], env={"COLUMNS": "250", "VOLRISK_MODELS_DIR": str(tmp_path)})
    assert out.exit_code == 0, out.output
    text = _flat(out.output)
    rows = {r["name"]: r for r in model_rows()}
    assert set(rows) == set(BUILTIN_MODELS)
    for name, row in rows.items():
        assert f"{name} {row['kind']}" in text
    assert rows["har"]["available"] and rows["har"]["kind"] == "baseline"
    assert {rows[n]["kind"] for n in RESEARCH_NAMES.values()} == {"foundation"}
    assert not rows["chronos2"]["available"]  # no weights in an empty folder, with or without the extra
    assert "chronos-2 chronos2" not in text and "chronos2 foundation chronos-2 no" in text


def test_without_the_extra_the_table_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fw, "missing_packages", lambda model: ["chronos"] if model in fw.FOUNDATION else [])
    out = runner.invoke(
        app, ["models", "--unavailable"], env={"COLUMNS": "250", "VOLRISK_MODELS_DIR": str(tmp_path)}
    )
    assert out.exit_code == 0, out.output
    text = _flat(out.output)
    assert "pip install -e '.[foundation]'" in text
    assert "kronos_event" in text and " har " not in text  # --unavailable leaves the available out


def test_with_the_extra_and_tiny_weights_they_are_available(monkeypatch: pytest.MonkeyPatch) -> None:
    from foundation_helpers import tiny_models_dir

    monkeypatch.setenv("VOLRISK_MODELS_DIR", str(tiny_models_dir()))
    rows = {r["name"]: r for r in model_rows()}
    assert all(rows[n]["available"] and rows[n]["why_not"] == "" for n in RESEARCH_NAMES.values())
