"""common.telemetry: repeated library log lines are thinned, the project's never."""

from __future__ import annotations

import logging

from common.telemetry import QuietRepeats


def _record(name: str, msg: str = "Unable connect to node with id %s: %s") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (1, "refused"), None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_library_line_passes_once_per_interval_with_the_count_held_back() -> None:
    clock = Clock()
    quiet = QuietRepeats(30.0, clock=clock)
    passed = []
    for i in range(1000):
        clock.now = i * 0.1  # 100 s of a line every 0.1 s
        record = _record("aiokafka.conn")
        if quiet.filter(record):
            passed.append(record.getMessage())
    assert len(passed) == 4  # at 0, 30, 60 and 90 s
    assert passed[0] == "Unable connect to node with id 1: refused"
    assert passed[1] == "Unable connect to node with id 1: refused [299 more like this held back]"


def test_different_lines_and_the_projects_own_loggers_are_not_thinned() -> None:
    quiet = QuietRepeats(30.0, clock=Clock())
    assert quiet.filter(_record("aiokafka.conn"))
    assert quiet.filter(_record("aiokafka.conn", "another template %s %s"))
    assert quiet.filter(_record("aiokafka"))
    assert all(quiet.filter(_record("streams.metering.handler")) for _ in range(100))
    assert all(quiet.filter(_record("aiokafkaesque")) for _ in range(3))


def test_it_forgets_old_lines_rather_than_grow_without_bound() -> None:
    quiet = QuietRepeats(30.0, clock=Clock(), remember=10)
    for i in range(25):
        assert quiet.filter(_record("faust.transport", f"line {i} %s %s"))
    assert len(quiet._seen) <= 10
