"""What the commands print: help that is not cut, progress that is never ``0/?`` (issue 14)."""

from __future__ import annotations

from rich.progress import Progress
from typer.testing import CliRunner

from flows.cli import app
from flows.cli_common import run_with_progress as _run_with_progress
from flows.progress import CountColumn, report
from tasks.model_catalog import BUILTIN_MODELS

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_predict_help_is_not_cut_by_markup() -> None:
    out = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    assert "every stored session from --start to --end" in _flat(
        out.output
    )  # was "in ;": [start, end] ate it


def test_symbol_help_says_the_flag_repeats() -> None:
    out = runner.invoke(app, ["ingest", "file", "--help"], env={"COLUMNS": "200"})
    assert "the flag repeats (-s A -s B)" in _flat(out.output)


def test_count_column_never_shows_a_question_mark() -> None:
    bar = Progress()
    task_id = bar.add_task("x", total=None)
    column, task = CountColumn(), bar.tasks[0]
    assert column.render(task).plain == "starting"
    bar.advance(task_id, 3)
    assert column.render(task).plain == "3 done"
    bar.update(task_id, total=5)
    assert column.render(task).plain == "3/5"


def test_work_that_never_announces_a_size_ends_complete() -> None:
    seen: dict[str, float | None] = {}

    def run() -> list[dict[str, int]]:
        report("thing", item={"i": 1})
        report("thing", item={"i": 2})
        return []

    import flows.progress as cli

    original = cli.progress_bar

    def spy(*extra: object, **kw: object) -> Progress:
        bar = original(*extra, **kw)  # type: ignore[arg-type]
        seen["bar"] = bar  # type: ignore[assignment]
        return bar

    cli.progress_bar = spy  # type: ignore[assignment]
    try:
        _run_with_progress(run, "work")
    finally:
        cli.progress_bar = original
    task = seen["bar"].tasks[0]  # type: ignore[union-attr]
    assert (task.completed, task.total) == (2, 2)


def test_the_model_catalogue_matches_the_registry() -> None:
    from tasks.model_catalog import MODEL_MODULES
    from tasks.models.base import _REGISTRY, model_names

    assert sorted(BUILTIN_MODELS) == model_names() == sorted(MODEL_MODULES)
    for name, module in MODEL_MODULES.items():  # each name is registered by the module the catalogue names
        assert _REGISTRY[name].__module__ == module, name
