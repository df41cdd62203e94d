"""Damaged files: a clear error naming the file and what to do; a damaged cached result is recomputed.

Checkpoints that carry code are covered in tests/tasks/models/test_train.py
(``test_a_pickle_carrying_code_is_refused_and_never_runs``); here a *truncated* checkpoint is added, and
every ``torch.load`` in the code is checked for ``weights_only=True``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import DataError, WarehouseError
from flows.cli import app
from tasks.sources.synthetic import generate_bars
from warehouse.bars import bars_checksum, upsert_bars
from warehouse.db import session, writer

REPO = Path(__file__).resolve().parents[2]
SPY_JAN = REPO / "data" / "samples" / "nt-spy-minute-2011-01.csv"
ADVICE = "Move it aside and rebuild it with `volrisk ingest`, or restore it from a backup"


@pytest.fixture(scope="module")
def good_warehouse(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Bytes of a checkpointed warehouse holding one month of minute bars."""
    path = tmp_path_factory.mktemp("wh") / "good.duckdb"
    bars = generate_bars(
        "AAA", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC), "1m", seed=1
    )
    with writer(path) as con:
        upsert_bars(con, bars.bars, "r1")
    return path.read_bytes()


def _damage(data: bytes, how: str) -> bytes:
    n = len(data)
    if how == "garbage":
        return b"this is not a database\n" * 200
    if how == "empty":
        return b""
    if how == "zeroed-header":
        return bytes(8192) + data[8192:]
    if how == "truncated-4k":
        return data[:4096]
    if how == "truncated-half":
        return data[: n // 2]
    if how.startswith("flipped-"):
        at = int(n * float(how.split("-")[1]))
        return data[:at] + bytes(b ^ 0xFF for b in data[at : at + 8192]) + data[at + 8192 :]
    raise AssertionError(how)


DAMAGES = [
    "garbage",
    "empty",
    "zeroed-header",
    "truncated-4k",
    "truncated-half",
    "flipped-0.3",
    "flipped-0.5",
]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_warehouse_gives_a_clear_error(tmp_path: Path, good_warehouse: bytes, how: str) -> None:
    path = tmp_path / "damaged.duckdb"
    path.write_bytes(_damage(good_warehouse, how))
    with pytest.raises(WarehouseError) as info:
        with session(path, read_only=True) as con:
            bars_checksum(con)  # a damaged data block shows only when a query reaches it
    message = str(info.value)
    assert str(path.resolve()) in message and ADVICE in message, message
    # The CLI turns it into one line and exit code 2, not a traceback.
    res = CliRunner().invoke(app, ["warehouse", "check", "-w", str(path)])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and "damaged.duckdb" in res.output and "Traceback" not in res.output


def test_writing_into_a_damaged_warehouse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(WarehouseError, match=re.escape(str(path.resolve()))):
        with writer(path):
            pass
    assert path.read_bytes() == b"\x00garbage" * 1000, "the damaged file is left as it was, for inspection"


# Cutting a checkpoint inside its zip body makes torch raise a bare OSError(EINVAL); load_checkpoint
# turns it into the same refusal as any other unreadable checkpoint.
@pytest.mark.parametrize(
    "keep",
    [
        pytest.param(0.5, id="half"),
        pytest.param(0.999, id="last-bytes-cut"),
        pytest.param(100, id="100-bytes"),
        pytest.param(0, id="empty"),
    ],
)
def test_truncated_checkpoint_is_refused_naming_the_file(tmp_path: Path, keep: float) -> None:
    torch = pytest.importorskip("torch")
    from tasks.models.checkpoint import load_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "m.pt", {"w": torch.ones(64, 64)}, {"features": ["rv"]})
    data = path.read_bytes()
    assert load_checkpoint(path)[0]["w"].shape == (64, 64)
    path.write_bytes(data[: int(keep * len(data)) if keep < 1 else int(keep)])
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "refused" in str(info.value) and "Retrain" in str(info.value)


def test_every_torch_load_uses_weights_only() -> None:
    calls = []
    for folder in ("tasks", "flows", "warehouse"):
        for py in (REPO / folder).rglob("*.py"):
            text = py.read_text()
            for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
                calls.append((py.name, match.group(1)))
    assert calls, "checkpoints are loaded somewhere"
    unsafe = [c for c in calls if "weights_only=True" not in c[1]]
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_damaged_cached_result_is_recomputed_not_trusted(tmp_path: Path, how: str) -> None:
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    from flows.ingest_flow import ingest_flow

    storage = tmp_path / "results"
    wh = tmp_path / "w.duckdb"
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}):
        first = ingest_flow(symbols=["SPY"], paths=[str(SPY_JAN)], warehouse=str(wh))
        assert first[0]["status"] == "success"
        records = [p for p in storage.rglob("*") if p.is_file()]
        assert records, f"Prefect persisted no result under {storage}"
        again = ingest_flow(symbols=["SPY"], paths=[str(SPY_JAN)], warehouse=str(wh))
        assert again[0]["status"] == "cached"
        for record in records:
            data = record.read_bytes()
            record.write_bytes({"garbage": b"\x80\x04garbage{", "truncated": data[: len(data) // 2]}[how])
        third = ingest_flow(symbols=["SPY"], paths=[str(SPY_JAN)], warehouse=str(wh))
    assert third[0]["status"] == "success", "a damaged cached result is recomputed"
    assert (third[0]["new"], third[0]["updated"], third[0]["unchanged"]) == (0, 0, 14180)
    with session(wh, read_only=True) as con:
        assert bars_checksum(con).startswith("14180:")
