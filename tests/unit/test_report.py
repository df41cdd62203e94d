"""Report cells are markdown-safe and cannot become spreadsheet formulas."""

from __future__ import annotations

import math

import polars as pl

from tasks.report import md_table, report_paths, safe_cell


def test_formula_injection_is_defused_and_pipes_escaped() -> None:
    hostile = "=cmd|' /C calc'!A0"
    cell = safe_cell(hostile)
    assert cell.startswith("'=") and "\\|" in cell
    for lead in ("+1+cmd", "-2+3", "@SUM(A1)"):
        assert safe_cell(lead).startswith("'")
    assert safe_cell("-0.5") == "-0.5"  # a negative number stays a number
    assert safe_cell(math.nan) == "n/a"
    assert safe_cell("<script>") == "&lt;script&gt;"


def test_md_table_keeps_its_shape_with_hostile_cells_and_marks_red_rows() -> None:
    frame = pl.DataFrame({"model": ["har", "=evil|x"], "qlike": [0.5, 0.7]})
    table = md_table(frame, red_rows={1})
    lines = table.splitlines()
    assert len(lines) == 4
    assert all(line.count(" | ") == 1 for line in lines[2:])  # escaped pipes do not add columns
    assert "loses to HAR-RV" in lines[3] and "color:red" in lines[3]
    assert "loses" not in lines[2]


def test_report_names_are_sanitised(tmp_path) -> None:  # type: ignore[no-untyped-def]
    md, js, folder = report_paths(tmp_path, "../../etc/passwd weekly")
    assert md.parent == tmp_path and js.parent == tmp_path and folder.parent == tmp_path
    assert md.name.startswith("eval-") and md.suffix == ".md" and "/" not in md.name[5:]
