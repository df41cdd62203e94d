"""core.hashing: the keys that decide cache hits and run ids."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from core.hashing import HASH_CHARS, content_hash, files_hash, frame_hash


def test_content_hash_is_stable_and_sensitive_to_every_part() -> None:
    key = content_hash("har", {"b": 1, "a": 2}, ["X"])
    assert key == content_hash("har", {"a": 2, "b": 1}, ["X"])  # dict order does not matter
    assert len(key) == HASH_CHARS and int(key, 16) >= 0
    assert key != content_hash("har", {"a": 2, "b": 1}, ["Y"])
    assert key != content_hash("har", {"a": 2, "b": 2}, ["X"])


def test_files_hash_follows_content_names_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    base = files_hash(tmp_path, ["a.py", "b.py"])
    assert base == files_hash(tmp_path, [tmp_path / "a.py", tmp_path / "b.py"])  # absolute = relative
    (tmp_path / "b.py").write_text("y = 3\n")
    edited = files_hash(tmp_path, ["a.py", "b.py"])
    assert edited != base
    (tmp_path / "b.py").unlink()
    assert files_hash(tmp_path, ["a.py", "b.py"]) not in (base, edited)  # a deleted file still counts
    (tmp_path / "c.py").write_text("y = 3\n")
    assert files_hash(tmp_path, ["a.py", "c.py"]) != edited  # same bytes under another name


def test_frame_hash_ignores_row_order_but_not_values() -> None:
    frame = pl.DataFrame({"s": ["A", "B"], "v": [1.0, 2.0]})
    assert frame_hash(frame) == frame_hash(frame.reverse())
    assert frame_hash(frame) != frame_hash(frame.with_columns(pl.col("v") * 2))
    assert frame_hash(frame.head(0)) == content_hash(0, 0)
