"""common.consumer.KafkaWorker on the real broker: commit after the side effect, DLQ, breaker."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from common.breaker import DlqBreakerTripped
from common.consumer import Event, KafkaWorker
from common.errors import InvalidEvent
from common.kafka import EventProducer
from common.settings import Settings
from common.topics import Topic
from devstack.probes import eventually
from schemas import codec

pytestmark = pytest.mark.integration


def _session_event(i: int, tenant: str = "t1") -> dict[str, Any]:
    _, example = codec.examples("session_event")[0]
    return {**example, "event_id": f"e{i}", "tenant_id": tenant, "text": f"m{i}"}


def _committed(settings: Settings, group: str) -> int:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    try:
        name = settings.topic(Topic.SESSION_EVENTS.value)
        parts = [TopicPartition(name, p) for p in range(settings.topic_partitions)]
        return sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
    finally:
        c.close()


def _dlq_count(settings: Settings) -> int:
    c = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"probe-{uuid.uuid4()}"}
    )
    try:
        name = settings.topic(Topic.SESSION_EVENTS_DLQ.value)
        return sum(
            c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
            for p in range(settings.topic_partitions)
        )
    finally:
        c.close()


async def test_failures_are_retried_and_committed_only_after_success(settings: Settings) -> None:
    producer = EventProducer(settings)
    for i in range(6):
        await producer.send(Topic.SESSION_EVENTS, f"k{i}", _session_event(i), timeout=30)
    seen: list[str] = []
    failures = {"e2": 2}  # e2 fails twice (retryable), then succeeds

    async def handler(event: Event) -> None:
        eid = event.value["event_id"]
        if failures.get(eid, 0) > 0:
            failures[eid] -= 1
            raise ConnectionError("dependency down")
        seen.append(eid)

    worker = KafkaWorker(
        settings,
        stage="test",
        group="commits",
        topics=[Topic.SESSION_EVENTS],
        handler=handler,
        producer=producer,
        lane_of=lambda e: e.value["tenant_id"],
    )
    task = asyncio.create_task(worker.run())

    async def all_seen() -> bool:
        return len(seen) == 6

    await eventually(all_seen, timeout=60, what="6 events handled")
    worker.stop()
    await asyncio.wait_for(task, 30)
    producer.close()
    assert sorted(seen) == [f"e{i}" for i in range(6)]
    assert _committed(settings, settings.group("commits")) == 6


async def test_breaker_stops_a_stage_that_dead_letters_everything(settings: Settings) -> None:
    settings = Settings.from_env(
        {}, **{**vars(settings), "dlq_breaker_window": 10, "dlq_breaker_min_events": 5}
    )
    producer = EventProducer(settings)
    for i in range(20):
        await producer.send(Topic.SESSION_EVENTS, "k", _session_event(i), timeout=30)

    async def handler(event: Event) -> None:
        raise InvalidEvent("schema_drift: column missing")

    worker = KafkaWorker(
        settings,
        stage="test",
        group="breaker",
        topics=[Topic.SESSION_EVENTS],
        handler=handler,
        producer=producer,
    )
    with pytest.raises(DlqBreakerTripped, match="schema_drift"):
        await asyncio.wait_for(worker.run(), 60)
    producer.close()
    dead = _dlq_count(settings)
    assert 5 <= dead < 20  # it stopped instead of draining the topic
    assert _committed(settings, settings.group("breaker")) == dead


async def test_dead_letters_can_be_listed_and_replayed(settings: Settings) -> None:
    from control.dlq import DeadLetterEntry, read_dead_letters, replay

    producer = EventProducer(settings)
    for i in range(3):
        await producer.send(Topic.SESSION_EVENTS, "k", _session_event(i), timeout=30)
    seen: list[str] = []
    broken = {"e1"}

    async def handler(event: Event) -> None:
        if event.value["event_id"] in broken:
            raise InvalidEvent("tenant_missing: no such tenant")
        seen.append(event.value["event_id"])

    def worker() -> KafkaWorker:
        return KafkaWorker(
            settings,
            stage="sync",
            group="replay",
            topics=[Topic.SESSION_EVENTS],
            handler=handler,
            producer=producer,
        )

    first = worker()
    task = asyncio.create_task(first.run())

    async def two_seen() -> bool:
        return len(seen) == 2

    await eventually(two_seen, timeout=60, what="two good events")
    entries: list[DeadLetterEntry] = []

    async def listed() -> bool:  # the DLQ write may trail the good events by a moment
        entries[:] = await asyncio.to_thread(
            lambda: list(read_dead_letters(settings, Topic.SESSION_EVENTS_DLQ))
        )
        return len(entries) == 1

    await eventually(listed, timeout=30, what="one dead letter")
    summary = entries[0].summary()
    assert summary["stage"] == "sync" and summary["reason"].startswith("tenant_missing")
    assert codec.decode(entries[0].record["payload"])["event_id"] == "e1"

    broken.clear()  # the operator fixed the cause
    counts = await asyncio.to_thread(replay, settings, Topic.SESSION_EVENTS_DLQ, stage="sync")
    assert counts == {"replayed": 1}

    async def three_seen() -> bool:
        return sorted(seen) == ["e0", "e1", "e2"]

    await eventually(three_seen, timeout=60, what="the replayed event")
    first.stop()
    await asyncio.wait_for(task, 30)
    producer.close()
