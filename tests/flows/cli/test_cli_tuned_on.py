"""``volrisk evaluate --tuned-on``: checked before any flow, passed to the spec, the headline printed."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from typer.testing import CliRunner

import flows.cli_evaluate as cli_evaluate
from flows.cli import app

runner = CliRunner()


def test_a_bad_tuned_on_symbol_answers_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_warehouse(*_: Any) -> None:
        raise AssertionError("the warehouse was checked before --tuned-on")

    monkeypatch.setattr(cli_evaluate.preflight, "warehouse_with_features", no_warehouse)
    out = runner.invoke(app, ["evaluate", "SPY", "--tuned-on", "EUR/USD"], env={"COLUMNS": "200"})
    assert out.exit_code == 2
    assert "invalid symbol 'EUR/USD'" in out.output


def test_tuned_on_reaches_the_spec_and_the_headline_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    headline = (
        "Best: hexp, median QLIKE 0.950 x HAR over 2 assets; beats HAR significantly (DM p < 0.05) on 1 of 2."
    )

    def fake_flow(spec: Any, warehouse: str) -> dict[str, Any]:
        seen["spec"] = spec
        return {
            "summary": [],
            "panel": [
                {
                    "model": "hexp",
                    "n_assets": 2,
                    "median_qlike_ratio": 0.95,
                    "beats_har_assets": 1,
                    "panel_dm_p": 0.01,
                    "in_panel_mcs": True,
                },
                {
                    "model": "har",
                    "n_assets": 2,
                    "median_qlike_ratio": 1.0,
                    "beats_har_assets": 0,
                    "panel_dm_p": float("nan"),
                    "in_panel_mcs": False,
                },
            ],  # fmt: skip
            "headline": {
                "sentence": headline,
                "settings": "Settings were chosen on: SPY (in-sample for these).",
            },
            "failed": [],
            "report": "r.md",
            "json": "r.json",
        }

    fake = types.ModuleType("flows.evaluate_flow")
    fake.evaluate_flow = fake_flow  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flows.evaluate_flow", fake)
    monkeypatch.setattr(cli_evaluate.preflight, "warehouse_with_features", lambda *_: None)
    monkeypatch.setattr(cli_evaluate, "run_with_progress", lambda run, _label: run())
    args = ["evaluate", "SPY", "EURUSD", "--tuned-on", "SPY", "--no-stack"]
    out = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert seen["spec"].tuned_on == ["SPY"]
    flat = " ".join(out.output.split())
    assert headline in flat and "Settings were chosen on: SPY" in flat
    assert "across assets: QLIKE ratio to HAR" in flat and "0.950" in flat and "n/a" in flat
