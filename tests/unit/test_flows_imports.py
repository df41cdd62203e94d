"""flows/ has no import circle (module-level or function-local imports) and flows.cli is its top."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _edges() -> dict[str, set[str]]:
    mods = {f"flows.{p.stem}": p for p in FLOWS.glob("*.py") if p.stem != "__init__"}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):  # every import, at any depth
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            edges[mod] |= {n for n in names if n in mods and n != mod}
    return edges


def test_flows_modules_import_each_other_without_a_circle() -> None:
    edges = _edges()
    try:
        tuple(TopologicalSorter(edges).static_order())
    except CycleError as exc:  # pragma: no cover - the failure message
        raise AssertionError(f"import circle in flows/: {exc.args[1]}") from None
    # The CLI is the top: only the demo, an entry point that runs its commands, imports it.
    assert {m for m, deps in edges.items() if "flows.cli" in deps} == {"flows.demo"}
