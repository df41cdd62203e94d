"""Pooled models in the walk-forward: which panels they fit, their folds, and their fold tasks.

A model whose ``pool`` is ``class`` fits one model per fold on every evaluated symbol of an asset
class; ``all``, on every evaluated symbol. Its folds are :class:`~tasks.walk_forward.PanelFold` s on
the panel's common date axis (one ``train_end`` for every member), and each block of folds is one
``pooled-walk-forward-folds`` task (:mod:`flows.steps.evaluate_panel`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import polars as pl

from core.hashing import content_hash
from flows.steps.evaluate_panel import evaluate_panel_folds, panel_fold_payload
from tasks.evaluate import features_version, model_code_hash
from tasks.experiment import ExperimentSpec
from tasks.walk_forward import PanelFold, panel_walk_forward

#: A fold task's future -> (model, the (symbol, fold) pairs it covers).
Planned = dict[Any, tuple[str, list[tuple[str, int]]]]


def model_pool(model: str, config: Mapping[str, Any] | None) -> str:
    """``none``, ``class`` or ``all``: how ``model`` with ``config`` pools symbols (``none`` for a
    model without a ``pool`` setting)."""
    from tasks.train import build_model

    return str(getattr(build_model(model, dict(config or {})), "pool", "none"))


def panels(pool: str, symbols: Sequence[str], classes: Mapping[str, str]) -> list[list[str]]:
    """The panels a pooled model is fitted on: every symbol (``all``) or each asset class's."""
    if pool == "all":
        return [sorted(symbols)]
    groups: dict[str, list[str]] = {}
    for s in sorted(symbols):
        groups.setdefault(classes.get(s, "unknown"), []).append(s)
    return list(groups.values())


def plan_panel_folds(
    feats: pl.DataFrame,
    members: Sequence[str],
    windows: Mapping[str, tuple[date, date]],
    spec: ExperimentSpec,
) -> list[PanelFold]:
    """The panel's folds under the spec's walk-forward settings (training from ``spec.train_start``)."""
    first = date.fromisoformat(spec.train_start) if spec.train_start else None
    sessions: dict[str, list[date]] = {}
    for s in members:
        days = feats.filter(pl.col("symbol") == s)["session_date"].sort()
        sessions[s] = [d for d in days.to_list() if first is None or d >= first]
    return panel_walk_forward(
        sessions,
        {s: windows[s] for s in members},
        refit_every=spec.refit_every,
        embargo=spec.embargo,
        window=spec.window,
        train_size=spec.train_size,
    )


def pooled_plan(
    names: Sequence[str],
    spec: ExperimentSpec,
    feats: pl.DataFrame,
    classes: Mapping[str, str],
    windows: Mapping[str, tuple[date, date]],
    config_of: Any,
) -> dict[str, list[tuple[list[str], list[PanelFold]]]]:
    """Per pooled model in ``names``: its panels and each panel's folds (models that pool nothing are
    left out). ``config_of(model)`` gives the model's config."""
    plan: dict[str, list[tuple[list[str], list[PanelFold]]]] = {}
    for model in names:
        pool = model_pool(model, config_of(model))
        if pool == "none":
            continue
        plan[model] = [
            (ms, plan_panel_folds(feats, ms, windows, spec)) for ms in panels(pool, spec.symbols, classes)
        ]
    return plan


def submit_panel_block(
    runner: Any,
    wh: str,
    inputs: Any,
    model: str,
    members: list[str],
    block: Sequence[PanelFold],
    cfg: dict[str, Any],
) -> Any:
    """Submit one block of panel folds to ``runner`` (``None``: the flow's own thread runner)."""
    last = max(days[-1] for f in block for days in f.origins.values())
    version = content_hash(
        features_version(inputs.features, members, last), model_code_hash(False), inputs.events_version
    )
    label = "-".join(members) + f"-fold{block[0].fold}" + (f"-{block[-1].fold}" if len(block) > 1 else "")
    params = {
        "warehouse_path": wh, "warehouse_id": inputs.warehouse_id, "model": model, "symbols": members,
        "folds": [panel_fold_payload(f) for f in block], "config": cfg, "data_version": version,
        "label": label,
    }  # fmt: skip
    return (
        evaluate_panel_folds.submit(**params)
        if runner is None
        else runner.submit(evaluate_panel_folds, params)
    )


def member_folds(block: Sequence[PanelFold]) -> list[tuple[str, int]]:
    """The (symbol, fold) pairs a block of panel folds forecasts."""
    return [(s, f.fold) for f in block for s in sorted(f.origins)]
