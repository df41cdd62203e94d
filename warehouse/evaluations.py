"""Evaluation manifests (migration 005): which model runs an evaluation scored, and its outcome.

One row per evaluation name. :func:`write_evaluation` upserts it (``created_at`` is set once), so an
evaluation rerun under the same name replaces its manifest. Every value is a bound parameter.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from core.errors import ConfigError

_COLS = ("name", "params", "runs", "stacking", "report", "passed_gates")
_Q_UPSERT = (
    "INSERT INTO evaluations (name, params, runs, stacking, report, passed_gates, created_at, updated_at) "
    "VALUES (?, ?::JSON, ?::JSON, ?::JSON, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
    "params = excluded.params, runs = excluded.runs, stacking = excluded.stacking, "
    "report = excluded.report, passed_gates = excluded.passed_gates, updated_at = excluded.updated_at"
)
_Q_ONE = (
    "SELECT name, params::VARCHAR, runs::VARCHAR, stacking::VARCHAR, report, passed_gates, created_at, "
    "updated_at FROM evaluations WHERE name = ?"
)
_Q_LATEST = (
    "SELECT name, params::VARCHAR, runs::VARCHAR, stacking::VARCHAR, report, passed_gates, created_at, "
    "updated_at FROM evaluations ORDER BY updated_at DESC LIMIT 1"
)
_Q_FIRST_PASSED = (
    "SELECT name, params::VARCHAR, runs::VARCHAR, stacking::VARCHAR, report, passed_gates, created_at, "
    "updated_at FROM evaluations WHERE passed_gates ORDER BY created_at LIMIT 1"
)


def _name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ConfigError(
            f"evaluation name must be a non-empty string of at most 100 characters; got {name!r}"
        )
    return name


def write_evaluation(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: dict[str, Any],
    runs: dict[str, Any],
    stacking: dict[str, Any] | None = None,
    report: str | None = None,
    passed_gates: bool | None = None,
) -> None:
    """Insert or replace the manifest of evaluation ``name``."""
    now = datetime.now(UTC)
    con.sql(
        _Q_UPSERT,
        params=[
            _name(name),
            json.dumps(params, default=str),
            json.dumps(runs, default=str),
            None if stacking is None else json.dumps(stacking, default=str),
            report,
            passed_gates,
            now,
            now,
        ],
    )


def _parse(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip((*_COLS, "created_at", "updated_at"), row, strict=True))
    for key in ("params", "runs", "stacking"):
        if out[key] is not None:
            out[key] = json.loads(out[key])
    return out


def read_evaluation(con: duckdb.DuckDBPyConnection, name: str | None = None) -> dict[str, Any] | None:
    """The manifest of evaluation ``name`` (the latest one when ``name`` is None), or None."""
    rows = con.sql(_Q_LATEST).fetchall() if name is None else con.sql(_Q_ONE, params=[_name(name)]).fetchall()
    return _parse(rows[0]) if rows else None


def first_passed_evaluation(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The earliest evaluation that passed all its gates (the baseline later reports compare with)."""
    rows = con.sql(_Q_FIRST_PASSED).fetchall()
    return _parse(rows[0]) if rows else None
