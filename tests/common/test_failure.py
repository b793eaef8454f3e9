"""The one failure policy: what a failed event becomes, and the outcomes a stage counts."""

from __future__ import annotations

import pytest

from common.breaker import DlqBreaker, DlqBreakerTripped
from common.errors import InvalidEvent, RetryableError
from common.failure import DeadLetter, Retry, StageFailures, decide
from schemas import codec


def test_an_invalid_event_is_dead_lettered_with_its_reason() -> None:
    assert decide(InvalidEvent("tenant_missing: t-9"), 1) == DeadLetter("tenant_missing: t-9")


def test_an_output_that_can_never_be_encoded_is_dead_lettered() -> None:
    decision = decide(codec.CodecError("record does not match usage_record"), 1)
    assert decision == DeadLetter("unencodable: record does not match usage_record")


def test_anything_else_is_retried_on_a_capped_exponential_schedule() -> None:
    delays = [decide(ConnectionError("down"), n) for n in range(1, 12)]
    assert delays[:4] == [Retry(0.4), Retry(0.8), Retry(1.6), Retry(3.2)]
    assert delays[-1] == Retry(30.0)
    assert decide(RuntimeError("bug?"), 10_000) == Retry(30.0)  # retried forever, capped


def test_a_longer_retry_after_is_honoured() -> None:
    assert decide(RetryableError("429", retry_after=12.0), 1) == Retry(12.0)
    assert decide(RetryableError("429", retry_after=120.0), 1) == Retry(120.0)
    assert decide(RetryableError("429", retry_after=0.1), 3) == Retry(1.6)
    assert decide(RetryableError("no hint"), 1) == Retry(0.4)


def test_outcomes_feed_the_breaker_which_trips_once() -> None:
    trips: list[str] = []
    failures = StageFailures(
        "sync", breaker=DlqBreaker(ratio=0.5, window=10, min_events=4), on_trip=trips.append
    )
    failures.succeeded(2)
    failures.dead_lettered("schema_drift: a")
    failures.dead_lettered("schema_drift: b")
    failures.check()  # 2 of 4: at the ratio, not above it
    failures.dead_lettered("schema_drift: c")  # 3 of 5
    failures.dead_lettered("schema_drift: d")
    assert trips == [
        "sync stopped: 60% of the last 5 events went to the dead-letter topic (limit 50%); "
        "last reason: schema_drift: c"
    ]
    with pytest.raises(DlqBreakerTripped, match="sync stopped"):
        failures.check()


def test_the_backoff_grows_to_the_cap_and_honours_retry_after() -> None:
    # what streams.boundary.backoff(n, 30.0) asserted before both runners shared the policy
    decisions = [decide(RuntimeError(), n) for n in range(1, 12)]
    delays = [d.delay_s for d in decisions if isinstance(d, Retry)]
    assert len(delays) == 11
    assert delays == sorted(delays)
    assert delays[0] == pytest.approx(0.4)
    assert delays[-1] == 30.0
    assert decide(RetryableError("429", retry_after=12.0), 1) == Retry(12.0)
