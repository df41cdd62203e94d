"""The instruments table: migration 008 (time zone), upsert/get and list_instruments (issue 11)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import exchange_calendars as xcals
import polars as pl
import pytest

import warehouse.migrate as migrate_mod
from core.schema import REALIZED_SCHEMA
from warehouse.catalog import Instrument, get_instrument, list_instruments, upsert_instrument
from warehouse.migrate import available_migrations, migrate
from warehouse.realized import upsert_realized
from warehouse.resource import Warehouse

SQL = Path(migrate_mod.__file__).with_name("migrations") / "008_instrument_timezone.sql"


def test_migration_008_gives_existing_instruments_their_calendar_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.duckdb"
    before = [m for m in available_migrations() if m.version < 8]
    with duckdb.connect(str(path)) as con:
        monkeypatch.setattr(migrate_mod, "available_migrations", lambda: before)
        migrate(con)
        assert "timezone" not in con.sql("SELECT * FROM instruments").columns
        con.sql(
            "INSERT INTO instruments VALUES ('BTC-USDT', 'crypto', '24x7', 'USDT', 'binance'), "
            "('EURUSD', 'fx', 'fx', 'USD', 'lean_fx'), ('SPY', 'equity_index', 'XNYS', 'USD', NULL), "
            "('.FTSE', 'equity_index', 'XLON', 'GBP', NULL), ('.N225', 'equity_index', 'XTKS', 'JPY', NULL)"
        )
        monkeypatch.undo()
        assert migrate(con)[0] == "008_instrument_timezone.sql"  # then any later migrations
        zones = dict(con.sql("SELECT symbol, timezone FROM instruments").fetchall())
    assert zones == {
        "BTC-USDT": "UTC", "EURUSD": "America/New_York", "SPY": "America/New_York",
        ".FTSE": "Europe/London", ".N225": "Asia/Tokyo",
    }  # fmt: skip


def test_migration_008_zones_match_exchange_calendars() -> None:
    """The SQL mapping was taken from exchange_calendars: every calendar name, the same zone."""
    mapping = {
        name: tz
        for names, tz in re.findall(r"WHEN calendar IN \(([^)]*)\) THEN '([^']+)'", SQL.read_text())
        for name in re.findall(r"'([^']+)'", names)
    }
    assert set(mapping) == set(xcals.get_calendar_names(include_aliases=True))
    for name in ("XNYS", "XLON", "XTKS", "XBOM", "BVMF", "XHKG", "CMES", "XFRA", "XASX", "XTSE"):
        assert str(xcals.get_calendar(name, start="2024-01-02", end="2024-01-31").tz) == mapping[name], name


def test_upsert_get_and_list(tmp_path: Path) -> None:
    wh = Warehouse.at(tmp_path / "w.duckdb")
    with wh.writing() as con:
        upsert_instrument(con, Instrument("6EH4", "fx", "CMES", None, "file", "America/Chicago"))
        upsert_instrument(con, Instrument("6EH4", "fx", "CMES", "USD", "file", "America/Chicago"))
        realized = pl.DataFrame(
            {"symbol": [".SPX", ".SPX"], "date": [date(2024, 1, 2), date(2024, 1, 3)], "rv": [1e-4, 2e-4],
             "source": ["test", "test"]}
        ).with_columns(pl.lit(None, pl.Float64).alias(c) for c in REALIZED_SCHEMA if c not in
                       ("symbol", "date", "rv", "source", "extra"))  # fmt: skip
        upsert_realized(con, realized, "r1")
    with wh.reading() as con:
        assert get_instrument(con, "6EH4") == Instrument(
            "6EH4", "fx", "CMES", "USD", "file", "America/Chicago"
        )
        assert get_instrument(con, "NOPE") is None
        listed = list_instruments(con)
    assert listed["symbol"].to_list() == [".SPX", "6EH4"]
    spx, fut = listed.to_dicts()
    assert spx["asset_class"] is None and spx["realized"] == 2 and spx["bars"] == 0  # data, not registered
    assert fut["timezone"] == "America/Chicago" and fut["quote_currency"] == "USD" and fut["bars"] == 0
