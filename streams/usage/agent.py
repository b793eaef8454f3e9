"""Usage sink agent: consumes usage.records → PostgreSQL `usage_records` and `usage_logs`
through `streams.usage.store` (idempotent by usage_id; see there).

The agent (`boundary.consume_batches`) takes what the stream has buffered, up to
`BATCH_MAX`, and stores it in one transaction (`UsageStore.apply_batch`), committed before
the records are acked. When that fails the records are stored again one per transaction: a
row PostgreSQL refuses is then logged and counted alone (usage.records has no dead-letter
topic), and an unreachable database is retried until it answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faust
from faust.types import AgentT

from common.consumer import Event
from common.errors import InvalidEvent
from common.failure import breaker_for
from common.settings import Settings
from common.topics import Topic
from schemas.types import UsageRecord
from streams.boundary import Boundary, OnTrip, Producer, consume_batches
from streams.topics import decode_as, source_topic
from streams.usage.store import UsageStore

STAGE = "usage-sink"


class UsageSink:
    def __init__(self, store: UsageStore) -> None:
        self._store = store

    async def handle(self, event: Event) -> None:
        await self._store.apply(decode_as(event, UsageRecord))

    async def handle_batch(self, events: Sequence[Event], guard: Boundary) -> None:
        """Every record stored (in one transaction when it can be) or counted as refused."""
        records: list[UsageRecord] = []
        good: list[Event] = []
        for event in events:
            try:
                records.append(decode_as(event, UsageRecord))
            except InvalidEvent:
                await guard.process(event, self.handle)  # counted with the reason
                continue
            good.append(event)
        if not records:
            return
        try:
            await self._store.apply_batch(records)
        except Exception as err:  # one by one: the refused record alone is set aside
            await guard.each(good, self.handle, err)
            return
        guard.done(len(good))


def register(
    app: faust.App,
    settings: Settings,
    *,
    store: UsageStore,
    producer: Producer,
    boundary: Boundary | None = None,
    on_trip: OnTrip | None = None,
) -> AgentT[Any]:
    """Add the usage sink agent to `app`; returns the agent."""
    sink = UsageSink(store)
    guard = boundary or Boundary(STAGE, producer, breaker=breaker_for(settings), on_trip=on_trip)

    async def usage_sink(stream: Any) -> None:
        await consume_batches(stream, Topic.USAGE, sink.handle_batch, guard)

    return app.agent(source_topic(app, settings, Topic.USAGE), name=STAGE, concurrency=1)(
        usage_sink
    )
