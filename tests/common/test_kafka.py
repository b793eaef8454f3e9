"""common.kafka.EventProducer without a broker: failures arrive as KafkaUnavailable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from common.errors import KafkaUnavailable
from common.kafka import EventProducer
from common.settings import Settings
from common.telemetry import KAFKA_PRODUCE_ERRORS
from common.topics import Topic
from devstack._proc import free_port
from schemas import codec


def _session_event() -> dict[str, Any]:
    _, example = codec.examples("session_event")[0]
    return dict(example)


@pytest.fixture
def producer() -> Iterator[EventProducer]:
    """A producer pointed at a loopback port nobody listens on."""
    p = EventProducer(Settings.from_env({}, kafka_bootstrap=f"127.0.0.1:{free_port()}"))
    yield p
    p.close(timeout=0)


def _errors(topic: Topic) -> float:
    return KAFKA_PRODUCE_ERRORS.labels(topic.value)._value.get()  # type: ignore[no-any-return]


async def test_each_send_of_a_batch_fails_after_its_timeout(producer: EventProducer) -> None:
    before = _errors(Topic.SESSION_EVENTS)
    started = time.monotonic()
    sends = [
        producer.send(Topic.SESSION_EVENTS, f"k{i}", _session_event(), timeout=0.3)
        for i in range(50)
    ]
    results = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), 10)
    assert all(isinstance(r, KafkaUnavailable) for r in results), results
    assert time.monotonic() - started < 5  # the timeout, not librdkafka's 15 s
    assert _errors(Topic.SESSION_EVENTS) - before == 50


async def test_a_record_that_does_not_fit_its_schema_fails_before_anything_is_sent(
    producer: EventProducer,
) -> None:
    with pytest.raises(codec.CodecError):
        producer.send(Topic.SESSION_EVENTS, "k", {"event_id": "only this"})


async def test_close_fails_what_the_broker_never_acknowledged(producer: EventProducer) -> None:
    send = producer.send(Topic.SESSION_EVENTS, "k", _session_event())
    await asyncio.to_thread(producer.close, 0.2)
    with pytest.raises(KafkaUnavailable, match="[Pp]urge"):
        await asyncio.wait_for(send, 5)


async def test_a_send_after_close_fails_at_once_and_close_is_idempotent(
    producer: EventProducer,
) -> None:
    producer.close(timeout=0)
    producer.close(timeout=0)
    with pytest.raises(KafkaUnavailable, match="closed"):
        await asyncio.wait_for(producer.send(Topic.SESSION_EVENTS, "k", _session_event()), 1)


async def test_the_delivery_timeout_of_librdkafka_bounds_a_send_without_a_timer() -> None:
    settings = Settings.from_env({}, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    producer = EventProducer(settings, **{"message.timeout.ms": 300})
    try:
        send = producer.send(Topic.SESSION_EVENTS, "k", _session_event(), timeout=60)
        with pytest.raises(KafkaUnavailable, match="timed out"):
            await asyncio.wait_for(send, 10)
    finally:
        producer.close(timeout=0)
