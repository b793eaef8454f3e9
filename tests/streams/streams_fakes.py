"""Fakes and builders for the streams tests: a directory, the held queue, the meter table,
inbound and session-event payloads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from common.consumer import Event
from common.directory import Tenant
from common.settings import Secret
from common.topics import Topic
from schemas import codec
from streams.metering.held_store import HeldRow
from tests.tenants import a_tenant

TENANT = "0b7c2f5e-8a51-4a8e-9d0e-3f1c2b4a5d6e"
OTHER = "5d2e9a10-1f3b-4c6d-8e7f-9a0b1c2d3e4f"
PERIOD_START = datetime(2026, 11, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RECEIVED_MS = 1_795_000_000_000


def tenant(tenant_id: str = TENANT, *, msg_limit: int | None = 1000, **changes: Any) -> Tenant:
    defaults: dict[str, Any] = {
        "agent_id": "acme",
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "gateway_token": Secret("gw"),
    }
    return a_tenant(tenant_id, msg_limit=msg_limit, **{**defaults, **changes})


class FakeDirectory:
    def __init__(self, *tenants: Tenant) -> None:
        self.tenants = {t.tenant_id: t for t in tenants}
        self.reloads = 0
        self.on_reload: list[Tenant] = []  # tenants that appear on the next reload

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)

    async def reload(self) -> None:
        self.reloads += 1
        for t in self.on_reload:
            self.tenants[t.tenant_id] = t
        self.on_reload = []


def inbound(event_id: str, tenant_id: str = TENANT, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": event_id,
        "tenant_id": tenant_id,
        "channel": "telegram",
        "conversation_id": "4242",
        "sender_id": "17",
        "sender_name": "Ann",
        "text": f"hello {event_id}",
        "received_at": RECEIVED_MS,
        "channel_message_id": "99",
        "reply_route": {"chat_id": "4242"},
    }
    return {**record, **changes}


def inbound_event(
    event_id: str, offset: int, tenant_id: str = TENANT, *, partition: int = 0, **changes: Any
) -> Event:
    raw = codec.encode("inbound_message", inbound(event_id, tenant_id, **changes))
    return Event(Topic.INBOUND, partition, offset, tenant_id.encode(), raw)


def session_record(event_id: str, tenant_id: str = TENANT, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": event_id,
        "kind": "message_in",
        "tenant_id": tenant_id,
        "channel": "telegram",
        "conversation_id": "4242",
        "role": "user",
        "text": f"hello {event_id}",
        "status": "admitted",
        "in_reply_to": None,
        "input_tokens": None,
        "output_tokens": None,
        "model": None,
        "occurred_at": RECEIVED_MS,
    }
    return {**record, **changes}


def reply_record(
    in_reply_to: str, input_tokens: int, output_tokens: int, **changes: Any
) -> dict[str, Any]:
    return session_record(
        f"reply:{in_reply_to}",
        **{
            "kind": "message_out",
            "role": "assistant",
            "status": "replied",
            "in_reply_to": in_reply_to,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "model": "stub-model",
            "occurred_at": RECEIVED_MS + 1500,
            "text": f"answer to {in_reply_to}",
            **changes,
        },
    )


def session_event(offset: int, record: Mapping[str, Any], *, partition: int = 0) -> Event:
    raw = codec.encode("session_event", record)
    return Event(Topic.SESSION_EVENTS, partition, offset, str(record["tenant_id"]).encode(), raw)


class RecordingTable(dict[str, Any]):
    """The `meter_state` table, remembering the key of every write (what the changelog
    holds)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


class FakeHeldQueue:
    """The overage queue in memory: rows in insertion order, idempotent by event id."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str, bytes]] = []  # seq, tenant, event id, payload
        self.released: dict[str, int] = {}  # tenant -> released up to seq (marked)
        self.fail_next = 0

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise OSError("fake PostgreSQL is down")

    async def before_put(self) -> None:
        """Runs first in every `put`: nothing here (a subclass may delay the insert)."""

    async def put(
        self,
        tenant_id: str,
        event_id: str,
        conversation: str,
        period_start_ms: int,
        payload: bytes,
    ) -> None:
        await self.before_put()
        self._maybe_fail()
        if all(r[2] != event_id for r in self.rows):
            self.rows.append((len(self.rows) + 1, tenant_id, event_id, payload))

    async def after(self, tenant_id: str, after_seq: int, limit: int) -> list[HeldRow]:
        self._maybe_fail()
        mine = [HeldRow(s, e, p) for s, t, e, p in self.rows if t == tenant_id and s > after_seq]
        return mine[:limit]

    async def between(self, tenant_id: str, after_seq: int, upto_seq: int) -> list[HeldRow]:
        self._maybe_fail()
        return [
            HeldRow(s, e, p)
            for s, t, e, p in self.rows
            if t == tenant_id and after_seq < s <= upto_seq
        ]

    async def mark_released(self, tenant_id: str, after_seq: int, upto_seq: int) -> None:
        self._maybe_fail()
        self.released[tenant_id] = max(self.released.get(tenant_id, 0), upto_seq)

    def pending(self, tenant_id: str = TENANT) -> list[str]:
        done = self.released.get(tenant_id, 0)
        return [e for s, t, e, _ in self.rows if t == tenant_id and s > done]
