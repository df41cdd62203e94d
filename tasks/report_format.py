"""Cells, tables and the plotting backend shared by the report writers (:mod:`tasks.report`,
:mod:`tasks.report_risk`).

Every text cell that comes from data is escaped for markdown and defused against spreadsheet
formula injection (a leading ``= + - @`` gets a quote), so a hostile symbol or error message cannot
become a live formula or break the table.
"""

from __future__ import annotations

import math
import re
from typing import Any

import polars as pl

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """Markdown-safe, formula-safe text of one table cell."""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    text = str(value).replace("\n", " ").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    if text.startswith(_FORMULA_START) and not _is_number(text):
        text = "'" + text
    return text


#: A number, optionally with the unit the report prints after it (``-15.8%``, ``-1.379 Sharpe``).
_NUMBER_WITH_UNIT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?(%|x| pts| Sharpe)?$")


def _is_number(text: str) -> bool:
    return bool(_NUMBER_WITH_UNIT.match(text))


def md_table(frame: pl.DataFrame, columns: list[str] | None = None, red_rows: set[int] | None = None) -> str:
    """A markdown table; rows in ``red_rows`` are wrapped in a red span (GitHub shows bold instead)."""
    cols = columns or frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for i, row in enumerate(frame.select(cols).iter_rows()):
        cells = [safe_cell(v) for v in row]
        if red_rows and i in red_rows:
            cells[0] = f'<span style="color:red">**{cells[0]}** (loses to HAR-RV)</span>'
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plt_module() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pct_cell(col: str) -> pl.Expr:
    """A share column as a percent string with two decimals (``n/a`` when missing)."""
    return (
        pl.when(pl.col(col).is_null() | pl.col(col).is_nan())
        .then(pl.lit("n/a"))
        .otherwise((pl.col(col) * 100).round(2).cast(pl.String) + "%")
    )
