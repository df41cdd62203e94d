"""Benchmark: a realized-measure user's full evaluation, 6 indices x about 5 years of test days.

Issue 11's budget: the Oxford-Man path (`volrisk ingest realized` -> features -> `volrisk evaluate
IDX... --window rolling --train-size 1000 --refit-every 22`, every model, the ensemble and the VaR
tables) on 6 indices with ~5 years of test days must finish in under 30 minutes on 2 cores.

The panel is synthetic (the Oxford-Man file is kept for acceptance and not used here): six indices on
six exchange calendars (New York, London, Frankfurt, Tokyo, Hong Kong, Mumbai), 2011-2021, written in
the Oxford-Man layout with each exchange's UTC offset. Log RV follows a HAR recursion with a common
market factor and leverage; returns are Student-t scaled by the RV; bv and the downside semivariance
are drawn around it. ``BENCH_TEST_YEARS`` (default 5) sets the test window; ``BENCH_MODELS`` (comma
list) restricts the models (default: every model); ``BENCH_RUNNER`` (``auto``, the default, as
``volrisk evaluate``; or ``thread``/``process``) and ``BENCH_FOLDS_PER_TASK`` (default 10) set where
and in what blocks the folds run. Prints each stage's wall time, the fold count and task count, and
the ratio of the total to the 30-minute budget (the reference of this benchmark).

Run: ``.venv/bin/python bench/realized.py`` (``make bench`` runs it with the others).
"""

from __future__ import annotations

import gzip
import math
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import peak_rss_mb  # noqa: E402

from tasks.calendars import session_bounds, sessions_between  # noqa: E402

#: (symbol, calendar, time zone of the local date stamp, mean annualised volatility)
INDICES = (
    ("SYN_SPX", "XNYS", "America/New_York", 0.17),
    ("SYN_FTSE", "XLON", "Europe/London", 0.16),
    ("SYN_GDAXI", "XFRA", "Europe/Berlin", 0.20),
    ("SYN_N225", "XTKS", "Asia/Tokyo", 0.21),
    ("SYN_HSI", "XHKG", "Asia/Hong_Kong", 0.22),
    ("SYN_BSESN", "XBOM", "Asia/Kolkata", 0.18),
)
FIRST, LAST = date(2011, 1, 1), date(2021, 12, 31)
BUDGET_S = 30 * 60
HEADER = ",Symbol,rv5,bv,rsv,open_to_close,open_price,close_price,nobs"


def _series(n: int, vol: float, market: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One index: HAR log-RV with a common factor and leverage, Student-t returns, bv and rsv."""
    mu = math.log(vol**2 / 252)
    logrv = np.full(n, mu)
    ret = np.zeros(n)
    for t in range(22, n):
        har = 0.35 * logrv[t - 1] + 0.35 * logrv[t - 5 : t].mean() + 0.2 * logrv[t - 22 : t].mean()
        lev = -8.0 * min(ret[t - 1], 0.0)
        logrv[t] = 0.1 * mu + har + 0.5 * market[t] + 0.3 * rng.standard_normal() + lev
        ret[t] = math.exp(logrv[t] / 2) * rng.standard_t(6) / math.sqrt(1.5)
    rv = np.exp(logrv)
    return {
        "rv": rv,
        "bv": rv * np.exp(-0.05 + 0.1 * rng.standard_normal(n)),
        "rsv": rv * np.clip(0.5 - 20 * ret + 0.05 * rng.standard_normal(n), 0.05, 0.95),
        "ret": ret,
    }


def write_panel(path: Path, seed: int = 11) -> int:
    """The synthetic six-index panel in the Oxford-Man layout; returns the row count."""
    rng = np.random.default_rng(seed)
    grid = sessions_between("24x7", FIRST, LAST)
    market = dict(zip(grid, 0.25 * rng.standard_normal(len(grid)), strict=True))
    lines = [HEADER]
    for symbol, calendar, tz, vol in INDICES:
        days = sessions_between(calendar, FIRST, LAST)
        s = _series(len(days), vol, np.array([market[d] for d in days]), rng)
        closes = 1000 * np.exp(np.cumsum(s["ret"]))
        ends = session_bounds(calendar, days)["close"].to_list()
        for i, d in enumerate(days):
            off = ends[i].astimezone(ZoneInfo(tz)).strftime("%z")
            opened = closes[i] / math.exp(s["ret"][i])
            vals = (s["rv"][i], s["bv"][i], s["rsv"][i], s["ret"][i], opened, closes[i], 78)
            lines.append(",".join([f"{d} 00:00:00{off[:3]}:{off[3:]}", symbol, *(f"{v:.10g}" for v in vals)]))
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines) - 1


def _register(wh: Path) -> None:
    from warehouse.catalog import Instrument, upsert_instrument
    from warehouse.resource import Warehouse

    with Warehouse.at(wh).writing() as con:
        for symbol, calendar, _, _ in INDICES:
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
                          train_size=1000, refit_every=22, name="bench-realized", runner=runner_kind,
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
