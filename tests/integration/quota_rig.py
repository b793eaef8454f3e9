"""Helpers of the quota tests: plans and tenants as data, inbound messages produced straight
to messages.inbound (reading topics, rows and group lag back: devstack.probes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg

from common.kafka import EventProducer
from common.settings import Settings
from common.topics import Topic
from control.tenants import NewTenant, create_tenant

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
