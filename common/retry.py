"""Bounded retries with exponential backoff and jitter, and the one `Clock` they run on.

`RetryPolicy.run(attempt_fn)` calls `attempt_fn` until it returns, raises something that
is not a `RetryableError`, or the attempts run out (then the last `RetryableError` is
raised to the caller, who decides between dead-lettering and backpressure). A policy
without a limit (`attempts=None`) is only a backoff schedule (`delay`): the consumers'
failure policy (`common.failure`) retries an event until it succeeds. The waits go
through `Clock.sleep`, so unit tests pass a `FakeClock`-like object and run instantly.

`Clock` is where code reads the time (`now`: the wall clock, `monotonic`: intervals) and
waits (`sleep`); `SystemClock` is the real one, and tests pass clocks they move by hand.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from common.errors import RetryableError

T = TypeVar("T")
#: Past this many doublings every backoff is long at its cap (2**60 * base).
_MAX_DOUBLINGS = 60


class Clock(Protocol):
    """Where code reads the time and waits."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries (None: no limit); before try n+1 wait min(cap, base * 2**(n-1))
    scaled by jitter.

    A `retry_after` carried by the error (Telegram 429, for example) is honoured when it
    is longer than the backoff, up to `max_retry_after_s`.
    """

    attempts: int | None
    base_s: float = 0.5
    cap_s: float = 10.0
    jitter: float = 0.25  # +-25 %
    max_retry_after_s: float = 60.0
    clock: Clock = field(default_factory=SystemClock)
    rand: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be >= 1")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        doublings = min(max(0, attempt - 1), _MAX_DOUBLINGS)  # no float overflow, ever
        backoff = min(self.cap_s, self.base_s * 2.0**doublings)
        backoff *= 1 + self.jitter * (2 * self.rand() - 1)
        if retry_after is not None and retry_after > 0:
            backoff = max(backoff, min(float(retry_after), self.max_retry_after_s))
        return max(0.0, backoff)

    async def run(self, attempt_fn: Callable[[int], Awaitable[T]]) -> T:
        """Run `attempt_fn(attempt)` (1-based) under this policy."""
        attempt = 1
        while True:
            try:
                return await attempt_fn(attempt)
            except RetryableError as err:
                if self.attempts is not None and attempt >= self.attempts:
                    raise
                await self.clock.sleep(self.delay(attempt, err.retry_after))
                attempt += 1
