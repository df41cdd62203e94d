"""Benchmark: a realized-measure user's full evaluation, 6 indices x about 5 years of test days.

Issue 11's budget: the Oxford-Man path (`volrisk ingest realized` -> features -> `volrisk evaluate
IDX... --window rolling --train-size 1000 --refit-every 22`, every model, the ensemble and the VaR
tables) on 6 indices with ~5 years of test days must finish in under 30 minutes on 2 cores.

The panel is synthetic (the Oxford-Man file is kept for acceptance and not used here): six indices on
six exchange calendars (New York, London, Frankfurt, Tokyo, Hong Kong, Mumbai), 2011-2021, written in
the Oxford-Man layout with each exchange's UTC offset by :mod:`tasks.synthetic_panel` (seed 11, its
default parameters, loading 1): log RV follows a HAR recursion with a common AR(1) market factor and
leverage; returns are Student-t scaled by the RV; bv and the downside semivariance are drawn around it.
``BENCH_TEST_YEARS`` (default 5) sets the test window; ``BENCH_MODELS`` (comma list) restricts the
models (default: every model); ``BENCH_RUNNER`` (``auto``, the default, as ``volrisk evaluate``; or
``thread``/``process``) and ``BENCH_FOLDS_PER_TASK`` (default 10) set where and in what blocks the
folds run. Prints each stage's wall time, the fold count and task count, and
the ratio of the total to the 30-minute budget (the reference of this benchmark).

Run: ``.venv/bin/python bench/realized.py`` (``make bench`` runs it with the others).
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import peak_rss_mb  # noqa: E402

from tasks.synthetic_panel import PanelSymbol, oxfordman_csv, simulate_panel  # noqa: E402

#: (symbol, calendar, mean annualised volatility)
INDICES = (
    ("SYN_SPX", "XNYS", 0.17),
    ("SYN_FTSE", "XLON", 0.16),
    ("SYN_GDAXI", "XFRA", 0.20),
    ("SYN_N225", "XTKS", 0.21),
    ("SYN_HSI", "XHKG", 0.22),
    ("SYN_BSESN", "XBOM", 0.18),
)
FIRST, LAST = date(2011, 1, 1), date(2021, 12, 31)
BUDGET_S = 30 * 60


def write_panel(path: Path, seed: int = 11) -> int:
    """The synthetic six-index panel (:mod:`tasks.synthetic_panel`) in the Oxford-Man layout; its rows."""
    specs = [PanelSymbol(symbol, calendar, vol) for symbol, calendar, vol in INDICES]
    panel = simulate_panel(specs, FIRST, LAST, seed=seed)
    path.write_bytes(gzip.compress(oxfordman_csv(panel).encode("utf-8"), mtime=0))
    return panel.height


def _register(wh: Path) -> None:
    from warehouse.catalog import Instrument, upsert_instrument
    from warehouse.resource import Warehouse

    with Warehouse.at(wh).writing() as con:
        for symbol, calendar, _ in INDICES:
            upsert_instrument(con, Instrument(symbol, "equity_index", calendar))


def main() -> None:
    from flows.evaluate_flow import evaluate_flow
    from flows.features_flow import features_flow
    from flows.ingest_flow import ingest_flow
    from tasks.experiment import ExperimentSpec

    years = int(os.environ.get("BENCH_TEST_YEARS", "5"))
    runner_kind = os.environ.get("BENCH_RUNNER", "auto")
    per_task = int(os.environ.get("BENCH_FOLDS_PER_TASK", "10"))
    models = [m for m in os.environ.get("BENCH_MODELS", "").split(",") if m] or None
    tmp = Path(tempfile.mkdtemp(prefix="volrisk-bench-realized-"))
    panel, wh = tmp / "panel_oxfordman.csv.gz", tmp / "warehouse.duckdb"
    symbols = [s for s, *_ in INDICES]
    t0 = time.perf_counter()
    rows = write_panel(panel)
    t_panel = time.perf_counter()
    _register(wh)  # `volrisk instruments set`: synthetic symbols are no known codes
    out = ingest_flow(symbols=[], source="realized", paths=[str(panel)], warehouse=str(wh))
    assert all(r["status"] == "success" for r in out), out
    t_ingest = time.perf_counter()
    feats = features_flow(symbols=symbols, warehouse=str(wh))
    assert not feats["failed"], feats["failed"]
    t_feats = time.perf_counter()
    test_start = date(LAST.year - years + 1, 1, 1).isoformat()
    spec = ExperimentSpec(symbols=symbols, models=models, test_start=test_start, window="rolling",
                          train_size=1000, refit_every=22, name="bench-realized", runner=runner_kind,  # type: ignore[arg-type]
                          folds_per_task=per_task)  # fmt: skip
    result = evaluate_flow(spec, warehouse=str(wh), reports_dir=str(tmp / "reports"))
    t_eval = time.perf_counter()
    total = t_eval - t0
    folds = sum(json_folds(result).values())
    print(f"panel       {rows:,} rows, 6 indices, {FIRST}..{LAST}      {t_panel - t0:7.1f} s")
    print(f"ingest      realized import                             {t_ingest - t_panel:7.1f} s")
    print(f"features    from realized measures                      {t_feats - t_ingest:7.1f} s")
    print(f"evaluate    {years}y test, rolling 1000, refit 22, {folds} folds per model, {per_task} per task, "
          f"{result['runner']} runner, "
          f"{result['statuses']}  {t_eval - t_feats:7.1f} s")  # fmt: skip
    print(f"total       {total:7.1f} s = {total / 60:.1f} min; budget 30 min; ratio {total / BUDGET_S:.2f} "
          f"({'PASS' if total <= BUDGET_S else 'MISS'}); peak RSS {peak_rss_mb():,.0f} MiB")  # fmt: skip
    print(f"report      {result['report']}")


def json_folds(result: dict[str, object]) -> dict[str, int]:
    """Folds per symbol, from the evaluation's JSON report."""
    import json

    return dict(json.loads(Path(str(result["json"])).read_text())["params"]["folds"])


if __name__ == "__main__":
    main()
