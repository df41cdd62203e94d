"""Realized measures through a real DuckDB warehouse file: upsert counts, idempotence, reads, rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from repo_paths import TESTS

from core.errors import ConfigError, DataError
from core.schema import REALIZED_SCHEMA
from tasks.sources.realized import read_realized_file
from warehouse.db import connect, session
from warehouse.realized import RealizedStats, read_realized, upsert_realized

DATA = TESTS / "data" / "realized"
OXFORD = DATA / "oxfordman_sample.csv"
SIMPLE = DATA / "simple_sample.csv"


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture()
def con(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(db_path)
    try:
        yield connection
    finally:
        connection.close()


def _table(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.sql(
        "SELECT symbol, date, source, rv, bv, rk_parzen, medrv, ret, close_price, nobs, extra::VARCHAR, "
        "ingest_run FROM realized_daily ORDER BY symbol, date, source"
    ).fetchall()


def test_import_then_reimport_changes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    parsed = read_realized_file(OXFORD).realized
    assert upsert_realized(con, parsed, "run-1") == RealizedStats(new=12, updated=0, unchanged=0)
    before = _table(con)
    again = read_realized_file(OXFORD).realized
    assert upsert_realized(con, again, "run-2") == (0, 0, 12)
    assert _table(con) == before  # same rows, same values, ingest_run still run-1
    assert {row[-1] for row in before} == {"run-1"}


def test_round_trip_is_exact(con: duckdb.DuckDBPyConnection) -> None:
    parsed = read_realized_file(OXFORD).realized
    upsert_realized(con, parsed, "run-1")
    back = read_realized(con, [".SPX", ".AEX"])
    assert back.schema == pl.Schema(REALIZED_SCHEMA)
    assert back.equals(parsed.sort(["symbol", "date", "source"]))
    # extra came back as the same JSON object
    assert [json.loads(e) for e in back["extra"]] == [
        json.loads(e) for e in parsed.sort(["symbol", "date"])["extra"]
    ]


def test_changed_value_is_updated_and_counted(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    upsert_realized(con, read_realized_file(OXFORD).realized, "run-1")
    text = OXFORD.read_text().replace(",.SPX,1.98e-05,", ",.SPX,2.05e-05,")  # 2020-01-09 revised
    assert text != OXFORD.read_text()
    revised = tmp_path / "revised.csv"
    revised.write_text(text)
    stats = upsert_realized(con, read_realized_file(revised).realized, "run-2")
    assert stats == RealizedStats(new=0, updated=1, unchanged=11)
    row = read_realized(con, ".SPX", date(2020, 1, 9), date(2020, 1, 10))
    assert row["rv"].to_list() == [2.05e-05]
    runs = con.sql(
        "SELECT ingest_run, count(*) FROM realized_daily GROUP BY ingest_run ORDER BY ingest_run"
    ).fetchall()
    assert runs == [("run-1", 11), ("run-2", 1)]


def test_extra_change_alone_counts_as_update(con: duckdb.DuckDBPyConnection) -> None:
    parsed = read_realized_file(OXFORD).realized
    upsert_realized(con, parsed, "run-1")
    changed = parsed.with_columns(
        pl.when(pl.col("date") == date(2020, 1, 6))
        .then(pl.col("extra").str.replace('"rv10":', '"rv10":1.0e-3,"x":'))
        .otherwise(pl.col("extra"))
    )
    assert upsert_realized(con, changed, "run-2") == RealizedStats(0, 2, 10)


def test_batch_duplicates_keep_the_last_row(con: duckdb.DuckDBPyConnection) -> None:
    parsed = read_realized_file(SIMPLE).realized
    first = parsed.head(1)
    later = first.with_columns(pl.lit(0.5).alias("rv"))
    stats = upsert_realized(con, pl.concat([first, parsed, later]), "run-1")
    assert stats == RealizedStats(new=8, updated=0, unchanged=0)
    stored = read_realized(con, "BTC-USD", date(2022, 1, 3), date(2022, 1, 4))
    assert stored["rv"].to_list() == [0.5]


def test_reads_filter_by_window_symbol_and_source(con: duckdb.DuckDBPyConnection) -> None:
    upsert_realized(con, read_realized_file(OXFORD).realized, "run-1")
    upsert_realized(con, read_realized_file(OXFORD, source="oxfordman_v2").realized, "run-2")
    upsert_realized(con, read_realized_file(SIMPLE).realized, "run-3")
    assert con.sql("SELECT count(*) FROM realized_daily").fetchall() == [(32,)]

    window = read_realized(con, [".SPX"], date(2020, 1, 7), date(2020, 1, 9), source="oxfordman")
    assert window.select("date", "source").rows() == [
        (date(2020, 1, 7), "oxfordman"),
        (date(2020, 1, 8), "oxfordman"),
    ]
    both_sources = read_realized(con, ".AEX", start=date(2020, 6, 1))
    assert both_sources.select("date", "source").rows() == [
        (date(2020, 6, 2), "oxfordman"),
        (date(2020, 6, 2), "oxfordman_v2"),
    ]
    assert read_realized(con, ["EURUSD"], end=date(2022, 1, 4)).height == 1
    empty = read_realized(con, ["NOPE"])
    assert empty.height == 0 and empty.schema == pl.Schema(REALIZED_SCHEMA)


def test_persists_and_reads_through_a_read_only_connection(db_path: Path) -> None:
    writer = connect(db_path)
    try:
        upsert_realized(writer, read_realized_file(OXFORD).realized, "run-1")
    finally:
        writer.close()
    reader = connect(db_path, read_only=True)
    try:
        assert read_realized(reader, [".AEX", ".SPX"]).height == 12
    finally:
        reader.close()


def test_bad_rows_are_quarantined_and_only_good_rows_stored(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    bad = tmp_path / "with_bad_rows.csv"
    lines = OXFORD.read_text().splitlines()
    spx_last = lines[-1]
    lines.append(
        spx_last.replace("2020-03-09 00:00:00-04:00", "2020-03-10 00:00:00-04:00").replace(
            ",.SPX,0.0015473,", ",.SPX,-0.0015473,"
        )
    )
    lines.append(
        spx_last.replace("2020-03-09 00:00:00-04:00", "2020-03-11 00:00:00-04:00").replace(
            ",.SPX,0.0015473,", ",.SPX,nan,"
        )
    )
    lines.append(spx_last.replace("2020-03-09 00:00:00-04:00", "2020-03-32 00:00:00-04:00"))
    bad.write_text("\n".join(lines) + "\n")
    result = read_realized_file(bad)
    assert result.quarantine.select("location", "reason").rows() == [
        (f"{bad}:14", "negative rv5 '-0.0015473'"),
        (f"{bad}:15", "rv5 is NaN"),
        (
            f"{bad}:16",
            "unparseable date '2020-03-32 00:00:00-04:00' (expected YYYY-MM-DD or a local timestamp "
            "such as 2000-01-03 00:00:00+01:00)",
        ),
    ]
    assert upsert_realized(con, result.realized, "run-1") == RealizedStats(12, 0, 0)
    stored = read_realized(con, ".SPX", start=date(2020, 3, 1))
    assert stored["date"].to_list() == [date(2020, 3, 9)]


def test_invalid_symbol_in_frame_writes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    parsed = read_realized_file(SIMPLE).realized
    evil = parsed.with_columns(pl.lit("BTC'; DROP TABLE realized_daily;--").alias("symbol")).head(1)
    with pytest.raises(ConfigError, match="invalid symbol"):
        upsert_realized(con, pl.concat([parsed, evil]), "run-1")
    assert con.sql("SELECT count(*) FROM realized_daily").fetchall() == [(0,)]
    with pytest.raises(ConfigError, match="'../etc'"):
        read_realized(con, ["../etc"])


def test_null_key_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    parsed = read_realized_file(SIMPLE).realized
    with pytest.raises(DataError, match="null symbol, date or source"):
        upsert_realized(con, parsed.with_columns(pl.lit(None, dtype=pl.Date).alias("date")), "run-1")


def test_failed_write_rolls_back_the_whole_batch(con: duckdb.DuckDBPyConnection) -> None:
    parsed = read_realized_file(SIMPLE).realized
    upsert_realized(con, parsed.head(2), "run-1")
    before = _table(con)
    broken = parsed.with_columns(
        pl.when(pl.col("date") == date(2022, 1, 6))
        .then(pl.lit("{not json"))
        .otherwise(pl.col("extra"))
        .alias("extra"),
        pl.col("rv") * 2,
    )
    with pytest.raises(duckdb.Error):
        upsert_realized(con, broken, "run-2")
    assert _table(con) == before
    # the connection is usable afterwards
    assert upsert_realized(con, parsed, "run-3") == RealizedStats(new=6, updated=0, unchanged=2)


def test_migration_007_moves_oxfordman_open_to_close_out_of_ret(tmp_path: Path) -> None:
    """Rows imported before 007 keep their measures; Oxford-Man's open-to-close moves to ``ret_oc``."""
    from old_warehouse import warehouse_before

    path = tmp_path / "old.duckdb"
    old = warehouse_before(path, 7)
    for source, ret in (("oxfordman", -0.004), ("simple", 0.002)):
        old.sql(
            "INSERT INTO realized_daily (symbol, date, source, rv, ret, ingest_run) "
            "VALUES ('.SPX', DATE '2020-03-02', ?, 1e-4, ?, 'r0')",
            params=[source, ret],
        )
    old.close()
    with session(path) as con:
        got = read_realized(con, [".SPX"]).sort("source")
    assert got["source"].to_list() == ["oxfordman", "simple"]
    assert got["rv"].to_list() == [1e-4, 1e-4]
    assert got["ret_oc"].to_list() == [-0.004, None]  # was open-to-close, now says so
    assert got["ret"].to_list() == [None, 0.002]  # a simple file's ret was close-to-close all along
    assert got["rq"].to_list() == [None, None]
