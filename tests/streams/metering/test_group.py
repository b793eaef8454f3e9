"""Metering group commit (`Metering.handle_batch`): one state write per tenant, one wait for
durability, outputs together; the same decisions as one event at a time, and exact under
replays and crashes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from common.consumer import Event
from common.topics import Topic
from streams.boundary import Boundary
from streams.metering.handler import Metering
from streams.metering.state import RECENT_EVENTS, MeterState
from tests.fakes import DateClock, FakeProducer, RecordingSleep
from tests.streams.streams_fakes import (
    NOW,
    OTHER,
    TENANT,
    FakeDirectory,
    FakeHeldQueue,
    RecordingTable,
    inbound_event,
    tenant,
)


class Crash(BaseException):
    """The worker dies here (not an error the agent handles: nothing after it runs)."""


class Durable:
    """The changelog flush: counts calls, remembers how many outputs existed at each, and
    can crash the worker at call number `crash_at` (after the writes, before any output)."""

    def __init__(self, producer: FakeProducer) -> None:
        self.producer = producer
        self.outputs_before: list[int] = []
        self.crash_at: int | None = None

    @property
    def calls(self) -> int:
        return len(self.outputs_before)

    async def __call__(self) -> None:
        self.outputs_before.append(len(self.producer.sent))
        if self.crash_at == self.calls:
            raise Crash


class ShuffledHeldQueue(FakeHeldQueue):
    """Queue rows whose inserts take longer the earlier they were started: concurrent puts
    of one tenant would land out of order."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0

    async def before_put(self) -> None:
        self.started += 1
        for _ in range(10 - min(self.started, 10)):
            await asyncio.sleep(0)  # sleep-ok: yield to the other puts (a deliberate reordering)


class Rig:
    def __init__(self, *, limit: int | None = 1000, other_limit: int | None = 1000) -> None:
        self.directory = FakeDirectory(
            tenant(msg_limit=limit), tenant(OTHER, msg_limit=other_limit)
        )
        self.table = RecordingTable()
        self.producer = FakeProducer()
        self.held: FakeHeldQueue = FakeHeldQueue()
        self.durable = Durable(self.producer)
        self.sleep = RecordingSleep()
        self.boundary = Boundary("metering", self.producer, clock=self.sleep)
        self.metering = self.restart()

    def restart(self) -> Metering:
        """A fresh worker on the same table (the changelog), queue and topics."""
        self.metering = Metering(
            self.directory,
            self.table,
            self.producer,
            self.held,
            refresh=self.directory.reload,
            clock=DateClock(lambda: NOW),
            durable=self.durable,
        )
        return self.metering

    async def batch(self, events: Sequence[Event]) -> None:
        await self.metering.handle_batch(events, self.boundary)

    def state(self, tenant_id: str = TENANT) -> MeterState:
        return MeterState.from_json(self.table.get(tenant_id))

    def admitted(self, tenant_id: str = TENANT) -> list[tuple[str, int]]:
        return [
            (a["message"]["event_id"], a["count_in_period"])
            for a in self.producer.on(Topic.ADMITTED)
            if a["message"]["tenant_id"] == tenant_id
        ]


def mixed(n: int) -> list[Event]:
    """`n` events alternating between two tenants on two partitions."""
    return [
        inbound_event(f"a{i // 2}", i // 2, TENANT, partition=0)
        if i % 2 == 0
        else inbound_event(f"b{i // 2}", i // 2, OTHER, partition=1)
        for i in range(n)
    ]


async def test_a_batch_of_two_tenants_is_one_write_each_and_one_flush() -> None:
    rig = Rig()
    await rig.batch(mixed(10))
    assert sorted(rig.table.writes) == sorted([TENANT, OTHER])
    assert rig.durable.outputs_before == [0]  # one flush, before any output
    assert rig.admitted(TENANT) == [(f"a{i}", i + 1) for i in range(5)]
    assert rig.admitted(OTHER) == [(f"b{i}", i + 1) for i in range(5)]
    assert [u["usage_id"] for u in rig.producer.on(Topic.USAGE)] == [
        f"msg:{e}" for i in range(5) for e in (f"a{i}", f"b{i}")
    ]
    assert (rig.state(TENANT).count, rig.state(OTHER).count) == (5, 5)
    assert rig.state(TENANT).last_offset == {0: 4}
    assert rig.state(OTHER).last_offset == {1: 4}


async def test_a_batch_decides_exactly_like_one_event_at_a_time() -> None:
    feed = mixed(12)
    feed[7] = inbound_event("b3", 3, OTHER, partition=1, conversation_id="77")
    one, many = Rig(limit=4, other_limit=2), Rig(limit=4, other_limit=2)
    for event in feed:
        await one.boundary.process(event, one.metering.handle)
    await many.batch(feed)
    assert [(s.topic, s.key, s.payload) for s in many.producer.sent] == [
        (s.topic, s.key, s.payload) for s in one.producer.sent
    ]
    assert many.table == one.table
    for tenant_id in (TENANT, OTHER):  # each tenant's queue in the same order
        assert many.held.pending(tenant_id) == one.held.pending(tenant_id)
    assert len(many.table.writes) < len(one.table.writes)


async def test_a_replayed_batch_resends_the_same_outputs_and_counts_nothing() -> None:
    rig = Rig(limit=3)
    feed = mixed(8)
    await rig.batch(feed)
    first = [(s.topic, s.payload) for s in rig.producer.sent]
    table = dict(rig.table)
    writes = len(rig.table.writes)
    rig.producer.sent.clear()
    await rig.batch(feed)  # redelivered: nothing was committed
    assert sorted((s.topic, s.payload) for s in rig.producer.sent) == sorted(first)
    assert dict(rig.table) == table
    assert len(rig.table.writes) == writes  # nothing decided again
    assert rig.state(TENANT).count == 3
    assert rig.held.pending() == ["a3"]


@pytest.mark.parametrize("crash_at", [1, 2, 3])
async def test_a_crash_between_the_state_write_and_the_outputs_loses_nothing(
    crash_at: int,
) -> None:
    rig = Rig(limit=None)
    feed = [inbound_event(f"a{i}", i) for i in range(RECENT_EVENTS * 2 + 10)]
    rig.durable.crash_at = crash_at  # the groups before it were sent and acked
    with pytest.raises(Crash):
        await rig.batch(feed)
    rig.restart()  # the states written stay (durable); the events are delivered again
    rig.durable.crash_at = None
    await rig.batch(feed)
    assert set(rig.admitted()) == {(f"a{i}", i + 1) for i in range(len(feed))}
    assert {u["usage_id"] for u in rig.producer.on(Topic.USAGE)} == {
        f"msg:a{i}" for i in range(len(feed))
    }
    assert rig.state().count == len(feed)


async def test_a_group_ends_before_an_unsent_verdict_would_leave_the_window() -> None:
    rig = Rig(limit=None)
    await rig.batch([inbound_event(f"a{i}", i) for i in range(RECENT_EVENTS * 2 + 1)])
    assert rig.durable.calls == 3  # 64 + 64 + 1
    assert rig.admitted() == [(f"a{i}", i + 1) for i in range(RECENT_EVENTS * 2 + 1)]


async def test_failed_outputs_are_sent_again_one_event_at_a_time() -> None:
    rig = Rig()
    rig.producer.fail_next = 2
    await rig.batch(mixed(6))
    assert len(rig.sleep.delays) == 0  # the one-by-one retry succeeded at once
    assert set(rig.admitted(TENANT)) == {(f"a{i}", i + 1) for i in range(3)}
    assert set(rig.admitted(OTHER)) == {(f"b{i}", i + 1) for i in range(3)}
    assert (rig.state(TENANT).count, rig.state(OTHER).count) == (3, 3)


async def test_a_failed_flush_is_retried_before_any_output() -> None:
    rig = Rig()
    failures = [OSError("broker down")]

    async def flaky() -> None:
        rig.durable.outputs_before.append(len(rig.producer.sent))
        if failures:
            raise failures.pop()

    rig.metering = Metering(
        rig.directory,
        rig.table,
        rig.producer,
        rig.held,
        clock=DateClock(lambda: NOW),
        durable=flaky,
    )
    await rig.batch(mixed(4))
    # the batch's flush failed; the first event on its own flushes again, before sending
    assert rig.durable.outputs_before == [0, 0]
    assert rig.state(TENANT).count == 2


async def test_holds_of_one_tenant_are_queued_in_decision_order() -> None:
    rig = Rig(limit=1)
    rig.held = ShuffledHeldQueue()
    rig.restart()
    await rig.batch([inbound_event(f"a{i}", i) for i in range(6)])
    assert rig.held.pending() == [f"a{i}" for i in range(1, 6)]
    assert rig.state().held == 5


async def test_events_needing_more_than_a_decision_go_the_slow_way_in_order() -> None:
    rig = Rig(limit=1)
    await rig.batch([inbound_event(f"a{i}", i) for i in range(3)])  # a1, a2 held
    rig.directory.tenants[TENANT] = replace(rig.directory.tenants[TENANT], msg_limit=10)
    junk = inbound_event("zz", 4, partition=1)
    junk.raw = b"not avro"
    stranger = inbound_event("x0", 0, "9f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f", partition=1)
    feed = [
        inbound_event("b0", 0, OTHER, partition=1),
        inbound_event("a3", 3),  # releases a1, a2 first
        junk,
        stranger,
        inbound_event("b1", 1, OTHER, partition=1),
    ]
    await rig.batch(feed)
    assert rig.admitted(TENANT) == [("a0", 1), ("a1", 2), ("a2", 3), ("a3", 4)]
    assert rig.admitted(OTHER) == [("b0", 1), ("b1", 2)]
    dead = rig.producer.on(Topic.INBOUND_DLQ)
    assert [d["source_offset"] for d in dead] == [4, 0]
    assert dead[0]["reason"].startswith("undecodable")
    assert dead[1]["reason"] == "unknown tenant"
    assert rig.directory.reloads == 1
    assert rig.held.pending() == []


async def test_an_empty_batch_does_nothing() -> None:
    rig = Rig()
    await rig.batch([])
    assert rig.producer.sent == [] and rig.durable.calls == 0


async def test_parsed_states_are_kept_until_partitions_move() -> None:
    rig = Rig()
    await rig.batch([inbound_event("a0", 0)])
    recovered = replace(rig.state(), count=41).to_json()  # another worker's state
    rig.table[TENANT] = recovered
    await rig.batch([inbound_event("a1", 1)])
    assert rig.admitted()[-1] == ("a1", 2)  # from the state it wrote itself
    rig.table[TENANT] = recovered
    rig.metering.forget()  # partitions moved: Faust rebuilt the table
    await rig.batch([inbound_event("a2", 2)])
    assert rig.admitted()[-1] == ("a2", 42)
