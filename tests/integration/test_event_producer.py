"""common.kafka.EventProducer on the real broker: every future resolves, nothing reorders."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer

from common.kafka import EventProducer
from common.settings import Settings
from common.topics import Topic
from schemas import codec

pytestmark = pytest.mark.integration


def _session_event(i: int) -> dict[str, Any]:
    _, example = codec.examples("session_event")[0]
    return {**example, "event_id": f"e{i}", "text": f"m{i}"}


async def test_a_batch_of_sends_is_acknowledged_whole_and_in_order_per_key(
    settings: Settings,
) -> None:
    producer = EventProducer(settings)
    try:
        n, keys = 2000, 7
        sends = [
            producer.send(Topic.SESSION_EVENTS, f"k{i % keys}", _session_event(i), timeout=5)
            for i in range(n)
        ]
        await asyncio.wait_for(asyncio.gather(*sends), 60)
    finally:
        producer.close()
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"probe-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.topic(Topic.SESSION_EVENTS.value)])
    seen: dict[str, list[int]] = {}
    try:
        for _ in range(200):
            for msg in consumer.consume(1000, timeout=0.5):
                value, raw_key = msg.value(), msg.key()
                assert msg.error() is None and value is not None and raw_key is not None
                record = codec.decode(value, expect="session_event")
                seen.setdefault(raw_key.decode(), []).append(int(record["event_id"][1:]))
            if sum(len(v) for v in seen.values()) >= n:
                break
    finally:
        consumer.close()
    assert sum(len(v) for v in seen.values()) == n
    for key, ids in seen.items():
        assert ids == sorted(ids), key
        assert ids == [i for i in range(n) if f"k{i % keys}" == key]
