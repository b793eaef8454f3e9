"""The Faust wiring of metering: the `meter_state` table and the two agents.

`register` adds to an app the table (one JSON value per tenant, `streams.metering.state`),
the metering agent (messages.inbound, in batches, to `Metering.handle_batch`) and the
release agent (quota.releases, one at a time, to `Metering.handle_release`), both with
manual acks: an event is acked only once its outputs are acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, aclosing, nullcontext
from typing import Any

import faust
from faust.types import AgentT

from common.consumer import Event
from common.failure import breaker_for
from common.settings import Settings
from common.topics import Topic
from streams.boundary import BATCH_MAX, Boundary, OnTrip, Producer, batches
from streams.metering.core import Tenants
from streams.metering.faust_private import ChangelogAcks, current_faust_event
from streams.metering.handler import Metering
from streams.metering.held_store import HeldQueue
from streams.metering.state import state_bytes, state_from_bytes
from streams.topics import source_topic, to_event

STAGE = "metering"
RELEASE_STAGE = "metering-releases"
TABLE = "meter_state"


def register(
    app: faust.App,
    settings: Settings,
    *,
    tenants: Tenants,
    producer: Producer,
    held: HeldQueue,
    refresh: Callable[[], Awaitable[None]] | None = None,
    boundary: Boundary | None = None,
    on_trip: OnTrip | None = None,
    durable: Callable[[], Awaitable[None]] | None = None,
) -> tuple[AgentT[Any], AgentT[Any]]:
    """Add the `meter_state` table, the metering agent and the release agent to `app`.

    `durable` waits until the table's writes are acknowledged (default: every changelog
    record written so far, see `ChangelogAcks`)."""
    table = app.Table(
        TABLE,
        default=None,
        partitions=settings.topic_partitions,
        # values are JSON bytes made here (`state_bytes`): serialised once, not once for the
        # local store and once more for the changelog
        schema=faust.Schema(key_serializer="json", value_serializer="raw"),
        help="Per-tenant count, held messages, offsets and recent verdicts (streams.metering).",
    )
    acks = ChangelogAcks(table)
    # Faust files a table write under the partition of the event being processed (the
    # changelog partition and the local store's partition). A batch decides events of many
    # partitions, so each write runs with its tenant's event made the current one.
    sources: dict[int, Any] = {}  # id(Event) -> its Faust event, while its batch runs

    def scope(event: Event) -> AbstractContextManager[Any]:
        source = sources.get(id(event))
        return nullcontext() if source is None else current_faust_event(source)

    metering = Metering(
        tenants,
        table,
        producer,
        held,
        refresh=refresh,
        durable=durable or acks.wait,
        scope=scope,
        dump=state_bytes,
        load=state_from_bytes,
    )
    guard = boundary or Boundary(STAGE, producer, breaker=breaker_for(settings), on_trip=on_trip)
    release_guard = boundary or Boundary(
        RELEASE_STAGE, producer, breaker=breaker_for(settings), on_trip=on_trip
    )

    async def moved(*_: Any, **__: Any) -> None:
        metering.forget()  # the table is rebuilt from the changelog: parse it again

    app.on_partitions_revoked.connect(moved)
    app.on_partitions_assigned.connect(moved)
    table.on_recover(moved)

    async def meter(stream: Any) -> None:
        # Manual acks: an event is acked only once its outputs are acknowledged. With
        # automatic acks Faust acks the current event even when the agent is cancelled
        # mid-retry (the ack sits in the stream generator's `finally`).
        manual = stream.noack()
        async with aclosing(batches(manual, BATCH_MAX)) as taken:
            async for records in taken:
                guard.check()  # a stage whose breaker tripped takes no further event
                events = []
                for record in records:
                    message = record.message
                    event = to_event(
                        Topic.INBOUND, message.partition, message.offset, record.key, record.value
                    )
                    sources[id(event)] = record
                    events.append(event)
                try:
                    await metering.handle_batch(events, guard)
                finally:
                    sources.clear()
                for record in records:
                    await manual.ack(record)

    async def release(stream: Any) -> None:
        manual = stream.noack()
        async for record in manual.events():
            message = record.message
            event = to_event(
                Topic.RELEASES, message.partition, message.offset, record.key, record.value
            )
            await release_guard.process(event, metering.handle_release)
            await manual.ack(record)

    meter_agent = app.agent(source_topic(app, settings, Topic.INBOUND), name=STAGE, concurrency=1)(
        meter
    )
    release_agent = app.agent(
        source_topic(app, settings, Topic.RELEASES), name=RELEASE_STAGE, concurrency=1
    )(release)
    return meter_agent, release_agent
