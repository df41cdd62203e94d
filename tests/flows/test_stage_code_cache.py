"""Partition caches key on the stage code they call, not only on the task function's own body.

Found running the README after a code change (issue 14): a features rerun served a quality verdict
computed by the old check (its month stayed blocked), because ``TASK_SOURCE`` hashes only the task.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from repo_paths import REPO

from flows.orchestration import PARTITION_CACHE, STAGE_CODE_FILES, StageCode, stage_code_hash


def _copy(tmp: Path) -> Path:
    for rel in STAGE_CODE_FILES:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp / rel)
    shutil.copytree(REPO / "tasks" / "sources", tmp / "tasks" / "sources")
    return tmp


def test_editing_a_check_or_a_parser_changes_the_key(tmp_path: Path) -> None:
    root = _copy(tmp_path / "repo")
    before = stage_code_hash(root)
    assert before == stage_code_hash(REPO)  # the copy hashes like the repository
    quality = root / "tasks" / "quality.py"
    quality.write_text(quality.read_text() + "\n# a threshold changed\n")
    after_check = stage_code_hash(root)
    parser = root / "tasks" / "sources" / "files.py"
    parser.write_text(parser.read_text() + "\n# a parser changed\n")
    assert len({before, after_check, stage_code_hash(root)}) == 3


def test_partition_tasks_use_it() -> None:
    assert any(isinstance(p, StageCode) for p in PARTITION_CACHE.policies)  # type: ignore[attr-defined]
    assert StageCode().compute_key(None, {}, {}) == stage_code_hash()
