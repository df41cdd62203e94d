"""``make demo`` writes flushed stage lines when its output is a file, not a terminal (issue 14)."""

from __future__ import annotations

import io
from collections.abc import Iterator

from flows import progress
from flows.demo import StageLines, stage_lines


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _File(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty
        self.flushes = 0

    def isatty(self) -> bool:
        return self.tty

    def flush(self) -> None:
        self.flushes += 1


def _ticks(lines: StageLines, clock: _Clock, stage: str, total: int, seconds: float) -> Iterator[None]:
    lines(stage, total, None)
    for i in range(total):
        clock.now += seconds
        lines(stage, 0, {"i": i})
        yield


def test_stage_lines_report_size_progress_and_end_with_elapsed_seconds() -> None:
    clock, out = _Clock(), _File(tty=False)
    lines = StageLines(out, clock=clock)
    for _ in _ticks(lines, clock, "ingest", 5, 2.0):
        pass
    for _ in _ticks(lines, clock, "evaluate", 40, 1.0):
        pass
    text = out.getvalue().splitlines()
    assert text[0] == "[     0 s] ingest: 5 partitions"
    assert text[1:5] == [f"[{2 * i:6.0f} s] ingest: {i}/5" for i in range(1, 5)]
    assert text[5] == "[    10 s] ingest: 5/5 done"
    assert text[6] == "[    10 s] evaluate: 40 partitions"
    assert "[    14 s] evaluate: 4/40" in text and text[-1] == "[    50 s] evaluate: 40/40 done"
    assert len([t for t in text if "evaluate" in t]) == 11  # every 10%, not every item
    assert out.flushes == len(text)  # each line reaches the file at once


def test_slow_stages_still_print_every_minute() -> None:
    clock, out = _Clock(), _File(tty=False)
    lines = StageLines(out, clock=clock)
    for _ in _ticks(lines, clock, "evaluate", 1000, 61.0):
        if clock.now >= 1000 + 61 * 3:
            break
    assert out.getvalue().splitlines()[1:] == [
        "[    61 s] evaluate: 1/1000",
        "[   122 s] evaluate: 2/1000",
        "[   183 s] evaluate: 3/1000",
    ]


def test_lines_only_when_the_output_is_not_a_terminal() -> None:
    for tty, expect in ((False, True), (True, False)):
        out = _File(tty=tty)
        with stage_lines(out):
            progress.report("features", total=3)
        assert ("features: 3 partitions" in out.getvalue()) is expect
    progress.report("features", total=3)  # the listener is gone after the block
