"""Session-sync agent: consumes session.events → writes PostgreSQL (sessions, messages,
usage_logs, session_stats) through `streams.sessions_store`.

One transaction per event, committed before the event is acked; the writes are idempotent
by event id (see `streams.sessions_store`), so redelivery and full replays change nothing.
A row PostgreSQL refuses (tenant deleted, bad value) is dead-lettered to
session.events.dlq; an unreachable database is retried until it answers.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import AgentT

from common.consumer import Event
from common.errors import InvalidEvent
from common.settings import Settings
from common.topics import Topic
from streams.agents.boundary import Boundary, Producer
from streams.sessions_store import SessionRow, SessionsStore
from streams.topics import decode, source_topic, to_event

STAGE = "session-sync"


class SessionSync:
    """The handler: one SessionEvent in, its rows committed."""

    def __init__(self, store: SessionsStore) -> None:
        self._store = store

    async def handle(self, event: Event) -> None:
        record = decode(event)
        try:
            row = SessionRow.from_record(record)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InvalidEvent(f"malformed session event: {err!r}") from err
        await self._store.apply(row)


def register(
    app: faust.App,
    settings: Settings,
    *,
    store: SessionsStore,
    producer: Producer,
    boundary: Boundary | None = None,
) -> AgentT[Any]:
    """Add the session-sync agent to `app`; returns the agent."""
    sync = SessionSync(store)
    guard = boundary or Boundary(STAGE, producer)

    async def session_sync(stream: Any) -> None:
        manual = stream.noack()  # ack only after the commit (see streams.agents.metering)
        async for record in manual.events():
            message = record.message
            event = to_event(
                Topic.SESSION_EVENTS, message.partition, message.offset, record.key, record.value
            )
            await guard.process(event, sync.handle)
            await manual.ack(record)

    return app.agent(source_topic(app, settings, Topic.SESSION_EVENTS), name=STAGE, concurrency=1)(
        session_sync
    )
