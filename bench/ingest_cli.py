"""One vendor file through the command line: ``volrisk ingest file`` of 45,031 real 1-minute bars.

What a user waits for, cold: a fresh warehouse and a fresh Prefect home each run, the interpreter
start and imports included. Two ways, interleaved, ``REPEATS`` times each, medians compared:

* volrisk's default with no Prefect server configured: the ingest task runs in-process;
* the reference, the old path (``--prefect``): a flow run, which first starts Prefect's temporary
  server (5-20 s on this machine).

Target (issue 14): the default under 8 s on a quiet 2-core machine. Also printed: the in-process
breakdown (imports, parse + write) so the remaining time has names.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import median  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FILE = REPO.parent / "shared" / "data" / "btc_perp_1m_ftx_202201" / "btc-perp-20211231-20220201_1m.csv"
REPEATS = 3
TARGET_S = 8.0


def run_cli(extra: list[str]) -> float:
    """Wall seconds of one cold ``volrisk ingest file`` in a fresh home."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "VOLRISK_HOME": home, "PREFECT_HOME": f"{home}/prefect",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
        env.pop("PREFECT_API_URL", None)
        cmd = [sys.executable, "-m", "flows.cli", "ingest", "file", str(FILE), "--symbol", "BTC-PERP", *extra]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t0
        if out.returncode != 0 or "45,031" not in out.stdout:
            raise SystemExit(f"ingest failed ({out.returncode}): {out.stderr[-2000:]}")
        return wall


def breakdown() -> tuple[float, float]:
    """(seconds to import the CLI and the ingest task, seconds to parse + write the file) in-process."""
    code = (
        "import time,tempfile;t=time.perf_counter();import flows.cli;"
        "from flows.steps.ingest import ingest_file_task;i=time.perf_counter()-t;"
        "from flows.ingest_flow import IngestRequest,ingest_direct;"
        "d=tempfile.mkdtemp();t=time.perf_counter();"
        f"r=ingest_direct(IngestRequest(['BTC-PERP'],paths=[{str(FILE)!r}],warehouse=d+'/w.duckdb'));"
        "print(i,time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    imports, work = (float(x) for x in out.stdout.split())
    return imports, work


def main() -> None:
    if not FILE.is_file():
        raise SystemExit(f"{FILE} is missing (../shared/data)")
    direct, flow = [], []
    for _ in range(REPEATS):
        direct.append(run_cli([]))
        flow.append(run_cli(["--prefect"]))
    imports, work = breakdown()
    d, f = median(direct), median(flow)
    print(f"ingest file, 45,031 bars, cold, median of {REPEATS} (load {os.getloadavg()[0]:.1f}):")
    print(f"  volrisk default (in-process): {d:6.2f} s   runs {[round(x, 2) for x in direct]}")
    print(f"  reference (--prefect flow):   {f:6.2f} s   runs {[round(x, 2) for x in flow]}")
    verdict = "met" if d < TARGET_S else "MISSED"
    print(f"  speed-up vs reference: x{f / d:.1f}; target < {TARGET_S:.0f} s: {verdict}")
    print(f"  in-process breakdown: imports {imports:.2f} s, parse + write {work:.2f} s")


if __name__ == "__main__":
    main()
