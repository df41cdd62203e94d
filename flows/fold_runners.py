"""Where the walk-forward's fold blocks run: threads of this process, or a pool of worker processes.

Threads are the default for small evaluations: nothing to start. But torch fits take turns inside one
process (``flows.steps.evaluate.TORCH_LOCK``), so on threads the neural models use one core. A
``ProcessPoolTaskRunner`` gives each worker process its own torch generator, so torch fits run side
by side, one per core; starting the workers (a fresh interpreter importing Prefect, polars and
torch) costs a few seconds, which pays off once the neural folds number a few dozen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from core.errors import ConfigError

RunnerKind = Literal["auto", "thread", "process"]
RUNNER_KINDS = ("auto", "thread", "process")
#: With ``auto``, the process pool is used from this many torch-model folds on (about 15 s of fits
#: per core at the default sizes, against ~5 s to start the workers).
PROCESS_MIN_TORCH_FOLDS = 40
#: Thread-count variables a worker process sets to 1 (one fit per core; BLAS/OpenMP must not fan out).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def eval_workers() -> int:
    """Fold workers: one per core (at least 2), or ``$VOLRISK_EVAL_WORKERS``."""
    raw = os.environ.get("VOLRISK_EVAL_WORKERS", "0")
    try:
        workers = int(raw)
    except ValueError:
        raise ConfigError(f"VOLRISK_EVAL_WORKERS must be a whole number; got {raw!r}") from None
    return workers if workers > 0 else max(2, os.cpu_count() or 2)


def thread_runner() -> Any:
    """Fold tasks in threads, at most one per core: hundreds of fit threads only thrash."""
    return ThreadPoolTaskRunner(max_workers=eval_workers())


def choose_runner(kind: str, device: str, torch_folds: int, workers: int) -> Literal["thread", "process"]:
    """The runner ``kind`` resolves to.

    ``auto`` picks processes when there are at least two workers, the fits run on the CPU (an
    accelerator is shared better by one process) and at least :data:`PROCESS_MIN_TORCH_FOLDS`
    torch-model folds are planned; threads otherwise.
    """
    if kind not in RUNNER_KINDS:
        raise ConfigError(f"fold runner {kind!r}: expected one of {list(RUNNER_KINDS)}")
    if kind != "auto":
        return kind  # type: ignore[return-value]
    if workers < 2 or torch_folds < PROCESS_MIN_TORCH_FOLDS or _accelerated(device):
        return "thread"
    return "process"


def _accelerated(device: str) -> bool:
    if device.startswith(("cuda", "mps")):
        return True
    if device != "auto":
        return False
    import torch

    return bool(torch.cuda.is_available() or torch.backends.mps.is_available())


def single_threaded_worker() -> None:
    """Initializer of a fold worker process: BLAS/OpenMP on one thread (set before they load)."""
    for name in _THREAD_VARS:
        os.environ.setdefault(name, "1")


@contextmanager
def fold_runner(kind: Literal["thread", "process"]) -> Iterator[Any]:
    """``None`` for threads (the flow's own runner), or a started process pool for the fold blocks.

    The workers report to this process's Prefect API. Without a configured ``PREFECT_API_URL``
    Prefect runs a temporary server for this process, and each worker would start one of its own
    (seconds each, and their runs would be nowhere to see); the workers get its address instead.
    """
    if kind == "thread":
        yield None
        return
    url = _temporary_api_url()
    before = os.environ.get("PREFECT_API_URL")
    if url:
        os.environ["PREFECT_API_URL"] = url  # the runner hands os.environ to its workers
    try:
        with ProcessPoolTaskRunner(max_workers=eval_workers(), initializer=single_threaded_worker) as runner:
            yield runner
    finally:
        if url and before is None:
            os.environ.pop("PREFECT_API_URL", None)


def _temporary_api_url() -> str | None:
    """The address of the temporary Prefect server of this process (None when an API is configured)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return None
    with get_client(sync_client=True) as client:
        return str(client.api_url)
