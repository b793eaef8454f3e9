from __future__ import annotations

import pytest

from common.breaker import DlqBreaker


def test_trips_only_after_enough_events_and_above_the_ratio() -> None:
    b = DlqBreaker(ratio=0.5, window=10, min_events=4)
    for _ in range(3):
        b.record(True, "bad payload")
    assert not b.tripped  # too few events to judge
    b.record(True, "bad payload")
    assert b.tripped
    assert "100% of the last 4 events" in b.explain("metering")
    assert "bad payload" in b.explain("metering")


def test_healthy_traffic_dilutes_old_failures() -> None:
    b = DlqBreaker(ratio=0.5, window=10, min_events=4)
    for _ in range(5):
        b.record(True, "x")
    for _ in range(10):
        b.record(False)
    assert b.share == 0 and not b.tripped


def test_exactly_at_the_ratio_does_not_trip() -> None:
    b = DlqBreaker(ratio=0.5, window=4, min_events=4)
    for dead in (True, False, True, False):
        b.record(dead)
    assert not b.tripped


def test_bad_ratio_is_refused() -> None:
    with pytest.raises(ValueError):
        DlqBreaker(ratio=0)


def test_a_batch_of_successes_counts_like_as_many_single_ones() -> None:
    one_by_one, batched = DlqBreaker(window=10, min_events=5), DlqBreaker(window=10, min_events=5)
    for _ in range(12):
        one_by_one.record(False)
    batched.record_ok(12)
    for breaker in (one_by_one, batched):
        breaker.record(True, "bad")
        assert breaker.share == 0.1
        assert not breaker.tripped
