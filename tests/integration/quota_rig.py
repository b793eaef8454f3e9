"""Helpers of the quota tests: plans and tenants as data, inbound messages produced straight
to messages.inbound, topics read back in full, an SMTP relay sink, the group's progress."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition
from psycopg.rows import dict_row

from common.kafka import EventProducer
from common.settings import Settings
from common.topics import Topic
from control.tenants import NewTenant, create_tenant
from schemas import codec

RECEIVED_MS = 1_795_360_321_000


def ensure_plan(settings: Settings, plan_id: str, msg_limit: int) -> None:
    """A test plan: Individual with a small limit, upgrading to Business (plans are data)."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO plans (id, name, price_monthly, msg_limit, tenancy_mode, upgrade_to)"
            " VALUES (%s, %s, 0, %s, 'shared_pool', 'business') ON CONFLICT (id) DO NOTHING",
            (plan_id, f"Test {msg_limit}", msg_limit),
        )


def new_tenant(settings: Settings, name: str, plan: str) -> dict[str, Any]:
    return create_tenant(
        settings,
        NewTenant(
            name=name,
            plan=plan,
            owner_email=f"{name}-{uuid.uuid4().hex[:6]}@owner.test",
            telegram_bot_token=None,
            gateway_url="http://127.0.0.1:9",
            gateway_token="unused",
        ),
    )


def sql(settings: Settings, query: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def inbound(tenant_id: str, event_id: str, conversation: str = "4242") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tenant_id": tenant_id,
        "channel": "telegram",
        "conversation_id": conversation,
        "sender_id": conversation,
        "sender_name": None,
        "text": f"hello {event_id}",
        "received_at": RECEIVED_MS,
        "channel_message_id": None,
        "reply_route": {"chat_id": conversation},
    }


async def produce(settings: Settings, records: Iterable[dict[str, Any]]) -> None:
    """Produce in order (one idempotent producer keeps each partition's order), acked."""
    producer = EventProducer(settings)
    try:
        await asyncio.gather(
            *(producer.send(Topic.INBOUND, r["tenant_id"], r, timeout=60) for r in records)
        )
    finally:
        producer.close()


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
