"""Warehouse: migrations, the partition upsert, checksums, symbol validation and bad files."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError, WarehouseError
from core.symbols import validate_symbol
from warehouse.bars import bars_checksum, read_bars, upsert_bars
from warehouse.catalog import duplicate_bar_keys, read_quarantine, warehouse_id, write_quarantine
from warehouse.db import connect, session, writer
from warehouse.migrate import available_migrations, current_version, migrate

T0 = datetime(2021, 3, 14, 0, 0, tzinfo=UTC)


def bars(symbol: str = "BTC-USDT", n: int = 5, start: int = 0, price: float = 100.0) -> pl.DataFrame:
    ts = [T0 + timedelta(minutes=start + i) for i in range(n)]
    p = [price + i for i in range(n)]
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "interval": ["1m"] * n,
            "ts": ts,
            "open": p,
            "high": [x + 1 for x in p],
            "low": [x - 1 for x in p],
            "close": p,
            "volume": [1.0] * n,
            "source": ["test"] * n,
        }
    )


def test_migrations_apply_once_and_record_versions(warehouse_path: Path) -> None:
    con = connect(warehouse_path)
    latest = max(m.version for m in available_migrations())
    assert current_version(con) == latest
    assert migrate(con) == []  # second application is a no-op
    wid = warehouse_id(con)
    con.close()
    with session(warehouse_path) as con2:  # reopening migrates nothing and keeps the identity
        assert current_version(con2) == latest
        assert warehouse_id(con2) == wid


def test_upsert_is_idempotent_and_counts_new_updated_unchanged(warehouse_path: Path) -> None:
    with session(warehouse_path) as con:
        first = upsert_bars(con, bars(n=5), "run1")
        assert (first.new, first.updated, first.unchanged) == (5, 0, 0)
        checksum = bars_checksum(con)
        again = upsert_bars(con, bars(n=5), "run2")
        assert (again.new, again.updated, again.unchanged) == (0, 0, 5)
        assert bars_checksum(con) == checksum
        # The identical re-write did not even touch ingest_run.
        runs = con.sql("SELECT DISTINCT ingest_run FROM bars").fetchall()
        assert runs == [("run1",)]
        # Overlapping batch: 2 changed prices, 3 new rows.
        changed = bars(n=5, start=3, price=500.0)
        stats = upsert_bars(con, changed, "run3")
        assert (stats.new, stats.updated, stats.unchanged) == (3, 2, 0)
        stored = read_bars(con, "BTC-USDT", "1m")
        assert stored.height == 8
        assert stored["ts"].is_sorted() and stored["ts"].n_unique() == 8
        assert stored.filter(pl.col("ts") == T0 + timedelta(minutes=3))["open"].item() == 500.0
        assert bars_checksum(con) != checksum
        assert duplicate_bar_keys(con) == 0


def test_duplicates_in_one_batch_keep_the_last_row(warehouse_path: Path) -> None:
    batch = pl.concat([bars(n=3), bars(n=1, price=999.0)])  # minute 0 twice; the later says 999
    with session(warehouse_path) as con:
        stats = upsert_bars(con, batch, "r")
        assert stats.total == 3
        first = read_bars(con, "BTC-USDT", "1m").row(0, named=True)
        assert first["open"] == 999.0


def test_write_is_one_transaction_per_partition(
    warehouse_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warehouse.bars as wb

    with session(warehouse_path) as con:
        upsert_bars(con, bars(n=3), "r1")
        before = bars_checksum(con)

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk full")

        monkeypatch.setattr(wb, "_merge", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            upsert_bars(con, bars(n=6, price=7.0), "r2")
        assert bars_checksum(con) == before  # nothing partial survived


def test_a_write_covers_one_partition(warehouse_path: Path) -> None:
    with session(warehouse_path) as con, pytest.raises(ValueError, match="one \\(symbol, interval\\)"):
        upsert_bars(con, pl.concat([bars("AAA"), bars("BBB")]), "r")


def test_checksum_is_order_independent(warehouse_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    frame = bars(n=50)
    with session(warehouse_path) as a, session(other) as b:
        upsert_bars(a, frame, "r")
        upsert_bars(b, frame.sample(fraction=1.0, shuffle=True, seed=3), "different-run")
        assert bars_checksum(a) == bars_checksum(b)


@pytest.mark.parametrize(
    "bad", ["BTC'; DROP TABLE bars;--", "../etc/passwd", "a/b", "sp ace", "", "x" * 33, "..", 'q"uote']
)
def test_symbols_with_sql_or_path_characters_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid symbol"):
        validate_symbol(bad)


@pytest.mark.parametrize("good", ["BTC-USDT", "EURUSD=X", "^GSPC", ".SPX", "BRK_B", "GC=F"])
def test_real_ticker_shapes_are_accepted(good: str) -> None:
    assert validate_symbol(good) == good


def test_read_bars_refuses_hostile_symbol(warehouse_path: Path) -> None:
    with session(warehouse_path) as con:
        upsert_bars(con, bars(n=2), "r")
        with pytest.raises(ConfigError):
            read_bars(con, "BTC-USDT' OR '1'='1", "1m")
        assert con.sql("SELECT count(*) FROM bars").fetchall()[0][0] == 2


def test_corrupt_warehouse_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.duckdb"
    bad.write_bytes(b"this is not a duckdb file" * 1000)
    with pytest.raises(WarehouseError, match="broken.duckdb"):
        connect(bad)


def test_read_only_open_of_missing_warehouse_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="volrisk ingest"):
        connect(tmp_path / "missing.duckdb", read_only=True)


def test_quarantine_is_idempotent(warehouse_path: Path) -> None:
    rows = pl.DataFrame(
        {"location": ["f.csv:3", "f.csv:9"], "reason": ["high < low", "bad ts"], "raw": ["a", "b"]}
    )
    with session(warehouse_path) as con:
        write_quarantine(con, rows, source="file", symbol="SPY", run_id="r1")
        write_quarantine(con, rows, source="file", symbol="SPY", run_id="r2")
        stored = read_quarantine(con, "SPY")
        assert stored.height == 2
        assert set(stored["reason"]) == {"high < low", "bad ts"}


def _hold_writer(path: str, ready: mp.Event, release: mp.Event) -> None:  # type: ignore[valid-type]
    with writer(path) as con:
        upsert_bars(con, bars("HELD", n=2), "holder")
        ready.set()  # type: ignore[attr-defined]
        release.wait(20)  # type: ignore[attr-defined]


def test_writer_waits_for_another_process(warehouse_path: Path) -> None:
    import threading

    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_writer, args=(str(warehouse_path), ready, release))
    proc.start()
    done = threading.Event()
    counts: dict[str, int] = {}

    def second_writer() -> None:
        # Queues behind the other process instead of failing on DuckDB's file lock.
        with writer(warehouse_path, lock_timeout=60) as con:
            upsert_bars(con, bars("SECOND", n=3), "second")
            counts.update(dict(con.sql("SELECT symbol, count(*) FROM bars GROUP BY symbol").fetchall()))
        done.set()

    try:
        assert ready.wait(60), "holder process never got the write lock"
        thread = threading.Thread(target=second_writer)
        thread.start()
        assert not done.wait(1.0), "second writer ran while another process held the lock"
        release.set()
        thread.join(60)
        assert done.is_set()
        assert counts == {"HELD": 2, "SECOND": 3}
    finally:
        release.set()
        proc.join(30)


def test_connect_sets_utc_session(warehouse_path: Path) -> None:
    with session(warehouse_path) as con:
        tz = con.sql("SELECT current_setting('TimeZone')").fetchall()[0][0]
        assert tz == "UTC"


def test_many_threads_open_the_same_warehouse_at_once(warehouse_path: Path) -> None:
    """Threads attaching and migrating one file together used to fail (catalog write-write conflict,
    "Unique file handle conflict"); connect() now serializes attach and migration per process."""
    import threading

    import duckdb

    errors: list[str] = []
    for round_ in range(20):
        fresh = warehouse_path.with_name(f"fresh{round_}.duckdb")
        fresh.parent.mkdir(parents=True, exist_ok=True)
        duckdb.connect(str(fresh)).close()  # an empty file: every thread finds migrations to run
        barrier = threading.Barrier(8)
        opened: list[object] = []

        def open_one(
            barrier: threading.Barrier = barrier, opened: list[object] = opened, fresh: Path = fresh
        ) -> None:
            barrier.wait()
            try:
                opened.append(connect(fresh))
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for con in opened:
            con.close()  # type: ignore[attr-defined]
    assert errors == []
