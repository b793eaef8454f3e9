"""Fakes for the bridge's unit tests: directory, gateway, delivery log, and event builders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents_bridge.deliver.log import FAILED, DeliveryResult
from agents_bridge.forward.gateway_client import GatewayReply, GatewayTarget
from common.consumer import Event
from common.directory import TelegramBinding, Tenant
from common.settings import Secret
from common.topics import Topic
from schemas import codec
from tests.tenants import a_tenant

GATEWAY_TOKEN = "gw-SECRET-token-0123456789"
BOT_TOKEN = "123456:AAH-BOT-SECRET-abcdef"
PERIOD_START = datetime(2026, 11, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class FakeDirectory:
    tenants: dict[str, Tenant] = field(default_factory=dict)

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)

    def add(self, tenant: Tenant) -> Tenant:
        self.tenants[tenant.tenant_id] = tenant
        return tenant


@dataclass
class Call:
    target: GatewayTarget
    user: str
    text: str


@dataclass
class FakeGateway:
    """Answers "re: <text>"; a text listed in `gates` waits for its event first."""

    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    errors: list[Exception] = field(default_factory=list)
    reply: GatewayReply | None = None
    calls: list[Call] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def complete(self, target: GatewayTarget, *, user: str, text: str) -> GatewayReply:
        self.calls.append(Call(target, user, text))
        await self._notify()
        if text in self.gates:
            await self.gates[text].wait()
        if self.errors:
            raise self.errors.pop(0)
        self.done.append(text)
        await self._notify()
        return self.reply or GatewayReply(f"re: {text}", "chatcmpl_1", "openclaw/agent-t-1", 11, 7)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def started(self) -> list[str]:
        return [c.text for c in self.calls]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def tenant(
    tenant_id: str = "t-1",
    *,
    gateway_url: str | None = "http://127.0.0.1:1",
    gateway_token: str = GATEWAY_TOKEN,
    gateway_agent_id: str | None = None,
    bot_token: str | None = BOT_TOKEN,
    status: str = "active",
) -> Tenant:
    telegram = (
        TelegramBinding(bot_token.split(":")[0], secret_hash=b"", bot_token=Secret(bot_token))
        if bot_token is not None
        else None
    )
    return a_tenant(
        tenant_id,
        agent_id=f"agent-{tenant_id}",
        status=status,
        upgrade_to=None,
        period_start=PERIOD_START,
        period_end=PERIOD_END,
        gateway_url=gateway_url,
        gateway_token=Secret(gateway_token),
        gateway_agent_id=gateway_agent_id,
        telegram=telegram,
    )


def inbound(
    event_id: str = "telegram:123456:1",
    *,
    tenant_id: str = "t-1",
    channel: str = "telegram",
    conversation_id: str = "42",
    text: str = "hello",
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tenant_id": tenant_id,
        "channel": channel,
        "conversation_id": conversation_id,
        "sender_id": conversation_id,
        "sender_name": "Alice",
        "text": text,
        "received_at": 1_795_000_000_000,
        "channel_message_id": "1",
        "reply_route": {"chat_id": conversation_id},
    }


def admitted_event(offset: int = 0, **inbound_fields: Any) -> Event:
    """An Event as KafkaWorker hands it over: encoded, then decoded by the codec."""
    record = {
        "message": inbound(**inbound_fields),
        "plan_id": "individual",
        "period_start": int(PERIOD_START.timestamp() * 1000),
        "period_end": int(PERIOD_END.timestamp() * 1000),
        "count_in_period": 7,
        "metered_at": 1_795_000_000_500,
    }
    return encoded_event(Topic.ADMITTED, record, offset)


def outbound_event(
    text: str = "the reply",
    *,
    event_id: str = "reply:telegram:123456:1",
    tenant_id: str = "t-1",
    channel: str = "telegram",
    conversation_id: str = "42",
    reply_route: dict[str, str] | None = None,
    offset: int = 0,
) -> Event:
    record = {
        "event_id": event_id,
        "in_reply_to": event_id.removeprefix("reply:"),
        "tenant_id": tenant_id,
        "channel": channel,
        "conversation_id": conversation_id,
        "text": text,
        "reply_route": {"chat_id": conversation_id} if reply_route is None else reply_route,
        "agent_id": "agent-t-1",
        "gateway_response_id": "chatcmpl_1",
        "input_tokens": 11,
        "output_tokens": 7,
        "created_at": 1_795_000_001_000,
    }
    return encoded_event(Topic.OUTBOUND, record, offset)


def encoded_event(topic: Topic, record: dict[str, Any], offset: int = 0) -> Event:
    raw = codec.encode(topic.schema, record)
    key = str(record.get("tenant_id") or record["message"]["tenant_id"]).encode()
    return Event(topic, 0, offset, key, raw, codec.decode(raw, expect=topic.schema))


@dataclass
class FakeDeliveryLog:
    """`outbound_deliveries` semantics in memory: a failed row may be replaced, a sent one not."""

    rows: dict[tuple[str, int], DeliveryResult] = field(default_factory=dict)
    fail_next: int = 0
    writes: int = 0

    async def record(self, result: DeliveryResult) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("PostgreSQL down (fake)")
        self.writes += 1
        old = self.rows.get((result.event_id, result.chunk))
        if old is None or old.status == FAILED:
            self.rows[(result.event_id, result.chunk)] = result

    async def sent(self, event_id: str) -> dict[int, str]:
        return {
            chunk: r.provider_message_id or ""
            for (eid, chunk), r in self.rows.items()
            if eid == event_id and r.status != FAILED
        }

    def statuses(self) -> list[tuple[int, str, str | None, str | None]]:
        return [
            (r.chunk, r.status, r.provider_message_id, r.error)
            for _, r in sorted(self.rows.items())
        ]
