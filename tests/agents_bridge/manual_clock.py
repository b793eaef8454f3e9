"""A clock that only moves when the test says so; sleepers wake in time order."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class ManualClock:
    """`common.retry.Clock` on a time `at` (seconds); `advance()` moves it."""

    at: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    _heap: list[tuple[float, int, asyncio.Future[None]]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _changed: asyncio.Condition | None = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)

    def monotonic(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)  # sleep-ok: yield to the event loop
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.at + seconds, next(self._seq), future))
        await self._notify()
        await future

    def sleeping(self) -> int:
        """Sleepers not woken (or cancelled) yet."""
        return sum(1 for _, _, f in self._heap if not f.done())

    async def wait_sleeping(self, count: int, timeout: float = 5.0) -> None:
        """Wait until `count` tasks sleep on this clock."""
        cond = self._condition()
        async with cond:
            await asyncio.wait_for(cond.wait_for(lambda: self.sleeping() >= count), timeout)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its time and letting it run."""
        target = self.at + seconds
        while self._heap and self._heap[0][0] <= target:
            wake, _, future = heapq.heappop(self._heap)
            self.at = max(self.at, wake)
            if not future.done():
                future.set_result(None)
                await _settle()
        self.at = target
        await _settle()

    async def _notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed


async def _settle(rounds: int = 20) -> None:
    """Let ready tasks run until they block again (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)  # sleep-ok: yield to the event loop
