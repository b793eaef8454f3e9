"""The metering Faust agents, in-process: the table, its partitions, the agent loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from common.settings import Settings
from common.topics import Topic
from devstack.probes import eventually
from schemas import codec
from streams.app import create_app
from streams.metering import agent as metering
from streams.metering.state import state_from_bytes
from tests.fakes import FakeProducer
from tests.streams.streams_fakes import (
    OTHER,
    TENANT,
    FakeDirectory,
    FakeHeldQueue,
    inbound,
    tenant,
)


@pytest.fixture
def settings() -> Settings:
    return Settings(streams_store="memory://", topic_partitions=2, topic_prefix="t.")


async def test_the_faust_agent_meters_through_the_table(settings: Settings) -> None:
    app = create_app(settings)
    producer = FakeProducer()
    held = FakeHeldQueue()
    directory = FakeDirectory(tenant(msg_limit=2))
    flushed: list[int] = []  # outputs sent when each changelog flush was awaited

    async def durable() -> None:
        flushed.append(len(producer.sent))

    agent, _ = metering.register(
        app, settings, tenants=directory, producer=producer, held=held, durable=durable
    )
    table: Any = app.tables[metering.TABLE]
    async with agent.test_context() as test_agent:
        for i in range(3):
            payload = codec.encode("inbound_message", inbound(f"e{i}"))
            await test_agent.put(payload, key=TENANT.encode(), partition=1)
        await test_agent.put(b"junk", key=TENANT.encode(), partition=1)
        await _until(lambda: len(producer.on(Topic.INBOUND_DLQ)) == 1)
    state = state_from_bytes(table.get(TENANT))
    assert state.count == 2
    assert state.last_offset == {1: 2}
    assert [a["count_in_period"] for a in producer.on(Topic.ADMITTED)] == [1, 2]
    assert len(producer.on(Topic.HELD)) == 1
    assert held.pending() == ["e2"]
    assert len(producer.on(Topic.INBOUND_DLQ)) == 1
    assert flushed and flushed[0] == 0  # durable before the first output


async def test_a_batch_writes_each_tenant_to_its_own_partition(settings: Settings) -> None:
    app = create_app(settings)
    producer = FakeProducer()
    directory = FakeDirectory(tenant(msg_limit=None), tenant(OTHER, msg_limit=None))
    flushes = 0

    async def durable() -> None:
        nonlocal flushes
        flushes += 1

    agent, _ = metering.register(
        app, settings, tenants=directory, producer=producer, held=FakeHeldQueue(), durable=durable
    )
    table: Any = app.tables[metering.TABLE]
    changelog: list[tuple[int | None, Any]] = []  # (partition, key) of each table write
    send_changelog = table.send_changelog

    def recording(partition: int | None, key: Any, value: Any, *args: Any, **kw: Any) -> Any:
        changelog.append((partition, key))
        return send_changelog(partition, key, value, *args, **kw)

    table.send_changelog = recording
    homes = {TENANT: 1, OTHER: 0}
    async with agent.test_context() as test_agent:
        for i in range(8):  # queued together: the agent takes them as batches
            tenant_id = TENANT if i % 2 else OTHER
            payload = codec.encode("inbound_message", inbound(f"e{i}", tenant_id))
            await test_agent.put(
                payload, key=tenant_id.encode(), partition=homes[tenant_id], wait=False
            )
        await _until(lambda: len(producer.on(Topic.ADMITTED)) == 8)
    assert changelog and all(partition == homes[key] for partition, key in changelog)
    assert {key for _, key in changelog} == {TENANT, OTHER}
    assert len(changelog) < 8 and flushes < 8  # grouped: fewer writes and flushes than events
    assert state_from_bytes(table.get(TENANT)).count == 4
    assert state_from_bytes(table.get(OTHER)).count == 4


async def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the agent run until `done()` (a deadline, not a fixed sleep)."""

    async def probe() -> bool:
        return done()

    await eventually(probe, timeout=timeout, what="the agent to get there", interval=0.01)


def test_the_table_is_named_for_the_app_and_partitioned_like_the_source(
    settings: Settings,
) -> None:
    app = create_app(settings)
    metering.register(
        app, settings, tenants=FakeDirectory(), producer=FakeProducer(), held=FakeHeldQueue()
    )
    table: Any = app.tables[metering.TABLE]
    assert table.partitions == settings.topic_partitions
    assert table.changelog_topic.get_topic_name() == (
        "t.openclaw-saas.streams-meter_state-changelog"
    )
