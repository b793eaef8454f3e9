"""The agent boundary: what happens when handling one event fails.

In Faust an exception that leaves an agent acks the event and loses it, so every agent runs
its handler through `Boundary.process`, which applies the consumers' one failure policy
(`common.failure`, the same as `common.consumer.KafkaWorker`'s) and never lets a failure
out: an event that can never succeed (undecodable payload, unknown tenant, a record that
cannot be encoded, a row PostgreSQL refuses) is dead-lettered with the reason (written
until the broker has it) and counts as done; anything else (broker or database
unavailable) is retried with capped exponential backoff, forever, holding the event and so
its partition's offset.

Only cancellation (worker shutdown, partitions revoked) ends the retries; the agent then
does not ack the event, so it is consumed again.

The dead-letter breaker: a stage that dead-letters most of what it reads stops. When its
breaker trips, `on_trip(reason)` is called once (`streams.main` then stops the worker,
which exits non-zero) and the stage takes no further event: `process` and `check` raise
`DlqBreakerTripped`, leaving the event unacknowledged.

Batches: `batches` groups a Faust stream's events into what is already buffered (never
waiting for more, so a quiet stream still handles each event at once), and an agent handles
a batch in one go (one transaction, one flush). When that fails, `each` runs every event of
the batch through `process` on its own, so the failure rules above still apply per event
(the one invalid event is dead-lettered, the others are stored). `consume_batches` is that
loop for an agent whose batch handler needs nothing of Faust: batches in, acks after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from common.breaker import DlqBreaker
from common.consumer import Event, dead_letter
from common.failure import BACKOFF, Outcome, StageFailures
from common.kafka import RawEventSink
from common.retry import Clock, SystemClock
from common.topics import Topic
from streams.topics import to_event

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
#: Called once with the reason when a stage's dead-letter breaker trips.
OnTrip = Callable[[str], None]

#: Most events an agent takes in one batch.
BATCH_MAX = 1000


#: What the agents need of `common.kafka.EventProducer` (tests pass a fake).
Producer = RawEventSink


class Boundary:
    """Runs handlers for one stage; see the module docstring for the failure rules."""

    def __init__(
        self,
        stage: str,
        producer: Producer,
        *,
        retry_cap_s: float = 30.0,
        clock: Clock | None = None,
        breaker: DlqBreaker | None = None,
        on_trip: OnTrip | None = None,
    ) -> None:
        self.stage = stage
        self._producer = producer
        self._sleep = (clock or SystemClock()).sleep
        self._failures = StageFailures(
            stage, breaker=breaker, on_trip=on_trip, backoff=replace(BACKOFF, cap_s=retry_cap_s)
        )

    @property
    def tripped(self) -> str | None:
        """Why the stage stopped (its dead-letter breaker tripped), if it did."""
        return self._failures.tripped

    def check(self) -> None:
        """Raise `DlqBreakerTripped` once the stage stopped: it takes no further event."""
        self._failures.check()

    def done(self, count: int) -> None:
        """`count` events were handled together (as a batch) and succeeded."""
        self._failures.succeeded(count)

    async def each(self, events: Sequence[Event], handler: Handler, err: Exception) -> None:
        """Handling `events` as a batch failed with `err`: run each on its own."""
        if events:
            log.warning(
                "%s: a batch of %d failed (%s: %s); handling each event on its own",
                self.stage,
                len(events),
                type(err).__name__,
                err,
            )
        for event in events:
            await self.process(event, handler)

    async def process(self, event: Event, handler: Handler) -> Outcome:
        """Run `handler` until it succeeds or the event is dead-lettered; the outcome."""
        self.check()
        return await self._failures.run(
            event, handler, dead_letter=self.dead_letter, wait=self._sleep
        )

    async def dead_letter(self, event: Event, reason: str) -> None:
        """Write the original event to its topic's dead-letter topic (until the broker has it)."""
        await dead_letter(self._producer, self.stage, event, reason, pause=self._pause)

    async def _pause(self, attempt: int) -> None:
        await self._sleep(self._failures.backoff.delay(attempt))


async def batches(stream: Any, max_size: int = BATCH_MAX) -> AsyncGenerator[list[Any], None]:
    """The events of a Faust stream in batches of what has arrived, at most `max_size`.

    A task reads the stream into a bounded queue; each batch is the first event to arrive
    plus whatever is queued behind it at that moment, so a batch never waits for more
    events (a lone event is handled at once), and nothing already read is held back while
    the stream waits (Faust may skip a queued event, e.g. one of a previous generation after
    a rebalance). Close the generator (`contextlib.aclosing`) to stop the reader: events it
    read but did not hand out are never acked, so they are consumed again."""
    queue: asyncio.Queue[Any] = asyncio.Queue(max_size)

    async def read() -> None:
        async for record in stream.events():
            await queue.put(record)

    reader = asyncio.ensure_future(read())
    try:
        while True:
            if queue.empty():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    reader.result()  # the stream failed: raise; or it ended
                    if queue.empty():
                        return
                    batch = [queue.get_nowait()]
                else:
                    batch = [getter.result()]
            else:
                batch = [queue.get_nowait()]
            while len(batch) < max_size and not queue.empty():
                batch.append(queue.get_nowait())
            yield batch
    finally:
        reader.cancel()


async def consume_batches(
    stream: Any,
    topic: Topic,
    handle_batch: Callable[[Sequence[Event], Boundary], Awaitable[None]],
    guard: Boundary,
) -> None:
    """Run an agent: the stream's events, in `batches`, to `handle_batch(events, guard)`.

    Acks are manual: a batch's events are acked only once `handle_batch` returned (its
    side effects done). With Faust's automatic acks the current event would be acked even
    when the agent is cancelled mid-retry (see `streams.metering.agent`)."""
    manual = stream.noack()
    async with aclosing(batches(manual, BATCH_MAX)) as taken:
        async for records in taken:
            guard.check()  # a stage whose breaker tripped takes no further event
            events = [
                to_event(topic, r.message.partition, r.message.offset, r.key, r.value)
                for r in records
            ]
            await handle_batch(events, guard)
            for record in records:
                await manual.ack(record)
