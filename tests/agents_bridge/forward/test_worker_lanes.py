"""The forwarder inside the real KafkaWorker (its consumer replaced by an in-memory one).

Checks what the lanes promise: one gateway request at a time per conversation, in order;
other conversations and tenants go on while one hangs; failures reach the DLQ.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator
from typing import Any

import pytest
from confluent_kafka import Message, TopicPartition

from agents_bridge.forward import worker as forwarder_module
from agents_bridge.forward.gateway_client import GatewayUnavailable
from agents_bridge.forward.worker import Forwarder
from common import consumer as consumer_module
from common.consumer import Event
from common.settings import Settings
from common.topics import Topic
from schemas import codec
from tests.agents_bridge.bridge_fakes import (
    FakeDirectory,
    FakeGateway,
    admitted_event,
    tenant,
)
from tests.fakes import FakeProducer


class MemoryConsumer:
    """Just enough of confluent_kafka.Consumer for KafkaWorker."""

    instances: list[MemoryConsumer] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.commits: list[tuple[str, int, int]] = []
        MemoryConsumer.instances.append(self)

    def subscribe(self, topics: list[str], on_revoke: Any = None) -> None:
        self.topics = topics

    def poll(self, timeout: float) -> Message | None:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        while len(out) < num_messages and not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.commits.extend((tp.topic, tp.partition, tp.offset) for tp in offsets)

    def assignment(self) -> list[TopicPartition]:
        return []

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return (0, 0)

    def close(self) -> None: ...

    def feed(self, event: Event) -> None:
        self.inbox.put(
            Message(
                topic=event.topic.value,
                partition=event.partition,
                offset=event.offset,
                key=event.key,
                value=event.raw,
            )
        )


@pytest.fixture
def memory_consumer(monkeypatch: pytest.MonkeyPatch) -> type[MemoryConsumer]:
    MemoryConsumer.instances = []
    monkeypatch.setattr(consumer_module, "Consumer", MemoryConsumer)
    return MemoryConsumer


@pytest.fixture
async def running(
    memory_consumer: type[MemoryConsumer],
) -> AsyncIterator[tuple[MemoryConsumer, FakeGateway, FakeProducer]]:
    settings = Settings(kafka_bootstrap="memory:9092", gateway_concurrency_per_tenant=2)
    producer = FakeProducer()
    directory = FakeDirectory()
    directory.add(tenant("t-1", gateway_url="http://gw-1"))
    directory.add(tenant("t-2", gateway_url="http://gw-2"))
    gateway = FakeGateway()
    handler = Forwarder(settings, producer=producer, directory=directory, gateway=gateway)
    worker = forwarder_module.build_worker(settings, handler, producer)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    yield memory_consumer.instances[0], gateway, producer
    for gate in gateway.gates.values():
        gate.set()
    worker.stop()
    await asyncio.wait_for(task, timeout=10)


async def test_one_request_at_a_time_per_conversation_in_order(
    running: tuple[MemoryConsumer, FakeGateway, FakeProducer],
) -> None:
    consumer, gateway, producer = running
    gateway.gates["c1-first"] = asyncio.Event()
    consumer.feed(admitted_event(0, event_id="e0", conversation_id="c1", text="c1-first"))
    consumer.feed(admitted_event(1, event_id="e1", conversation_id="c1", text="c1-second"))
    consumer.feed(admitted_event(2, event_id="e2", conversation_id="c2", text="c2-only"))
    consumer.feed(admitted_event(3, event_id="e3", tenant_id="t-2", text="other-tenant"))

    # c2 and the other tenant finish while c1's first turn hangs ...
    await producer.wait_for(lambda: len(producer.records(Topic.OUTBOUND)) == 2)
    assert {r["text"] for r in producer.records(Topic.OUTBOUND)} == {
        "re: c2-only",
        "re: other-tenant",
    }
    # ... and c1's second turn has not been sent to the gateway
    assert "c1-second" not in gateway.started()

    gateway.gates["c1-first"].set()
    await producer.wait_for(lambda: len(producer.records(Topic.OUTBOUND)) == 4)
    c1 = [r["text"] for r in producer.records(Topic.OUTBOUND) if r["conversation_id"] == "c1"]
    assert c1 == ["re: c1-first", "re: c1-second"]
    assert gateway.started().index("c1-first") < gateway.started().index("c1-second")


async def test_unavailable_gateway_goes_to_the_admitted_dlq(
    running: tuple[MemoryConsumer, FakeGateway, FakeProducer],
) -> None:
    consumer, gateway, producer = running
    gateway.errors = [GatewayUnavailable("gateway timeout")]
    event = admitted_event(0, event_id="e-lost?")
    consumer.feed(event)
    consumer.feed(admitted_event(1, event_id="e-unknown", tenant_id="nobody"))

    await producer.wait_for(lambda: len(producer.records(Topic.ADMITTED_DLQ)) == 2)
    dead = {
        codec.decode(r["payload"])["message"]["event_id"]: r
        for r in producer.records(Topic.ADMITTED_DLQ)
    }
    first, second = dead["e-lost?"], dead["e-unknown"]
    assert first["reason"] == "gateway_unavailable: gateway timeout"
    assert first["payload"] == event.raw
    assert first["stage"] == "forwarder"
    assert second["reason"] == "unknown_tenant"
    assert producer.records(Topic.OUTBOUND) == []
