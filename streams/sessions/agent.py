"""Session-sync agent: consumes session.events → writes PostgreSQL (sessions, messages,
usage_logs, session_stats) through `streams.sessions.store`.

The agent (`boundary.consume_batches`) takes what the stream has buffered, up to
`BATCH_MAX`, and writes it in one transaction (`SessionsStore.apply_batch`, set-based),
committed before the events are acked; the writes are idempotent by event id (see
`streams.sessions.store`), so redelivery and full replays change nothing. An undecodable or
malformed event is dead-lettered to session.events.dlq on its own. When the batch's
transaction fails, its events are written again one per transaction: a row PostgreSQL
refuses (tenant deleted, bad value) is then dead-lettered alone, and an unreachable database
is retried until it answers.
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
from schemas.types import SessionEvent
from streams.boundary import Boundary, OnTrip, Producer, consume_batches
from streams.sessions.store import SessionRow, SessionsStore
from streams.topics import decode_as, source_topic

STAGE = "session-sync"


class SessionSync:
    """The handlers: one SessionEvent (or a batch) in, its rows committed."""

    def __init__(self, store: SessionsStore) -> None:
        self._store = store

    async def handle(self, event: Event) -> None:
        await self._store.apply(_row(event))

    async def handle_batch(self, events: Sequence[Event], guard: Boundary) -> None:
        """Every event written (in one transaction when it can be) or dead-lettered."""
        rows: list[SessionRow] = []
        good: list[Event] = []
        for event in events:
            try:
                rows.append(_row(event))
            except InvalidEvent:
                await guard.process(event, self.handle)  # dead-letters it with the reason
                continue
            good.append(event)
        if not rows:
            return
        try:
            await self._store.apply_batch(rows)
        except Exception as err:  # one by one: the refused row alone is dead-lettered
            await guard.each(good, self.handle, err)
            return
        guard.done(len(good))


def _row(event: Event) -> SessionRow:
    record = decode_as(event, SessionEvent)
    try:
        return SessionRow.from_record(record)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise InvalidEvent(f"malformed session event: {err!r}") from err


def register(
    app: faust.App,
    settings: Settings,
    *,
    store: SessionsStore,
    producer: Producer,
    boundary: Boundary | None = None,
    on_trip: OnTrip | None = None,
) -> AgentT[Any]:
    """Add the session-sync agent to `app`; returns the agent."""
    sync = SessionSync(store)
    guard = boundary or Boundary(STAGE, producer, breaker=breaker_for(settings), on_trip=on_trip)

    async def session_sync(stream: Any) -> None:
        await consume_batches(stream, Topic.SESSION_EVENTS, sync.handle_batch, guard)

    return app.agent(source_topic(app, settings, Topic.SESSION_EVENTS), name=STAGE, concurrency=1)(
        session_sync
    )
