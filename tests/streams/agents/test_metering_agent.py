"""Metering handler and agent: outputs, retries without double counting, dead letters."""

from __future__ import annotations

from typing import Any

import pytest

from common.settings import Settings
from common.topics import Topic
from schemas import codec
from streams.agents import metering
from streams.agents.boundary import Boundary
from streams.agents.metering import Metering
from streams.app import create_app
from streams.metering import MeterState, to_ms
from tests.streams.streams_fakes import (
    NOW,
    OTHER,
    PERIOD_END,
    PERIOD_START,
    RECEIVED_MS,
    TENANT,
    FakeDirectory,
    FakeProducer,
    RecordingSleep,
    inbound,
    inbound_event,
    tenant,
)


class Rig:
    def __init__(self, *, limit: int | None = 2) -> None:
        self.directory = FakeDirectory(tenant(msg_limit=limit))
        self.table: dict[str, Any] = {}
        self.producer = FakeProducer()
        self.sleep = RecordingSleep()
        self.metering = Metering(
            self.directory,
            self.table,
            self.producer,
            refresh=self.directory.reload,
            clock=lambda: NOW,
        )
        self.boundary = Boundary("metering", self.producer, sleep=self.sleep)

    async def feed(self, *events: Any) -> list[str]:
        return [await self.boundary.process(e, self.metering.handle) for e in events]

    def state(self, tenant_id: str = TENANT) -> MeterState:
        return MeterState.from_json(self.table.get(tenant_id))


async def test_admitted_message_emits_session_event_then_admitted_and_usage() -> None:
    rig = Rig()
    assert await rig.feed(inbound_event("e0", 0)) == ["ok"]
    assert [s.topic for s in rig.producer.sent] == [
        Topic.SESSION_EVENTS,
        Topic.ADMITTED,
        Topic.USAGE,
    ]
    assert all(s.key == TENANT for s in rig.producer.sent)
    [session] = rig.producer.on(Topic.SESSION_EVENTS)
    assert session["event_id"] == "e0"
    assert (session["kind"], session["role"], session["status"]) == (
        "message_in",
        "user",
        "admitted",
    )
    assert session["text"] == "hello e0"
    assert to_ms(session["occurred_at"]) == RECEIVED_MS
    [admitted] = rig.producer.on(Topic.ADMITTED)
    assert admitted["message"]["event_id"] == "e0"
    assert admitted["message"]["reply_route"] == {"chat_id": "4242"}
    assert admitted["count_in_period"] == 1
    assert admitted["plan_id"] == "individual"
    assert admitted["period_start"] == PERIOD_START
    assert admitted["period_end"] == PERIOD_END
    assert admitted["metered_at"] == NOW
    [usage] = rig.producer.on(Topic.USAGE)
    assert usage["usage_id"] == "msg:e0"
    assert (usage["kind"], usage["messages"], usage["channel"]) == ("message", 1, "telegram")
    assert rig.state().count == 1


async def test_over_the_limit_the_original_bytes_go_to_held() -> None:
    rig = Rig(limit=1)
    held_event = inbound_event("e1", 1)
    await rig.feed(inbound_event("e0", 0), held_event)
    assert [s.topic for s in rig.producer.sent[3:]] == [Topic.SESSION_EVENTS, Topic.HELD]
    assert rig.producer.sent[-1].payload == held_event.raw
    assert rig.producer.on(Topic.SESSION_EVENTS)[-1]["status"] == "held"
    assert len(rig.producer.on(Topic.USAGE)) == 1
    assert rig.state().count == 1


async def test_a_failed_send_is_retried_and_counted_once() -> None:
    rig = Rig()
    rig.producer.fail_next = 2  # the session event fails twice
    assert await rig.feed(inbound_event("e0", 0)) == ["ok"]
    assert len(rig.sleep.delays) == 2
    assert rig.sleep.delays[0] < rig.sleep.delays[1]
    assert [a["count_in_period"] for a in rig.producer.on(Topic.ADMITTED)] == [1]
    assert rig.state().count == 1


async def test_a_failure_between_outputs_resends_the_same_decision() -> None:
    rig = Rig()
    await rig.feed(inbound_event("e0", 0))
    rig.producer.sent.clear()
    # crash after the state write: the event is delivered again
    await rig.feed(inbound_event("e0", 0), inbound_event("e0", 5))  # replay + re-publish
    assert [a["count_in_period"] for a in rig.producer.on(Topic.ADMITTED)] == [1, 1]
    assert {u["usage_id"] for u in rig.producer.on(Topic.USAGE)} == {"msg:e0"}
    assert rig.state().count == 1
    assert rig.state().last_offset == {0: 5}


async def test_unknown_tenant_reloads_the_directory_once_then_dead_letters() -> None:
    rig = Rig()
    event = inbound_event("x0", 0, OTHER)
    assert await rig.feed(event, inbound_event("x1", 1, OTHER)) == ["dead_letter"] * 2
    assert rig.directory.reloads == 1  # rate limited
    dead = rig.producer.on(Topic.INBOUND_DLQ)
    assert [d["source_offset"] for d in dead] == [0, 1]
    assert dead[0]["payload"] == event.raw
    assert dead[0]["key"] == OTHER.encode()
    assert dead[0]["reason"] == "unknown tenant"
    assert dead[0]["stage"] == "metering"
    assert OTHER not in rig.table


async def test_a_tenant_created_a_moment_ago_is_found_after_a_reload() -> None:
    rig = Rig()
    rig.directory.on_reload = [tenant(OTHER)]
    assert await rig.feed(inbound_event("x0", 0, OTHER)) == ["ok"]
    assert rig.state(OTHER).count == 1


async def test_a_failed_directory_reload_is_retried_not_dead_lettered() -> None:
    rig = Rig()
    rig.directory.on_reload = [tenant(OTHER)]
    real_reload = rig.directory.reload
    failures = [OSError("PostgreSQL is down")]

    async def flaky_reload() -> None:
        if failures:
            raise failures.pop()
        await real_reload()

    rig.metering = Metering(
        rig.directory, rig.table, rig.producer, refresh=flaky_reload, clock=lambda: NOW
    )
    assert await rig.feed(inbound_event("x0", 0, OTHER)) == ["ok"]
    assert len(rig.sleep.delays) == 1
    assert rig.producer.on(Topic.INBOUND_DLQ) == []


async def test_an_undecodable_event_is_dead_lettered() -> None:
    rig = Rig()
    event = inbound_event("e0", 3)
    event.raw = b"not avro"
    assert await rig.feed(event) == ["dead_letter"]
    [dead] = rig.producer.on(Topic.INBOUND_DLQ)
    assert dead["payload"] == b"not avro"
    assert dead["reason"].startswith("undecodable")


async def test_a_dead_letter_write_is_retried_until_the_broker_has_it() -> None:
    rig = Rig()
    rig.producer.fail_next = 3
    assert await rig.feed(inbound_event("x0", 0, OTHER)) == ["dead_letter"]
    assert len(rig.producer.on(Topic.INBOUND_DLQ)) == 1
    assert len(rig.sleep.delays) == 3


# -- the Faust agent, in-process ------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    return Settings(streams_store="memory://", topic_partitions=2, topic_prefix="t.")


async def test_the_faust_agent_meters_through_the_table(settings: Settings) -> None:
    app = create_app(settings)
    producer = FakeProducer()
    directory = FakeDirectory(tenant(msg_limit=2))
    agent = metering.register(app, settings, tenants=directory, producer=producer)
    table: Any = app.tables[metering.TABLE]
    async with agent.test_context() as test_agent:
        for i in range(3):
            payload = codec.encode("inbound_message", inbound(f"e{i}"))
            await test_agent.put(payload, key=TENANT.encode(), partition=1)
        await test_agent.put(b"junk", key=TENANT.encode(), partition=1)
    state = MeterState.from_json(table.get(TENANT))
    assert state.count == 2
    assert state.last_offset == {1: 2}
    assert [a["count_in_period"] for a in producer.on(Topic.ADMITTED)] == [1, 2]
    assert len(producer.on(Topic.HELD)) == 1
    assert len(producer.on(Topic.INBOUND_DLQ)) == 1


def test_the_table_is_named_for_the_app_and_partitioned_like_the_source(
    settings: Settings,
) -> None:
    app = create_app(settings)
    metering.register(app, settings, tenants=FakeDirectory(), producer=FakeProducer())
    table: Any = app.tables[metering.TABLE]
    assert table.partitions == settings.topic_partitions
    assert table.changelog_topic.get_topic_name() == (
        "t.openclaw-saas.streams-meter_state-changelog"
    )
