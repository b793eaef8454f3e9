"""Synthetic pipeline events for the bench tenants, produced straight to a topic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Producer

from bench.world import BenchTenant
from common.kafka import producer_config
from common.settings import Settings
from common.timeconv import now_ms
from common.topics import Topic
from schemas import codec


def inbound(tenant: BenchTenant, n: int) -> dict[str, Any]:
    """An InboundMessage as the ingress would produce it for update `n`."""
    chat = str(1000 + n % 97)
    return {
        "event_id": f"telegram:{tenant.bot_id}:{n}",
        "tenant_id": tenant.tenant_id,
        "channel": "telegram",
        "conversation_id": chat,
        "sender_id": chat,
        "sender_name": "B",
        "text": f"bench {n}",
        "received_at": now_ms(),
        "channel_message_id": str(n),
        "reply_route": {"chat_id": chat, "bot_id": tenant.bot_id},
    }


def session_in(tenant: BenchTenant, n: int) -> dict[str, Any]:
    """A SessionEvent (message_in, admitted) as metering would produce it."""
    return {
        "event_id": f"bench-session:{n}",
        "kind": "message_in",
        "tenant_id": tenant.tenant_id,
        "channel": "telegram",
        "conversation_id": str(n % 5),
        "role": "user",
        "text": f"bench {n}",
        "status": "admitted",
        "in_reply_to": None,
        "input_tokens": None,
        "output_tokens": None,
        "model": None,
        "occurred_at": now_ms(),
    }


def produce(settings: Settings, topic: Topic, records: Iterable[Mapping[str, Any]]) -> int:
    """Encode and produce `records` to `topic` (keyed by tenant); returns how many."""
    producer = Producer(producer_config(settings))
    name = settings.topic(topic.value)
    count = 0
    for record in records:
        payload = codec.encode(topic.schema, record)
        while True:
            try:
                producer.produce(name, value=payload, key=str(record["tenant_id"]))
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 1000 == 0:
            producer.poll(0)
    if producer.flush(60):
        raise RuntimeError(f"not every record reached {name}")
    return count
