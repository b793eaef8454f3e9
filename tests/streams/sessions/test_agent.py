"""Session-sync handler and agent with a fake store: replays, retries, dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from common.errors import InvalidEvent
from common.settings import Settings
from common.topics import Topic
from devstack.probes import eventually
from schemas import codec
from streams.app import create_app
from streams.boundary import Boundary
from streams.sessions import agent as session_sync
from streams.sessions.agent import SessionSync
from streams.sessions.store import Increments, SessionRow, increments
from tests.fakes import FakeProducer, RecordingSleep
from tests.streams.streams_fakes import (
    OTHER,
    TENANT,
    reply_record,
    session_event,
    session_record,
)


@dataclass
class FakeStore:
    """The store's contract in memory: rows keyed like the unique constraints."""

    sessions: dict[tuple[str, str], int] = field(default_factory=dict)  # -> message count
    messages: dict[str, SessionRow] = field(default_factory=dict)
    stats_sessions: int = 0
    stats_messages: int = 0
    failures: list[Exception] = field(default_factory=list)  # raised by the next applies
    applied: int = 0
    batches: list[int] = field(default_factory=list)  # sizes of the batches applied
    batch_failures: list[Exception] = field(default_factory=list)  # by the next batches
    refused: set[str] = field(default_factory=set)  # event ids PostgreSQL would refuse

    async def apply(self, row: SessionRow) -> Increments:
        self.applied += 1
        if self.failures:
            raise self.failures.pop(0)
        if row.event_id in self.refused:
            raise InvalidEvent("rejected by PostgreSQL: 23503: fk")
        key = (row.tenant_id, row.session_id)
        created = key not in self.sessions
        self.sessions.setdefault(key, 0)
        inserted = row.event_id not in self.messages
        if inserted:
            self.messages[row.event_id] = row
            self.sessions[key] = sum(
                1 for m in self.messages.values() if (m.tenant_id, m.session_id) == key
            )
        elif row.status == "admitted" and self.messages[row.event_id].status == "held":
            self.messages[row.event_id] = row  # released from hold
        delta = increments(row, inserted=inserted, session_created=created)
        self.stats_sessions += delta.stats_sessions
        self.stats_messages += delta.stats_messages
        return delta

    async def apply_batch(self, rows: Sequence[SessionRow]) -> Increments:
        self.batches.append(len(rows))
        if self.batch_failures:
            raise self.batch_failures.pop(0)
        total = Increments()
        for row in rows:
            delta = await self.apply(row)
            total = Increments(
                total.stats_sessions + delta.stats_sessions,
                total.stats_messages + delta.stats_messages,
            )
        return total

    def totals(self) -> tuple[Any, ...]:
        return (
            dict(self.sessions),
            sorted(self.messages),
            {k: m.status for k, m in self.messages.items()},
            self.stats_sessions,
            self.stats_messages,
        )


class Rig:
    def __init__(self) -> None:
        self.store = FakeStore()
        self.producer = FakeProducer()
        self.sleep = RecordingSleep()
        self.sync = SessionSync(self.store)
        self.boundary = Boundary("session-sync", self.producer, clock=self.sleep)

    async def feed(self, records: list[dict[str, Any]]) -> list[str]:
        return [
            await self.boundary.process(session_event(i, r), self.sync.handle)
            for i, r in enumerate(records)
        ]


def conversation() -> list[dict[str, Any]]:
    return [
        session_record("e0"),
        reply_record("e0", 100, 20),
        session_record("e1", conversation_id="77"),
        session_record("e2", status="held"),
    ]


async def test_events_become_rows_and_counters() -> None:
    rig = Rig()
    assert await rig.feed(conversation()) == ["ok"] * 4
    assert rig.store.sessions == {(TENANT, "telegram:4242"): 3, (TENANT, "telegram:77"): 1}
    assert rig.store.messages["e2"].status == "held"
    assert (rig.store.stats_sessions, rig.store.stats_messages) == (2, 4)


async def test_replaying_the_topic_changes_nothing() -> None:
    rig = Rig()
    await rig.feed(conversation())
    before = rig.store.totals()
    await rig.feed(conversation() + conversation())
    assert rig.store.totals() == before


async def test_an_unreachable_database_is_retried_never_dropped() -> None:
    rig = Rig()
    rig.store.failures = [psycopg.OperationalError("connection refused")] * 3
    assert await rig.feed([session_record("e0")]) == ["ok"]
    assert rig.store.applied == 4
    assert len(rig.sleep.delays) == 3
    assert "e0" in rig.store.messages
    assert rig.producer.sent == []


async def test_a_row_postgres_refuses_is_dead_lettered() -> None:
    rig = Rig()
    rig.store.failures = [InvalidEvent("rejected by PostgreSQL: 23503: fk")]
    assert await rig.feed([session_record("e0", OTHER)]) == ["dead_letter"]
    [dead] = rig.producer.on(Topic.SESSION_EVENTS_DLQ)
    assert dead["reason"].startswith("rejected by PostgreSQL: 23503")
    assert dead["source_topic"] == "session.events"
    assert dead["key"] == OTHER.encode()
    assert rig.sleep.delays == []


async def test_an_undecodable_event_is_dead_lettered() -> None:
    rig = Rig()
    event = session_event(0, session_record("e0"))
    event.raw = codec.encode("inbound_message", _inbound_like())  # wrong schema
    assert await rig.boundary.process(event, rig.sync.handle) == "dead_letter"
    [dead] = rig.producer.on(Topic.SESSION_EVENTS_DLQ)
    assert "expected session_event" in dead["reason"]
    assert rig.store.applied == 0


def _inbound_like() -> dict[str, Any]:
    return {
        "event_id": "e0",
        "tenant_id": TENANT,
        "channel": "telegram",
        "conversation_id": "1",
        "sender_id": "1",
        "sender_name": None,
        "text": "x",
        "received_at": 0,
        "channel_message_id": None,
        "reply_route": {},
    }


async def test_a_batch_is_one_store_call_and_skips_what_cannot_be_decoded() -> None:
    rig = Rig()
    events = [session_event(i, r) for i, r in enumerate(conversation())]
    events[2].raw = b"junk"
    await rig.sync.handle_batch(events, rig.boundary)
    assert rig.store.batches == [3]
    assert sorted(rig.store.messages) == ["e0", "e2", "reply:e0"]
    [dead] = rig.producer.on(Topic.SESSION_EVENTS_DLQ)
    assert dead["source_offset"] == 2


async def test_a_failed_batch_is_written_again_one_event_at_a_time() -> None:
    rig = Rig()
    rig.store.batch_failures = [InvalidEvent("rejected by PostgreSQL: 23503: fk")]
    rig.store.failures = [psycopg.OperationalError("gone")]
    rig.store.refused = {"reply:e0"}
    events = [session_event(i, r) for i, r in enumerate(conversation())]
    await rig.sync.handle_batch(events, rig.boundary)
    # e0: retried once; reply:e0 refused alone and dead-lettered; the others written
    assert len(rig.sleep.delays) == 1
    assert sorted(rig.store.messages) == ["e0", "e1", "e2"]
    [dead] = rig.producer.on(Topic.SESSION_EVENTS_DLQ)
    assert dead["source_offset"] == 1


async def test_the_faust_agent_writes_through_the_store() -> None:
    settings = Settings(streams_store="memory://", topic_partitions=2)
    app = create_app(settings)
    store = FakeStore()
    agent = session_sync.register(app, settings, store=store, producer=FakeProducer())
    async with agent.test_context() as test_agent:
        for record in conversation():
            payload = codec.encode("session_event", record)
            await test_agent.put(payload, key=TENANT.encode(), partition=0, wait=False)

        async def all_written() -> bool:
            return len(store.messages) >= 4

        await eventually(all_written, timeout=10, what="the four session rows", interval=0.01)
    assert sorted(store.messages) == ["e0", "e1", "e2", "reply:e0"]
    assert len(store.batches) < 4  # queued together, written together


@pytest.mark.parametrize("missing", ["channel", "occurred_at"])
async def test_a_malformed_record_is_invalid(missing: str) -> None:
    rig = Rig()
    event = session_event(0, session_record("e0"))
    event.value = {k: v for k, v in codec.decode(event.raw).items() if k != missing}
    with pytest.raises(InvalidEvent, match="malformed"):
        await rig.sync.handle(event)
