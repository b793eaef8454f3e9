"""The agent boundary: what happens when handling one event fails.

In Faust an exception that leaves an agent acks the event and loses it, so every agent runs
its handler through `Boundary.process`, which never lets one out:

- `InvalidEvent` (undecodable payload, unknown tenant, a record that cannot be encoded, a
  row PostgreSQL refuses): the original bytes go to the topic's dead-letter topic with the
  reason, retried until the broker has them, and the event counts as done;
- anything else (broker or database unavailable): retried with capped exponential
  backoff, forever, holding the event and so its partition's offset.

Only cancellation (worker shutdown, partitions revoked) ends the retries; the agent then
does not ack the event, so it is consumed again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from common.consumer import Event
from common.errors import InvalidEvent
from common.telemetry import DEAD_LETTERS, EVENTS_PROCESSED
from common.topics import Topic
from schemas import codec

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class Producer(Protocol):
    """What the agents need of `common.kafka.EventProducer` (tests pass a fake)."""

    async def send(
        self,
        topic: Topic,
        key: str,
        record: Mapping[str, Any],
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None: ...

    async def send_raw(
        self, topic: Topic, key: bytes | None, payload: bytes, *, timeout: float | None = None
    ) -> None: ...


def backoff(attempt: int, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based)."""
    delay = min(cap, 0.2 * 2.0 ** min(attempt, 10))
    if retry_after is not None and retry_after > 0:
        delay = max(delay, retry_after)
    return delay


class Boundary:
    """Runs handlers for one stage; see the module docstring for the failure rules."""

    def __init__(
        self,
        stage: str,
        producer: Producer,
        *,
        retry_cap_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.stage = stage
        self._producer = producer
        self._retry_cap = retry_cap_s
        self._sleep = sleep

    async def process(self, event: Event, handler: Handler) -> str:
        """Run `handler` until it succeeds or the event is dead-lettered; the outcome."""
        attempt = 0
        while True:
            try:
                try:
                    await handler(event)
                except codec.CodecError as err:  # an output that can never be encoded
                    raise InvalidEvent(f"unencodable: {err}") from err
            except InvalidEvent as err:
                await self.dead_letter(event, err.reason)
                EVENTS_PROCESSED.labels(self.stage, "dead_letter").inc()
                return "dead_letter"
            except Exception as err:  # retryable by default: never acknowledge a failure
                attempt += 1
                retry_after = getattr(err, "retry_after", None)
                delay = backoff(
                    attempt, self._retry_cap, retry_after if _is_number(retry_after) else None
                )
                EVENTS_PROCESSED.labels(self.stage, "retry").inc()
                log.warning(
                    "%s: %s (%s) at %s[%d]@%d, retry %d in %.1fs",
                    self.stage,
                    type(err).__name__,
                    err,
                    event.topic.value,
                    event.partition,
                    event.offset,
                    attempt,
                    delay,
                )
                await self._sleep(delay)
                continue
            EVENTS_PROCESSED.labels(self.stage, "ok").inc()
            return "ok"

    async def dead_letter(self, event: Event, reason: str) -> None:
        """Write the original event to its topic's dead-letter topic (until the broker has it)."""
        DEAD_LETTERS.labels(self.stage, reason.split(":", 1)[0][:40]).inc()
        log.error(
            "%s: dead-letter %s[%d]@%d: %s",
            self.stage,
            event.topic.value,
            event.partition,
            event.offset,
            reason,
        )
        dlq = event.topic.dlq
        if dlq is None:
            return
        record = {
            "stage": self.stage,
            "source_topic": event.topic.value,
            "source_partition": event.partition,
            "source_offset": event.offset,
            "key": event.key,
            "payload": event.raw,
            "reason": reason,
            "failed_at": int(time.time() * 1000),
        }
        key = (event.key or b"").decode("utf-8", "replace")
        attempt = 0
        while True:
            try:
                await self._producer.send(dlq, key, record)
                return
            except Exception as err:
                attempt += 1
                log.warning("%s: dead-letter write failed (%s), retrying", self.stage, err)
                await self._sleep(backoff(attempt, self._retry_cap))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
