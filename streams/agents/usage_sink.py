"""Usage sink agent: consumes usage.records → PostgreSQL `usage_records` and `usage_logs`
through `streams.usage_store` (idempotent by usage_id; see there).

One transaction per record, committed before the record is acked. A row PostgreSQL refuses
is logged and counted (usage.records has no dead-letter topic); an unreachable database is
retried until it answers.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import AgentT

from common.consumer import Event
from common.settings import Settings
from common.topics import Topic
from streams.agents.boundary import Boundary, Producer
from streams.topics import decode, source_topic, to_event
from streams.usage_store import UsageStore

STAGE = "usage-sink"


class UsageSink:
    def __init__(self, store: UsageStore) -> None:
        self._store = store

    async def handle(self, event: Event) -> None:
        await self._store.apply(decode(event))


def register(
    app: faust.App,
    settings: Settings,
    *,
    store: UsageStore,
    producer: Producer,
    boundary: Boundary | None = None,
) -> AgentT[Any]:
    """Add the usage sink agent to `app`; returns the agent."""
    sink = UsageSink(store)
    guard = boundary or Boundary(STAGE, producer)

    async def usage_sink(stream: Any) -> None:
        manual = stream.noack()  # ack only after the commit (see streams.agents.metering)
        async for record in manual.events():
            message = record.message
            event = to_event(
                Topic.USAGE, message.partition, message.offset, record.key, record.value
            )
            await guard.process(event, sink.handle)
            await manual.ack(record)

    return app.agent(source_topic(app, settings, Topic.USAGE), name=STAGE, concurrency=1)(
        usage_sink
    )
