"""Retry and cache policy shared by every Prefect task.

Rules (DESIGN.md):
- retry only transient errors: :class:`~tasks.errors.TransientError`, connection resets and
  time-outs, HTTP 429/5xx, a locked database. Bad data is never retried;
- cache on partition keys plus a content hash of the inputs. Task entry points therefore take only
  plain parameters (symbol, window, ``data_version`` string, warehouse path), never a DataFrame, and the
  ``INPUTS`` policy hashes exactly those.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from tasks.errors import TransientError

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


#: Cache policy for partition tasks: the task's plain inputs (partition keys + data version) and its
#: source code, so editing a task's code never serves results computed by the old code.
PARTITION_CACHE: CachePolicy = INPUTS + TASK_SOURCE

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


def content_hash(*parts: object) -> str:
    """Stable short hash of JSON-able parts (used as a data version)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
