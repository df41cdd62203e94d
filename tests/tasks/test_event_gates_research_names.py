"""The weekly gates read the research plan's predictors under its names (kronos-event vs kronos-base)."""

from __future__ import annotations

import polars as pl

from tasks.event_gates import GATE_PAIRS, gate_pair, research_label, walk_forward_sharpe
from tasks.model_catalog import BUILTIN_MODELS, RESEARCH_NAMES


def test_research_names_resolve_to_registered_models() -> None:
    assert set(RESEARCH_NAMES) == {"kronos-base", "kronos-event", "chronos-2"}
    assert set(RESEARCH_NAMES.values()) <= set(BUILTIN_MODELS)
    assert ("kronos_event", "kronos") == GATE_PAIRS[0]


def test_gate_pair_prefers_the_research_pair_when_both_were_scored() -> None:
    assert gate_pair({"kronos", "kronos_event", "quantile", "quantile_event"}) == ("kronos_event", "kronos")
    assert gate_pair({"kronos_event", "quantile", "quantile_event"}) == ("quantile_event", "quantile")
    assert gate_pair({"har"}) == ("quantile_event", "quantile")


def test_the_sharpe_gate_names_the_research_models() -> None:
    metrics = pl.DataFrame(
        {"model": ["kronos_event", "kronos"], "symbol": ["BTC-USDT", "BTC-USDT"], "sharpe": [0.5, 0.2]}
    )
    res = walk_forward_sharpe(metrics, event_model="kronos_event", base_model="kronos")
    assert res.passed is True and abs((res.figure or 0) - 0.3) < 1e-12
    assert res.note == "kronos-event (kronos_event) - kronos-base (kronos) mean Sharpe"
    assert research_label("har") == "har"
