"""Run ``volrisk`` in a child process with a test-only twist (see tests/flows/cli/test_cli_process.py).

``python _child.py MODE ARGS...``:

* ``plain``: nothing changed;
* ``no-heavy``: at exit, say whether prefect or torch was imported, so a command that answers an
  argument error proves it did so before any flow, server or model code was loaded;
* ``sigint-after-first``: a real SIGINT is sent to this process when the first partition is written;
* ``interrupt-in-write``: Ctrl-C lands inside the second partition's transaction, after its rows
  were inserted and before COMMIT;
* ``error-in-flow``: the file checks are skipped so a missing file is found inside the flow run
  (``--prefect``), where Prefect keeps the error until exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import Any


def _report_heavy_imports() -> None:
    loaded = sorted(m for m in ("prefect", "torch") if m in sys.modules)
    if loaded:
        sys.stderr.write(f"\n{', '.join(loaded)} imported before the arguments were checked\n")


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "no-heavy":
        atexit.register(_report_heavy_imports)
    elif mode == "sigint-after-first":
        from flows import progress

        def kill(stage: str, total: int, item: dict[str, Any] | None) -> None:
            if item is not None:
                os.kill(os.getpid(), signal.SIGINT)

        progress._listeners.append(kill)
    elif mode == "interrupt-in-write":
        import warehouse.bars as bars

        calls = {"n": 0}
        insert = bars._Q_INSERT_STAGE

        class _Con:
            def __init__(self, con: Any) -> None:
                self._con = con

            def __getattr__(self, name: str) -> Any:
                return getattr(self._con, name)

            def sql(self, query: str, *a: Any, **k: Any) -> Any:
                out = self._con.sql(query, *a, **k)
                if query == insert:
                    calls["n"] += 1
                    if calls["n"] == 2:
                        raise KeyboardInterrupt
                return out

        original = bars.upsert_bars
        bars.upsert_bars = lambda con, frame, run_id: original(_Con(con), frame, run_id)  # type: ignore[assignment]
        import flows.steps.ingest

        flows.steps.ingest.upsert_bars = bars.upsert_bars  # type: ignore[attr-defined]
    elif mode == "error-in-flow":
        from flows import preflight

        preflight.files = lambda paths, what="file": list(paths)  # type: ignore[assignment]
    from flows.cli import app

    app(args, prog_name="volrisk")


if __name__ == "__main__":
    main()
