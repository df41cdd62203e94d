"""Retry and cache policy shared by every Prefect task.

Rules (DESIGN.md):
- retry only transient errors: :class:`~core.errors.TransientError`, connection resets and
  time-outs, HTTP 429/5xx, a locked database. Bad data is never retried;
- cache on partition keys plus a content hash of the inputs. Task entry points therefore take only
  plain parameters (symbol, window, ``data_version`` string, warehouse path), never a DataFrame, and the
  ``INPUTS`` policy hashes exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from core.errors import TransientError
from core.hashing import files_hash, source_root

_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
_TRANSIENT_TEXT = (
    "connection reset",
    "timed out",
    "timeout",
    "temporarily unavailable",
    "database is locked",
)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: network faults, HTTP 429/5xx, a locked database."""
    if isinstance(exc, TransientError | ConnectionError | TimeoutError):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int) and status in _TRANSIENT_HTTP:
        return True
    text = str(exc).lower()
    return type(exc).__name__ in {"ReadTimeout", "ConnectTimeout", "ConnectError"} or any(
        t in text for t in _TRANSIENT_TEXT
    )


def retry_transient_only(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure is transient."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:  # noqa: BLE001 - we inspect, not swallow
        return is_transient(exc)
    return False


#: The data path's code: what ingest, quality and features partitions compute depends on it.
STAGE_CODE_FILES = (
    "tasks/ingest.py",
    "flows/steps/ingest.py",
    "tasks/bar_checks.py",
    "tasks/features.py",
    "tasks/quality.py",
    "tasks/quality_bar_scores.py",
    "tasks/quality_calendar.py",
    "tasks/quality_gaps.py",
    "tasks/quality_gx.py",
    "tasks/quality_policy.py",
    "tasks/quality_results.py",
    "tasks/quality_suites.py",
    "tasks/quality_summary.py",
    "tasks/quality_windows.py",
    "tasks/calendars.py",
    "core/schema.py",
    "flows/steps/quality.py",
    "warehouse/bars.py",
    "warehouse/features.py",
    "warehouse/quality.py",
)


def stage_code_hash(root: Path | None = None) -> str:
    """Content hash of :data:`STAGE_CODE_FILES` and ``tasks/sources/*.py`` (under ``root``: the repo).

    The repository's own hash is computed once per process.
    """
    return _hash_tree(root) if root is not None else _repo_stage_code_hash()


@lru_cache(maxsize=1)
def _repo_stage_code_hash() -> str:
    return _hash_tree(source_root())


def _hash_tree(root: Path) -> str:
    return files_hash(root, [*STAGE_CODE_FILES, *sorted((root / "tasks" / "sources").glob("*.py"))])


@dataclass
class StageCode(CachePolicy):
    """Cache-key part: :func:`stage_code_hash`.

    ``TASK_SOURCE`` hashes only the task function's own body; a partition's result also depends on
    the parsers, checks and feature definitions it calls, so editing one of them must not serve
    results computed by the old code (a quality check changed, a month stayed blocked from cache).
    """

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        """The stage code's hash, whatever the inputs."""
        return stage_code_hash()


#: Cache policy for partition tasks: the task's plain inputs (partition keys + data version), its
#: source code and the stage code it calls, so editing either never serves results of the old code.
PARTITION_CACHE: CachePolicy = INPUTS + TASK_SOURCE + StageCode()

#: Defaults every partition task passes to ``@task``.
TASK_DEFAULTS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [1, 4, 16],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient_only,
    "cache_policy": PARTITION_CACHE,
    "cache_expiration": timedelta(days=30),
    "persist_result": True,
}
