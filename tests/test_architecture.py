"""The house rules of docs/design.md, checked on the source tree.

- Layers: ``flows -> tasks -> core`` and ``warehouse -> core``. ``core`` imports no layer;
  ``warehouse`` imports only ``core``; ``tasks`` imports only ``core`` and ``tasks``, and neither
  Prefect nor DuckDB (stage code is pure: frames in, frames out).
- No import circle between modules, counting imports inside functions too.
- No function over 80 lines outside reports and plots.

Each checker is also run on a small tree that breaks its rule, so a checker that silently passes
everything fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "tasks", "warehouse", "flows")
#: Layer -> the project packages it may import.
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "warehouse": {"core", "warehouse"},
    "tasks": {"core", "tasks"},
    "flows": {"core", "tasks", "warehouse", "flows"},
}
#: Third-party packages a layer must not import (the door owns them).
FORBIDDEN_LIBS: dict[str, set[str]] = {"tasks": {"prefect", "duckdb"}, "core": {"prefect", "duckdb", "torch"}}
MAX_LINES = 80
#: (file, function) pairs allowed over MAX_LINES: only reports and plots, where one figure or one
#: document per function can read better whole. None is needed today.
LONG_ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the project packages under ``root``."""
    found = [p for pkg in PACKAGES if (root / pkg).is_dir() for p in (root / pkg).rglob("*.py")]
    return {module_name(p, root): p for p in found}


def imported(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """Every module ``path`` imports (module level and inside functions), absolute names.

    ``from a import b`` yields ``a``, and ``a.b`` too when that is one of the ``known`` modules.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    mods = modules(root)
    return {m: {t for t in imported(p, m, set(mods)) if t in mods and t != m} for m, p in mods.items()}


def layer_violations(root: Path) -> list[str]:
    """``"a imports b"`` for every import that breaks :data:`ALLOWED` or :data:`FORBIDDEN_LIBS`."""
    out: list[str] = []
    mods = modules(root)
    for mod, path in sorted(mods.items()):
        layer = mod.split(".")[0]
        for target in sorted(set(imported(path, mod, set(mods)))):
            top = target.split(".")[0]
            if (top in PACKAGES and top not in ALLOWED[layer]) or top in FORBIDDEN_LIBS.get(layer, set()):
                out.append(f"{mod} imports {target}")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def long_functions(root: Path) -> list[str]:
    """``"path:function (N lines)"`` for every function over :data:`MAX_LINES` not allowed long."""
    out = []
    for path in sorted(modules(root).values()):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_LINES and (rel, node.name) not in LONG_ALLOWED:
                    out.append(f"{rel}:{node.name} ({n} lines)")
    return out


# ------------------------------------------------------------------------------------------ the tree
def test_no_layer_imports_upwards() -> None:
    assert layer_violations(ROOT) == []


def test_no_import_circles() -> None:
    assert cycles(import_graph(ROOT)) == []


def test_no_function_over_80_lines_outside_reports_and_plots() -> None:
    assert long_functions(ROOT) == []


def test_importing_pure_stages_loads_neither_prefect_nor_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tasks.risk, tasks.evaluate, tasks.features, tasks.walk_forward, tasks.models.har;"
        "print(sorted(m for m in ('prefect', 'torch', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------ the checkers
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir(exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


def test_checkers_catch_an_upward_import_and_a_forbidden_library(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "warehouse/db.py": "def f():\n    from tasks.errors import X\n",
            "tasks/stage.py": "from prefect import task\nfrom . import other\n",
            "tasks/other.py": "from ..flows import cli\n",
            "flows/cli.py": "",
        },
    )
    assert layer_violations(root) == [
        "tasks.other imports flows",
        "tasks.other imports flows.cli",
        "tasks.stage imports prefect",
        "warehouse.db imports tasks.errors",
    ]
    assert layer_violations(_tree(tmp_path / "clean", {"tasks/ok.py": "from core import errors\n"})) == []


def test_checkers_catch_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "tasks/a.py": "from tasks.b import x\n",
            "tasks/b.py": "def x():\n    import tasks.c\n",
            "tasks/c.py": "from tasks import a\n",
            "tasks/d.py": "from tasks.a import y\n",
        },
    )
    assert cycles(import_graph(root)) == [["tasks.a", "tasks.b", "tasks.c"]]


@pytest.mark.parametrize(("lines", "flagged"), [(80, False), (81, True)])
def test_checkers_catch_a_long_function(tmp_path: Path, lines: int, flagged: bool) -> None:
    body = "".join("    x = 1\n" for _ in range(lines - 1))
    root = _tree(tmp_path, {"tasks/long.py": f"def f():\n{body}"})
    assert long_functions(root) == ([f"tasks/long.py:f ({lines} lines)"] if flagged else [])
