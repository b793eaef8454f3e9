"""RetryPolicy: bounded attempts, exponential backoff with jitter, retry_after honoured."""

from __future__ import annotations

import pytest

from common.errors import InvalidEvent, RetryableError
from common.retry import RetryPolicy
from tests.fakes import FakeClock


def policy(clock: FakeClock, attempts: int = 4, rand: float = 0.5) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base_s=1.0, cap_s=5.0, clock=clock, rand=lambda: rand)


async def test_returns_first_success_without_waiting() -> None:
    clock = FakeClock()

    async def ok(attempt: int) -> str:
        return f"done at {attempt}"

    assert await policy(clock).run(ok) == "done at 1"
    assert clock.sleeps == []


async def test_retries_then_succeeds_with_exponential_backoff() -> None:
    clock = FakeClock()
    seen: list[int] = []

    async def flaky(attempt: int) -> int:
        seen.append(attempt)
        if attempt < 4:
            raise RetryableError("not yet")
        return attempt

    assert await policy(clock).run(flaky) == 4
    assert seen == [1, 2, 3, 4]
    assert clock.sleeps == [1.0, 2.0, 4.0]  # rand 0.5 = no jitter


async def test_gives_up_after_attempts_with_the_last_error() -> None:
    clock = FakeClock()

    async def down(attempt: int) -> None:
        raise RetryableError(f"down {attempt}")

    with pytest.raises(RetryableError, match="down 3"):
        await policy(clock, attempts=3).run(down)
    assert len(clock.sleeps) == 2


async def test_non_retryable_errors_pass_through_at_once() -> None:
    clock = FakeClock()

    async def bad(attempt: int) -> None:
        raise InvalidEvent("never")

    with pytest.raises(InvalidEvent):
        await policy(clock).run(bad)
    assert clock.sleeps == []


def test_delay_is_capped_jittered_and_honours_retry_after() -> None:
    low = policy(FakeClock(), rand=0.0)
    high = policy(FakeClock(), rand=1.0)
    assert low.delay(1) == pytest.approx(0.75)
    assert high.delay(1) == pytest.approx(1.25)
    assert policy(FakeClock()).delay(10) == 5.0  # capped
    assert policy(FakeClock()).delay(1, retry_after=30) == 30.0
    assert policy(FakeClock()).delay(1, retry_after=1e6) == 60.0  # bounded retry_after


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


async def test_without_a_limit_it_retries_until_success_on_a_capped_schedule() -> None:
    clock = FakeClock()
    unbounded = RetryPolicy(attempts=None, base_s=1.0, cap_s=5.0, clock=clock, rand=lambda: 0.5)

    async def flaky(attempt: int) -> int:
        if attempt < 8:
            raise RetryableError("not yet")
        return attempt

    assert await unbounded.run(flaky) == 8
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert unbounded.delay(100_000) == 5.0  # a retry that lasts for days: still the cap
