"""Looking at a running pipeline from outside: bounded waits, topics read back in full,
consumer-group lag and PostgreSQL rows. The integration tests, ``chaos/`` and the
benchmarks use these; none of them is part of a worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition
from psycopg.rows import dict_row

from common.settings import Settings
from common.topics import Topic
from schemas import codec

T = TypeVar("T")
POLL_INTERVAL_S = 0.1


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = POLL_INTERVAL_S,
) -> T:
    """Call `probe` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)  # sleep-ok: poll interval of a deadline loop


def sql(settings: Settings, query: str, *params: Any) -> list[dict[str, Any]]:
    """The rows of `query` (none for a statement that returns none), each as a dict."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def probe_consumer(settings: Settings, group: str | None = None) -> Consumer:
    """A consumer that never joins a group (assign only); `group` is whose commits it reads."""
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group or f"probe-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )


def watermarks(consumer: Consumer, tp: TopicPartition, within_s: float = 30.0) -> tuple[int, int]:
    """(low, high) of `tp`, asking again while the partition is between leaders (a topic
    created a moment ago, a broker restarted): NOT_LEADER_FOR_PARTITION and friends."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # sleep-ok: the broker's metadata refresh, bounded by the deadline


def read_topic(settings: Settings, topic: Topic) -> list[dict[str, Any]]:
    """Every record on `topic` now, decoded, partition by partition in offset order."""
    consumer = probe_consumer(settings)
    name = settings.topic(topic.value)
    out: list[dict[str, Any]] = []
    try:
        parts = []
        for p in range(settings.topic_partitions):
            low, high = watermarks(consumer, TopicPartition(name, p))
            if high > low:
                parts.append((p, low, high))
        if not parts:
            return out
        consumer.assign([TopicPartition(name, p, low) for p, low, _ in parts])
        remaining = {p: high for p, _, high in parts}
        while remaining:
            for msg in consumer.consume(500, 5.0):
                if msg.error():
                    continue
                p, offset = msg.partition() or 0, msg.offset() or 0
                out.append(codec.decode(msg.value() or b"", expect=topic.schema))
                if p in remaining and offset + 1 >= remaining[p]:
                    del remaining[p]
    finally:
        consumer.close()
    return out


def group_lag(settings: Settings, group: str, topic: Topic) -> int:
    """End offsets minus the group's committed offsets on `topic` (-1: not known now)."""
    try:
        return _group_lag(settings, group, topic)
    except KafkaException:  # a partition between leaders: ask again
        return -1


def _group_lag(settings: Settings, group: str, topic: Topic) -> int:
    consumer = probe_consumer(settings, group)
    name = settings.topic(topic.value)
    try:
        parts = [TopicPartition(name, p) for p in range(settings.topic_partitions)]
        lag = 0
        for tp in consumer.committed(parts, timeout=10):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10
            )
            lag += high - (tp.offset if tp.offset >= 0 else low)
        return lag
    finally:
        consumer.close()
