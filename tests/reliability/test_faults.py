"""Faults at the network boundary: transient errors are retried with backoff, others fail their partition.

Only the network is faked: ``yfinance.Ticker.history`` (the one call that reaches Yahoo) is replaced by
recorded responses of the real shape (tests/recorded_yahoo.py) or by the exceptions yfinance and
curl_cffi really raise (``YFRateLimitError`` for HTTP 429, ``HTTPError`` carrying a 503 response,
``ConnectionError`` "Connection reset by peer"). Everything above it (volrisk's downloader, its error
classification, the Prefect task's ``retry_condition_fn`` and retry delays, the warehouse write) is real.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yfinance as yf
from curl_cffi.requests import Response
from curl_cffi.requests import exceptions as curl_exc
from recorded_yahoo import load_recorded
from yfinance.exceptions import YFRateLimitError

import flows.steps.ingest as ingest_steps_module
from flows.ingest_flow import ingest_flow
from flows.steps.ingest import ingest_yfinance_task
from warehouse.bars import bars_checksum
from warehouse.catalog import duplicate_bar_keys
from warehouse.db import session

pytestmark = pytest.mark.usefixtures("prefect_harness")

START, END = date(2025, 3, 6), date(2025, 3, 8)  # the recorded BTC-USD 1h response: 48 bars
FAST_RETRIES = [0.2, 0.8, 3.2]  # same backoff shape as the real policy [1, 4, 16], shorter


def _http_error(status: int) -> Exception:
    response = Response()
    response.status_code = status
    return curl_exc.HTTPError(f"HTTP Error {status}: Service Unavailable", response=response)


TRANSIENT: dict[str, Callable[[], Exception]] = {
    "connection-reset": lambda: curl_exc.ConnectionError("Recv failure: Connection reset by peer", 56),
    "http-429": YFRateLimitError,
    "http-503": lambda: _http_error(503),
}


class FakeYahoo:
    """``Ticker.history`` stand-in: per-symbol scripted failures, then the recorded response."""

    def __init__(self, failures: dict[str, list[Exception | None]]) -> None:
        flat = load_recorded("btc-usd_1h")
        self.frame = flat.droplevel("Ticker", axis=1)  # Ticker.history returns flat columns
        self.failures = failures
        self.calls: dict[str, list[float]] = {}

    def history(self, ticker: Any, **kwargs: Any) -> pd.DataFrame:
        symbol = ticker.ticker
        self.calls.setdefault(symbol, []).append(time.monotonic())
        script = self.failures.get(symbol, [])
        exc = script.pop(0) if script else None  # None in the script: answer normally
        if exc is not None:
            raise exc
        start, end = pd.Timestamp(kwargs["start"]), pd.Timestamp(kwargs["end"])
        index = pd.DatetimeIndex(self.frame.index)
        return self.frame.loc[(index >= start) & (index < end)].copy()


def _install(monkeypatch: pytest.MonkeyPatch, fake: FakeYahoo, retry_delays: list[float] | None) -> None:
    monkeypatch.setattr(yf.Ticker, "history", lambda self, **kw: fake.history(self, **kw))
    if retry_delays is not None:
        monkeypatch.setattr(
            ingest_steps_module,
            "ingest_yfinance_task",
            ingest_yfinance_task.with_options(retry_delay_seconds=retry_delays, retry_jitter_factor=None),
        )


def _bar_count(wh: Path, symbol: str) -> int:
    with session(wh, read_only=True) as con:
        assert duplicate_bar_keys(con) == 0
        return int(con.sql("SELECT count(*) FROM bars WHERE symbol = ?", params=[symbol]).fetchall()[0][0])


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_flaky_source_is_retried_with_backoff_and_lands_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # The real retry policy ([1, 4, 16] s with jitter) for one kind; a shorter one of the same shape else.
    delays = None if kind == "connection-reset" else FAST_RETRIES
    fake = FakeYahoo({"BTC-USD": [TRANSIENT[kind](), TRANSIENT[kind](), None]})
    _install(monkeypatch, fake, delays)
    wh = tmp_path / "w.duckdb"
    rows = ingest_flow(
        symbols=["BTC-USD"], source="yfinance", interval="1h", start=START, end=END, warehouse=str(wh)
    )
    assert [r["status"] for r in rows] == ["success"], rows
    assert rows[0]["new"] == 48
    calls = fake.calls["BTC-USD"]
    assert len(calls) == 3, "two failures, then success"
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    first, second = (1.0, 4.0) if delays is None else (FAST_RETRIES[0], FAST_RETRIES[1])
    assert gaps[0] >= first * 0.5 and gaps[1] >= second * 0.5, gaps  # waited (jitter is at most +-50%)
    assert gaps[1] > gaps[0], f"backoff grows: {gaps}"
    assert _bar_count(wh, "BTC-USD") == 48, "the data arrives exactly once"
    again = ingest_flow(
        symbols=["BTC-USD"], source="yfinance", interval="1h", start=START, end=END, warehouse=str(wh)
    )
    assert again[0]["status"] == "cached" and _bar_count(wh, "BTC-USD") == 48


def test_always_failing_source_fails_its_partition_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeYahoo({"ETH-USD": [_http_error(503) for _ in range(10)] + [None]})
    _install(monkeypatch, fake, FAST_RETRIES)
    wh = tmp_path / "w.duckdb"
    rows = ingest_flow(
        symbols=["BTC-USD", "ETH-USD"],
        source="yfinance",
        interval="1h",
        start=START,
        end=END,
        warehouse=str(wh),
    )
    by_symbol = {r["symbol"]: r for r in rows}
    assert by_symbol["BTC-USD"]["status"] == "success" and by_symbol["BTC-USD"]["new"] == 48
    failed = by_symbol["ETH-USD"]
    assert failed["status"] == "failed"
    assert "TransientError" in failed["error"] and "503" in failed["error"], failed["error"]
    assert len(fake.calls["ETH-USD"]) == 1 + len(FAST_RETRIES), "retried up to the limit, then failed"
    assert _bar_count(wh, "BTC-USD") == 48
    assert _bar_count(wh, "ETH-USD") == 0, "no partial rows for the failed partition"


def test_a_data_error_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed response (no price columns) fails at once with the reason; no retry, no rows."""
    fake = FakeYahoo({})
    fake.frame = fake.frame.drop(columns=["Open", "High"])
    _install(monkeypatch, fake, FAST_RETRIES)
    wh = tmp_path / "w.duckdb"
    rows = ingest_flow(
        symbols=["BTC-USD"], source="yfinance", interval="1h", start=START, end=END, warehouse=str(wh)
    )
    assert rows[0]["status"] == "failed"
    assert "DataError" in rows[0]["error"] and "Open" in rows[0]["error"], rows[0]["error"]
    assert len(fake.calls["BTC-USD"]) == 1, "bad data is never retried"
    assert _bar_count(wh, "BTC-USD") == 0


def test_bad_rows_in_a_response_are_quarantined_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeYahoo({})
    fake.frame = fake.frame.copy()
    fake.frame.iloc[3, fake.frame.columns.get_loc("High")] = -1.0  # high < low: a bad row, not a bad file
    _install(monkeypatch, fake, FAST_RETRIES)
    wh = tmp_path / "w.duckdb"
    rows = ingest_flow(
        symbols=["BTC-USD"], source="yfinance", interval="1h", start=START, end=END, warehouse=str(wh)
    )
    assert rows[0]["status"] == "success" and rows[0]["new"] == 47 and rows[0]["quarantined"] == 1
    assert len(fake.calls["BTC-USD"]) == 1
    with session(wh, read_only=True) as con:
        reason = con.sql("SELECT reason FROM quarantine").fetchall()
    assert len(reason) == 1 and reason[0][0], reason


def test_a_write_that_fails_mid_transaction_leaves_no_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert has run but COMMIT has not: the failure rolls the whole partition back."""
    import warehouse.bars as bars_module
    from flows.steps.ingest import write_partition
    from tasks.sources.files import read_bars_file

    sample = Path(__file__).resolve().parents[2] / "data" / "samples" / "nt-spy-minute-2011-01.csv"
    parsed = read_bars_file(sample, symbol="SPY", fmt="ninjatrader")
    wh = tmp_path / "w.duckdb"

    def boom(**_: int) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(bars_module, "UpsertStats", boom)
    with pytest.raises(OSError, match="No space left"):
        write_partition(
            wh,
            parsed.bars,
            parsed.quarantine,
            source="ninjatrader",
            symbol="SPY",
            interval="1m",
            location=str(sample),
            checksum=parsed.checksum,
            run_id="r1",
        )
    monkeypatch.undo()
    with session(wh, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM bars").fetchall()[0][0] == 0
        status = con.sql("SELECT status, error FROM ingest_log").fetchall()
    assert status == [("failed", "No space left on device")]
    write_partition(
        wh,
        parsed.bars,
        parsed.quarantine,
        source="ninjatrader",
        symbol="SPY",
        interval="1m",
        location=str(sample),
        checksum=parsed.checksum,
        run_id="r2",
    )
    with session(wh, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM bars").fetchall()[0][0] == parsed.bars.height
        assert bars_checksum(con).startswith(f"{parsed.bars.height}:")
