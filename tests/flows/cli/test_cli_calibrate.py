"""``volrisk evaluate --calibrate``: parsed into the spec's calibration config, checked before any flow."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

import flows.cli_evaluate as cli_evaluate
from flows.cli import app
from flows.cli_evaluate import calibration_option

runner = CliRunner()


def test_every_model_and_per_model_methods() -> None:
    assert calibration_option(None) is None
    assert calibration_option(["aci"]) == {"*": "aci"}
    assert calibration_option(["fhs+aci", "har=evt+aci", "garch=none"]) == {
        "*": "fhs+aci",
        "har": "evt+aci",
        "garch": "none",
    }


@pytest.mark.parametrize(
    ("value", "words"),
    [("magic", ["--calibrate", "magic"]), ("nope=aci", ["unknown model 'nope'"]), ("har=", ["'har'"])],
)
def test_bad_calibration_answers_in_one_line_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, value: str, words: list[str]
) -> None:
    def no_warehouse(*_: Any) -> None:
        raise AssertionError("the warehouse was checked before --calibrate")

    monkeypatch.setattr(cli_evaluate.preflight, "warehouse_with_features", no_warehouse)
    out = runner.invoke(app, ["evaluate", "SPY", "--calibrate", value], env={"COLUMNS": "200"})
    assert out.exit_code == 2
    assert all(w in out.output for w in words) and "Traceback" not in out.output


def test_calibration_reaches_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_flow(spec: Any, warehouse: str) -> dict[str, Any]:
        seen["spec"] = spec
        return {"summary": [], "panel": [], "headline": {}, "failed": [], "report": "r.md", "json": "r.json"}

    import flows.evaluate_flow

    monkeypatch.setattr(cli_evaluate.preflight, "warehouse_with_features", lambda *_: None)
    monkeypatch.setattr(flows.evaluate_flow, "evaluate_flow", fake_flow)
    out = runner.invoke(app, ["evaluate", "SPY", "--calibrate", "har=faci"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert seen["spec"].calibration == {"har": "faci"}
    assert seen["spec"].params(["har"], False, {}, {})["calibration"] == {"har": "faci"}
