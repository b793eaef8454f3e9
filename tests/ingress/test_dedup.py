"""dedup.py: the bounded, expiring set of acknowledged updates."""

from __future__ import annotations

import pytest

from ingress.dedup import RecentUpdates


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_remembers_what_was_added() -> None:
    recent = RecentUpdates()
    recent.add(("1", 10))
    assert ("1", 10) in recent
    assert ("1", 11) not in recent
    assert ("2", 10) not in recent
    assert "1" not in recent


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    recent = RecentUpdates(ttl_s=60, clock=clock)
    recent.add(("1", 1))
    clock.now += 59.9
    assert ("1", 1) in recent
    clock.now += 0.2
    assert ("1", 1) not in recent
    assert len(recent) == 0


def test_expired_entries_are_pruned_on_add() -> None:
    clock = Clock()
    recent = RecentUpdates(ttl_s=10, clock=clock)
    for i in range(5):
        recent.add(("1", i))
    clock.now += 11
    recent.add(("1", 99))
    assert len(recent) == 1


def test_size_is_bounded_oldest_first() -> None:
    recent = RecentUpdates(max_entries=3)
    for i in range(5):
        recent.add(("1", i))
    assert len(recent) == 3
    assert [("1", i) in recent for i in range(5)] == [False, False, True, True, True]


def test_adding_again_refreshes_the_entry() -> None:
    clock = Clock()
    recent = RecentUpdates(max_entries=2, ttl_s=10, clock=clock)
    recent.add(("1", 1))
    recent.add(("1", 2))
    clock.now += 5
    recent.add(("1", 1))  # now the newest
    recent.add(("1", 3))  # evicts ("1", 2), the oldest
    assert ("1", 1) in recent
    assert ("1", 2) not in recent
    clock.now += 6
    assert ("1", 1) in recent  # refreshed at t+5, expires at t+15


@pytest.mark.parametrize("kwargs", [{"max_entries": 0}, {"ttl_s": 0}])
def test_rejects_nonsense_bounds(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RecentUpdates(**kwargs)  # type: ignore[arg-type]
