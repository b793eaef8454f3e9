"""The dead-letter circuit breaker: a stage that dead-letters most of what it reads stops.

A bad deploy or a broken dependency should halt a stage loudly, not drain its whole input
into the dead-letter topic. `DlqBreaker` watches the last `window` outcomes; once at
least `min_events` were seen and the dead-lettered share exceeds `ratio`, it trips.
"""

from __future__ import annotations

from collections import deque


class DlqBreakerTripped(RuntimeError):
    """The stage stopped itself; the message says why (share, window, last reason)."""


class DlqBreaker:
    def __init__(self, *, ratio: float = 0.5, window: int = 200, min_events: int = 50) -> None:
        if not 0 < ratio <= 1:
            raise ValueError("ratio must be in (0, 1]")
        self.ratio = ratio
        self.min_events = min(min_events, window)
        self._outcomes: deque[bool] = deque(maxlen=window)
        self.last_reason = ""

    def record(self, dead_lettered: bool, reason: str = "") -> None:
        self._outcomes.append(dead_lettered)
        if dead_lettered:
            self.last_reason = reason

    def record_ok(self, count: int) -> None:
        """`count` events that were not dead-lettered (a batch that succeeded)."""
        self._outcomes.extend([False] * min(count, self._outcomes.maxlen or count))

    @property
    def share(self) -> float:
        return sum(self._outcomes) / len(self._outcomes) if self._outcomes else 0.0

    @property
    def tripped(self) -> bool:
        return len(self._outcomes) >= self.min_events and self.share > self.ratio

    def explain(self, stage: str) -> str:
        return (
            f"{stage} stopped: {self.share:.0%} of the last {len(self._outcomes)} events went "
            f"to the dead-letter topic (limit {self.ratio:.0%}); last reason: {self.last_reason}"
        )
