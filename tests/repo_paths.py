"""Where tests find the repository, its bundled data and the shared data beside it."""

from __future__ import annotations

from pathlib import Path

#: The tests folder.
TESTS = Path(__file__).resolve().parent
#: The repository root.
REPO = TESTS.parent
#: Small real samples bundled with the repository.
SAMPLES = REPO / "data" / "samples"
#: The shared real market data beside the checkout (absent on a user's fresh clone: tests skip).
SHARED_DATA = REPO.parent / "shared" / "data"
