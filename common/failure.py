"""The one failure policy of the consumers: `common.consumer.KafkaWorker` and the Faust
agents' `streams.boundary.Boundary` both run their handlers through it.

`decide(err, attempt)` is the policy, pure: what to do after attempt number `attempt`
(1-based) of an event's handler raised `err`:

- `InvalidEvent`: `DeadLetter(reason)`: the event can never succeed; its original bytes go
  to the topic's dead-letter topic with the reason and it counts as done;
- `codec.CodecError` (the handler made an output that can never be encoded):
  `DeadLetter("unencodable: ...")`;
- anything else: `Retry(delay_s)`, capped exponential backoff (`BACKOFF`: 0.4 s doubling
  up to 30 s, no jitter, no limit on the attempts), or the error's `retry_after` when that
  is longer. The event is held (and so its offset) until it succeeds; nothing is
  acknowledged silently.

`StageFailures` is what the two runners share around it, one per stage: `run` applies the
policy to one event, counting every outcome (`EVENTS_PROCESSED`) and feeding the
dead-letter circuit breaker (`common.breaker.DlqBreaker`). When the breaker trips, the
reason is logged as critical and `on_trip(reason)` is called once: the runner stops the
stage and its process exits non-zero (`DlqBreakerTripped`). How the dead letter is written
and how a retry waits are the runner's (`common.consumer.dead_letter`, the one writer).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from common.breaker import DlqBreaker, DlqBreakerTripped
from common.errors import InvalidEvent
from common.retry import RetryPolicy
from common.settings import Settings
from common.telemetry import EVENTS_PROCESSED
from common.topics import Topic
from schemas import codec

log = logging.getLogger(__name__)

#: The backoff between attempts of a failed event: 0.4 s, 0.8 s, ... up to 30 s.
BACKOFF = RetryPolicy(attempts=None, base_s=0.4, cap_s=30.0, jitter=0.0, max_retry_after_s=math.inf)


@dataclass(frozen=True)
class DeadLetter:
    """Never retry: dead-letter the event with `reason`."""

    reason: str


@dataclass(frozen=True)
class Retry:
    """Run the handler again in `delay_s` seconds."""

    delay_s: float


Decision = DeadLetter | Retry
Outcome = Literal["ok", "dead_letter"]


def decide(err: Exception, attempt: int, backoff: RetryPolicy = BACKOFF) -> Decision:
    """The policy (see the module docstring) after failed attempt `attempt` (1-based)."""
    if isinstance(err, InvalidEvent):
        return DeadLetter(err.reason)
    if isinstance(err, codec.CodecError):
        return DeadLetter(f"unencodable: {err}")
    retry_after = getattr(err, "retry_after", None)
    if not isinstance(retry_after, int | float) or isinstance(retry_after, bool):
        retry_after = None
    return Retry(backoff.delay(attempt, retry_after))


def breaker_for(settings: Settings) -> DlqBreaker:
    """A stage's dead-letter breaker as configured (`DLQ_BREAKER_*`)."""
    return DlqBreaker(
        ratio=settings.dlq_breaker_ratio,
        window=settings.dlq_breaker_window,
        min_events=settings.dlq_breaker_min_events,
    )


class Located(Protocol):
    """Where an event was read (`common.consumer.Event`)."""

    topic: Topic
    partition: int
    offset: int


E = TypeVar("E", bound=Located)


class StageFailures:
    """One stage's outcomes under the policy: counted, and watched by its breaker."""

    def __init__(
        self,
        stage: str,
        *,
        breaker: DlqBreaker | None = None,
        on_trip: Callable[[str], None] | None = None,
        backoff: RetryPolicy = BACKOFF,
    ) -> None:
        self.stage = stage
        self.breaker = breaker or DlqBreaker()
        self.backoff = backoff
        self._on_trip = on_trip
        #: Why the stage stopped (the breaker's explanation), once it tripped.
        self.tripped: str | None = None
        self._ok = EVENTS_PROCESSED.labels(stage, "ok")
        self._dead = EVENTS_PROCESSED.labels(stage, "dead_letter")
        self._retry = EVENTS_PROCESSED.labels(stage, "retry")

    async def run(
        self,
        event: E,
        handler: Callable[[E], Awaitable[None]],
        *,
        dead_letter: Callable[[E, str], Awaitable[None]],
        wait: Callable[[float], Awaitable[None]],
    ) -> Outcome:
        """Run `handler(event)` until it succeeds or the event is dead-lettered (with
        `dead_letter(event, reason)`); `wait(seconds)` between attempts may raise (for
        example `CancelledError` when the runner stops) to give up. The outcome."""
        attempt = 0
        while True:
            try:
                await handler(event)
            except Exception as err:  # retryable by default: never acknowledge a failure
                attempt += 1
                decision = decide(err, attempt, self.backoff)
                if isinstance(decision, DeadLetter):
                    await dead_letter(event, decision.reason)
                    self.dead_lettered(decision.reason)
                    return "dead_letter"
                self._retry.inc()
                log.warning(
                    "%s: %s (%s) at %s[%d]@%d, retry %d in %.1fs",
                    self.stage,
                    type(err).__name__,
                    err,
                    event.topic.value,
                    event.partition,
                    event.offset,
                    attempt,
                    decision.delay_s,
                )
                await wait(decision.delay_s)
                continue
            self.succeeded()
            return "ok"

    def succeeded(self, count: int = 1) -> None:
        """`count` events were handled (one by one or together) and succeeded."""
        if count:
            self._ok.inc(count)
            self.breaker.record_ok(count)

    def dead_lettered(self, reason: str) -> None:
        """One event was dead-lettered with `reason`; trips the stage when it should."""
        self._dead.inc()
        self.breaker.record(True, reason)
        if self.breaker.tripped and self.tripped is None:
            self.tripped = self.breaker.explain(self.stage)
            log.critical("%s", self.tripped)
            if self._on_trip is not None:
                self._on_trip(self.tripped)

    def check(self) -> None:
        """Raise `DlqBreakerTripped` once the stage stopped: it takes no further event."""
        if self.tripped is not None:
            raise DlqBreakerTripped(self.tripped)
