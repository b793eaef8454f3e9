"""Operators' view of the dead-letter topics: list what failed and why, replay it.

`list` reads a dead-letter topic from the beginning up to its current end, without a
consumer group (it commits nothing). `replay` re-produces the original bytes, with the
original key, to the topic they came from; downstream stages are idempotent by event id,
so replaying an event that later succeeded anyway is harmless.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from common.kafka import EventProducer
from common.settings import Settings
from common.topics import Topic
from schemas import codec

DLQ_TOPICS = [t for t in Topic if t.value.endswith(".dlq")]


@dataclass(frozen=True)
class DeadLetterEntry:
    dlq_topic: Topic
    partition: int
    offset: int
    record: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        r = self.record
        failed = r["failed_at"]
        return {
            "dlq": f"{self.dlq_topic.value}[{self.partition}]@{self.offset}",
            "stage": r["stage"],
            "source": f"{r['source_topic']}[{r['source_partition']}]@{r['source_offset']}",
            "key": (r["key"] or b"").decode("utf-8", "replace"),
            "reason": r["reason"],
            "failed_at": failed.isoformat() if isinstance(failed, datetime) else failed,
        }


def read_dead_letters(settings: Settings, topic: Topic) -> Iterator[DeadLetterEntry]:
    """Every record currently on `topic`, oldest first per partition."""
    name = settings.topic(topic.value)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"dlq-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(name, timeout=15).topics.get(name)
        if meta is None or meta.error is not None:
            return
        ends: dict[int, int] = {}
        assign = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=15)
            if high > low:
                ends[p] = high
                assign.append(TopicPartition(name, p, low))
        if not assign:
            return
        consumer.assign(assign)
        while ends:
            msg = consumer.poll(5.0)
            if msg is None:
                break
            if msg.error() is not None:
                continue
            p, off = msg.partition() or 0, msg.offset() or 0
            try:
                record = codec.decode(msg.value() or b"", expect="dead_letter")
            except codec.CodecError as err:
                record = {
                    "stage": "?",
                    "source_topic": "?",
                    "source_partition": -1,
                    "source_offset": -1,
                    "key": None,
                    "payload": b"",
                    "reason": f"undecodable dead letter: {err}",
                    "failed_at": 0,
                }
            yield DeadLetterEntry(topic, p, off, record)
            if off + 1 >= ends.get(p, 0):
                ends.pop(p, None)
    finally:
        consumer.close()


def replay(
    settings: Settings, topic: Topic, *, stage: str | None = None, reason: str | None = None
) -> dict[str, int]:
    """Re-produce matching dead letters to their source topic; returns counts."""
    chosen = [
        e
        for e in read_dead_letters(settings, topic)
        if (stage is None or e.record["stage"] == stage)
        and (reason is None or reason in e.record["reason"])
        and e.record["source_topic"] in {t.value for t in Topic}
    ]

    async def produce() -> None:
        producer = EventProducer(settings)
        try:
            for e in chosen:
                await producer.send_raw(
                    Topic(e.record["source_topic"]),
                    e.record["key"],
                    e.record["payload"],
                    timeout=30,
                )
        finally:
            producer.close()

    asyncio.run(produce())
    return {"replayed": len(chosen)}
