"""The producer contract, run against `tests.fakes.FakeProducer` and `common.kafka.EventProducer`.

The unit tests lean on the fake; these tests keep it honest. `send` returns an awaitable
that resolves once the record is accepted; a record that does not fit its schema fails at
the call, before anything is sent; what was sent reads back per topic, in order, with its key
and decoded value; a producer that is down (or closed) fails its sends with
`KafkaUnavailable`. The real producer's round trips need the broker (integration); its
failures do not.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import pytest
from confluent_kafka import Consumer

from common.errors import KafkaUnavailable
from common.kafka import EventProducer, RawEventSink, ensure_topics
from common.settings import Settings
from common.topics import Topic
from devstack import Stack
from devstack._proc import free_port
from schemas import codec
from tests.fakes import FakeProducer

TOPICS = (Topic.SESSION_EVENTS, Topic.USAGE)


class Producer(RawEventSink, Protocol):
    def close(self, timeout: float = 10.0) -> None: ...


class Rig:
    """A producer and a way to read back, per topic, what reached the (fake) broker."""

    def __init__(self, producer: Producer, settings: Settings | None = None) -> None:
        self.producer = producer
        self._settings = settings

    def read(self, topic: Topic, count: int) -> list[tuple[str, dict[str, Any]]]:
        """(key, decoded value) of the first `count` records on `topic`, in order."""
        if isinstance(self.producer, FakeProducer):
            return self.producer.keyed(topic)[:count]
        assert self._settings is not None
        return _consume(self._settings, topic, count)


def _consume(settings: Settings, topic: Topic, count: int) -> list[tuple[str, dict[str, Any]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"contract-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.topic(topic.value)])
    seen: list[tuple[str, dict[str, Any]]] = []
    try:
        for _ in range(120):  # at most a minute: the group join takes a few seconds
            for msg in consumer.consume(100, timeout=0.5):
                value, key = msg.value(), msg.key()
                assert msg.error() is None and value is not None and key is not None
                seen.append((key.decode(), codec.decode(value, expect=topic.schema)))
            if len(seen) >= count:
                break
    finally:
        consumer.close()
    return seen


@pytest.fixture(
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("real", id="real", marks=pytest.mark.integration),
    ]
)
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if request.param == "fake":
        yield Rig(FakeProducer())
        return
    stack: Stack = request.getfixturevalue("stack")
    assert stack.kafka is not None
    settings = Settings.from_env(
        {},
        kafka_bootstrap=stack.kafka.bootstrap,
        topic_prefix=f"c{uuid.uuid4().hex[:8]}.",
        topic_partitions=1,  # one partition: the order of a topic is the order of its sends
    )
    ensure_topics(settings, TOPICS)
    producer = EventProducer(settings)
    yield Rig(producer, settings)
    producer.close()


def _dead_broker() -> Settings:
    return Settings.from_env({}, kafka_bootstrap=f"127.0.0.1:{free_port()}")


@pytest.fixture(params=["fake-down", "fake-closed", "real-dead-broker", "real-closed"])
def down(request: pytest.FixtureRequest) -> Iterator[Producer]:
    """A producer whose sends cannot be accepted (no broker needed)."""
    producer: Producer
    if request.param.startswith("fake"):
        fake = FakeProducer()
        if request.param == "fake-down":
            fake.down = True
        else:
            fake.close()
        producer = fake
    else:
        producer = EventProducer(_dead_broker())
        if request.param == "real-closed":
            producer.close(timeout=0)
    yield producer
    producer.close(timeout=0)


def _session_event(i: int, **changes: Any) -> dict[str, Any]:
    _, example = codec.examples("session_event")[0]
    return {**example, "event_id": f"e{i}", "text": f"m{i}", **changes}


def _usage(i: int) -> dict[str, Any]:
    _, example = codec.examples("usage_record")[0]
    return {**example, "usage_id": f"u{i}"}


def _as_read(topic: Topic, record: Mapping[str, Any]) -> dict[str, Any]:
    return codec.decode(codec.encode(topic.schema, record), expect=topic.schema)


async def test_send_returns_an_awaitable_that_resolves_once_accepted(rig: Rig) -> None:
    ack = rig.producer.send(Topic.SESSION_EVENTS, "k", _session_event(1), timeout=10)
    assert inspect.isawaitable(ack)
    await asyncio.wait_for(ack, 30)  # resolves (an unaccepted send raises)
    assert rig.read(Topic.SESSION_EVENTS, 1) == [
        ("k", _as_read(Topic.SESSION_EVENTS, _session_event(1)))
    ]


async def test_a_record_that_does_not_fit_its_schema_fails_before_anything_is_sent(
    rig: Rig,
) -> None:
    with pytest.raises(codec.CodecError):
        rig.producer.send(Topic.SESSION_EVENTS, "k", {"event_id": "only this"})
    await rig.producer.send(Topic.SESSION_EVENTS, "k", _session_event(2), timeout=10)
    assert [value["event_id"] for _, value in rig.read(Topic.SESSION_EVENTS, 1)] == ["e2"]


async def test_what_was_sent_reads_back_per_topic_in_order_with_key_and_value(rig: Rig) -> None:
    records = [
        (Topic.USAGE, _usage(i)) if i % 2 == 0 else (Topic.SESSION_EVENTS, _session_event(i))
        for i in range(6)
    ]
    sends = [
        rig.producer.send(topic, f"k{i % 3}", record, timeout=10)
        for i, (topic, record) in enumerate(records)
    ]
    await asyncio.wait_for(asyncio.gather(*sends), 30)
    for topic in TOPICS:
        expected = [
            (f"k{i % 3}", _as_read(topic, record))
            for i, (sent_to, record) in enumerate(records)
            if sent_to is topic
        ]
        assert rig.read(topic, len(expected)) == expected, topic


async def test_raw_bytes_read_back_as_the_record_they_encode(rig: Rig) -> None:
    payload = codec.encode(Topic.USAGE.schema, _usage(7))
    await rig.producer.send_raw(Topic.USAGE, b"k7", payload, timeout=10)
    assert rig.read(Topic.USAGE, 1) == [("k7", _as_read(Topic.USAGE, _usage(7)))]


async def test_a_producer_that_is_down_fails_sends_with_kafka_unavailable(
    down: Producer,
) -> None:
    send = down.send(Topic.SESSION_EVENTS, "k", _session_event(3), timeout=0.5)
    with pytest.raises(KafkaUnavailable):
        await asyncio.wait_for(send, 10)
    with pytest.raises(KafkaUnavailable):
        payload = codec.encode(Topic.SESSION_EVENTS.schema, _session_event(4))
        await asyncio.wait_for(down.send_raw(Topic.SESSION_EVENTS, b"k", payload, timeout=0.5), 10)
