"""Metering agent: consumes messages.inbound → produces messages.admitted or messages.held,
plus session.events (message_in) and usage.records (kind=message) for admitted messages.

The tenant's plan and period come from the in-memory `common.directory.Directory`; the
count lives in the `meter_state` table (one JSON value per tenant, see `streams.metering`).
Per event: decide, write the new state (one table write = one changelog record), then send
every output and wait for the broker's acks before the event is acked. A retry after a
failed send finds the event among the recent verdicts and sends the same outputs again.

Outputs go out in this order: the session event first (so session-sync stores the user
message before the bridge's reply to it can arrive), then the admitted (or held) message and
the usage record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Protocol

import faust
from faust.types import AgentT

from common.consumer import Event
from common.directory import Tenant
from common.settings import Settings
from common.telemetry import QUOTA_DECISIONS
from common.topics import Topic
from streams.agents.boundary import Boundary, Producer
from streams.metering import InboundRef, Kind, MeterState, Outcome, Verdict, decide, to_ms
from streams.topics import decode, source_topic, to_event

STAGE = "metering"
TABLE = "meter_state"
SEND_TIMEOUT_S = 30.0
#: Reload the directory on an unknown tenant (a tenant created a moment ago) at most this often.
REFRESH_INTERVAL_S = 10.0

Clock = Callable[[], datetime]


class Tenants(Protocol):
    def tenant(self, tenant_id: str) -> Tenant | None: ...


class StateTable(Protocol):
    """The `meter_state` faust Table, or a dict in tests."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class Metering:
    """The handler: one inbound event in, its outputs acknowledged by the broker."""

    def __init__(
        self,
        tenants: Tenants,
        table: StateTable | MutableMapping[str, Any],
        producer: Producer,
        *,
        refresh: Callable[[], Awaitable[None]] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._tenants = tenants
        self._table = table
        self._producer = producer
        self._refresh = refresh
        self._clock = clock
        self._refreshed_at = float("-inf")

    async def handle(self, event: Event) -> None:
        record = decode(event)
        tenant_id = str(record["tenant_id"])
        state = MeterState.from_json(self._table.get(tenant_id))
        ref = InboundRef(str(record["event_id"]), event.partition, event.offset)
        tenant = await self._tenant(tenant_id)
        new_state, decision = decide(state, ref, tenant, self._clock())
        if new_state != state:
            self._table[tenant_id] = new_state.to_json()
        verdict = decision.verdict
        if verdict is None:  # decided long ago, outputs known sent
            return
        if decision.kind is Kind.NEW:
            QUOTA_DECISIONS.labels(verdict.plan_id, verdict.outcome.value).inc()
        await self._emit(event, record, verdict)

    async def _tenant(self, tenant_id: str) -> Tenant | None:
        tenant = self._tenants.tenant(tenant_id)
        stale = time.monotonic() - self._refreshed_at >= REFRESH_INTERVAL_S
        if tenant is None and self._refresh is not None and stale:
            await self._refresh()  # a failure here is retried, not dead-lettered
            self._refreshed_at = time.monotonic()
            tenant = self._tenants.tenant(tenant_id)
        return tenant

    async def _emit(self, event: Event, record: Mapping[str, Any], verdict: Verdict) -> None:
        tenant_id = str(record["tenant_id"])
        await self._producer.send(
            Topic.SESSION_EVENTS, tenant_id, session_event(record, verdict), timeout=SEND_TIMEOUT_S
        )
        if verdict.outcome is Outcome.HELD:
            # same schema as the source: forward the original bytes untouched
            await self._producer.send_raw(
                Topic.HELD, tenant_id.encode(), event.raw, timeout=SEND_TIMEOUT_S
            )
            return
        sends = [
            self._producer.send(
                Topic.ADMITTED, tenant_id, admitted(record, verdict), timeout=SEND_TIMEOUT_S
            ),
            self._producer.send(
                Topic.USAGE, tenant_id, usage(record, verdict), timeout=SEND_TIMEOUT_S
            ),
        ]
        for result in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result


def inbound(record: Mapping[str, Any]) -> dict[str, Any]:
    """A decoded InboundMessage made encodable again (timestamps as epoch ms)."""
    return {**record, "received_at": _ms(record["received_at"])}


def session_event(record: Mapping[str, Any], verdict: Verdict) -> dict[str, Any]:
    return {
        "event_id": record["event_id"],
        "kind": "message_in",
        "tenant_id": record["tenant_id"],
        "channel": record["channel"],
        "conversation_id": record["conversation_id"],
        "role": "user",
        "text": record["text"],
        "status": verdict.outcome.value,
        "in_reply_to": None,
        "input_tokens": None,
        "output_tokens": None,
        "model": None,
        "occurred_at": _ms(record["received_at"]),
    }


def admitted(record: Mapping[str, Any], verdict: Verdict) -> dict[str, Any]:
    return {
        "message": inbound(record),
        "plan_id": verdict.plan_id,
        "period_start": verdict.period_start_ms,
        "period_end": verdict.period_end_ms,
        "count_in_period": verdict.count_in_period,
        "metered_at": verdict.metered_at_ms,
    }


def usage(record: Mapping[str, Any], verdict: Verdict) -> dict[str, Any]:
    return {
        "usage_id": f"msg:{record['event_id']}",
        "kind": "message",
        "tenant_id": record["tenant_id"],
        "plan_id": verdict.plan_id,
        "period_start": verdict.period_start_ms,
        "period_end": verdict.period_end_ms,
        "channel": record["channel"],
        "messages": 1,
        "input_tokens": 0,
        "output_tokens": 0,
        "recorded_at": verdict.metered_at_ms,
    }


def _ms(value: Any) -> int:
    return to_ms(value) if isinstance(value, datetime) else int(value)


def register(
    app: faust.App,
    settings: Settings,
    *,
    tenants: Tenants,
    producer: Producer,
    refresh: Callable[[], Awaitable[None]] | None = None,
    boundary: Boundary | None = None,
) -> AgentT[Any]:
    """Add the `meter_state` table and the metering agent to `app`; returns the agent."""
    table = app.Table(
        TABLE,
        default=None,
        partitions=settings.topic_partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        help="Per-tenant message count, offsets and recent verdicts (streams.metering).",
    )
    metering = Metering(tenants, table, producer, refresh=refresh)
    guard = boundary or Boundary(STAGE, producer)

    async def meter(stream: Any) -> None:
        # Manual acks: an event is acked only once its outputs are acknowledged. With
        # automatic acks Faust acks the current event even when the agent is cancelled
        # mid-retry (the ack sits in the stream generator's `finally`).
        manual = stream.noack()
        async for record in manual.events():
            message = record.message
            event = to_event(
                Topic.INBOUND, message.partition, message.offset, record.key, record.value
            )
            await guard.process(event, metering.handle)
            await manual.ack(record)

    return app.agent(source_topic(app, settings, Topic.INBOUND), name=STAGE, concurrency=1)(meter)
