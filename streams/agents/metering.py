"""Metering agents: messages.inbound → messages.admitted | the overage queue, and
quota.releases → held messages released in order.

The tenant's plan and period come from the in-memory `common.directory.Directory` (loaded
from PostgreSQL, refreshed by LISTEN/NOTIFY: no database call per message); the count lives
in the `meter_state` table (one JSON value per tenant, see `streams.metering`). Per event:
decide, write the new state (one table write = one changelog record) and wait until the
broker has it, then send every output and wait for the broker's (and PostgreSQL's)
acknowledgement before the event is acked. A retry after a failed send finds the event among
the recent verdicts and sends the same outputs again. Because the state is durable before
any output exists, a redelivered event always finds its verdict: it is never decided a
second time, not even after the plan or the period changed in between.

Outputs of an admitted message, produced in this order and awaited together (one round trip
per message): the session event (so session-sync usually stores the user message before the
bridge's reply to it; it also copes with the reverse), messages.admitted, the usage record
and a soft alert when one is due. Of a held message: the session event, the queue row
(PostgreSQL), messages.held (the original bytes, an audit log), the polite notice to the
end user (messages.outbound) and the hard alert when one is due.

Releases: before a new message of a tenant with held messages and room (after an upgrade or
in a new period) is decided, the held ones are released first, so nothing overtakes them; a
release request (`streams.release_watch`, `openclaw-saas overage release`) does the same for
a tenant that sends nothing. Both agents share the table and take one lock, so a tenant's
state has one writer at a time; the state's `last_release` names the event that triggered
the latest release, and handling that event again re-sends the release's outputs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import faust
from faust.types import AgentT

from common.consumer import Event
from common.directory import Tenant
from common.settings import Settings
from common.telemetry import QUOTA_DECISIONS
from common.topics import Topic
from schemas import codec
from streams.agents.boundary import Boundary, Producer
from streams.alerts import alert_record, notice_record
from streams.held_store import HeldQueue, HeldRow
from streams.metering import (
    Alert,
    InboundRef,
    Kind,
    MeterState,
    Outcome,
    Release,
    Verdict,
    check_tenant,
    decide,
    to_ms,
)
from streams.overage import at_request, fetch_size, needs_release, plan_release
from streams.topics import decode, source_topic, to_event

STAGE = "metering"
RELEASE_STAGE = "metering-releases"
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
    """The handlers: one inbound event (or release request) in, its outputs acknowledged."""

    def __init__(
        self,
        tenants: Tenants,
        table: StateTable | MutableMapping[str, Any],
        producer: Producer,
        held: HeldQueue,
        *,
        refresh: Callable[[], Awaitable[None]] | None = None,
        clock: Clock = utc_now,
        durable: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._tenants = tenants
        self._table = table
        self._producer = producer
        self._held = held
        self._refresh = refresh
        self._clock = clock
        self._durable = durable  # waits until the table's changelog writes are acknowledged
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()  # one writer of the table at a time

    async def handle(self, event: Event) -> None:
        """One message from messages.inbound."""
        record = decode(event)
        tenant_id = str(record["tenant_id"])
        tenant = await self._tenant(tenant_id)
        conversation = f"{record['channel']}:{record['conversation_id']}"
        ref = InboundRef(str(record["event_id"]), event.partition, event.offset, conversation)
        trigger = f"in:{ref.event_id}"
        async with self._lock:
            state = self._state(tenant_id)
            await self._resend_release(state, trigger, tenant)
            fresh = state.verdict_for(ref.event_id) is None and not state.seen_offset(
                ref.partition, ref.offset
            )
            queued: set[str] = set()
            if fresh and needs_release(state, tenant):
                state = await self._release(state, check_tenant(tenant), trigger, queued=queued)
            new_state, decision = decide(
                state, ref, tenant, self._clock(), queued=ref.event_id in queued
            )
            if decision.kind is Kind.NEW and not _triggered(new_state.last_release, trigger):
                new_state = replace(new_state, last_release=None)  # its outputs are all sent
            await self._write(tenant_id, state, new_state)
            verdict = decision.verdict
            if verdict is None:  # decided long ago, outputs known sent
                return
            if decision.kind is Kind.NEW:
                QUOTA_DECISIONS.labels(verdict.plan_id, verdict.outcome.value).inc()
            await self._emit(event, record, verdict, check_tenant(tenant))

    async def handle_release(self, event: Event) -> None:
        """One request from quota.releases: release what the tenant's allowance allows."""
        request = decode(event)
        tenant_id = str(request["tenant_id"])
        tenant = check_tenant(await self._tenant(tenant_id))
        trigger = f"rq:{event.partition}:{event.offset}"
        async with self._lock:
            state = self._state(tenant_id)
            await self._resend_release(state, trigger, tenant)
            if state.seen_request(event.partition, event.offset):
                return
            await self._release(state, tenant, trigger, request_at=(event.partition, event.offset))

    # -- state --------------------------------------------------------------------------

    def _state(self, tenant_id: str) -> MeterState:
        return MeterState.from_json(self._table.get(tenant_id))

    async def _write(self, tenant_id: str, old: MeterState, new: MeterState) -> None:
        """Store the tenant's new state and wait until it is durable (before any output)."""
        if new != old:
            self._table[tenant_id] = new.to_json()
            if self._durable is not None:
                await self._durable()

    async def _tenant(self, tenant_id: str) -> Tenant | None:
        tenant = self._tenants.tenant(tenant_id)
        stale = time.monotonic() - self._refreshed_at >= REFRESH_INTERVAL_S
        if tenant is None and self._refresh is not None and stale:
            await self._refresh()  # a failure here is retried, not dead-lettered
            self._refreshed_at = time.monotonic()
            tenant = self._tenants.tenant(tenant_id)
        return tenant

    # -- releases -----------------------------------------------------------------------

    async def _release(
        self,
        state: MeterState,
        tenant: Tenant,
        trigger: str,
        *,
        request_at: tuple[int, int] | None = None,
        queued: set[str] | None = None,
    ) -> MeterState:
        """Release batch after batch while there is room; the state after the last one.

        `queued` collects the ids of rows read and left in the queue."""
        while needs_release(state, tenant):
            rows = await self._held.after(
                tenant.tenant_id, state.released_seq, fetch_size(state, tenant)
            )
            new_state, release, verdicts = plan_release(
                state, tenant, [(r.seq, r.event_id) for r in rows], trigger, self._clock()
            )
            if request_at is not None:
                new_state = at_request(new_state, *request_at)
            await self._write(tenant.tenant_id, state, new_state)
            QUOTA_DECISIONS.labels(release.plan_id, "released").inc(len(verdicts))
            await self._emit_release(tenant, release, rows)
            if queued is not None:
                queued.update(r.event_id for r in rows if r.seq > new_state.released_seq)
            if new_state.released_seq == state.released_seq and new_state.held >= state.held:
                return new_state  # no progress: leave the rest for the next trigger
            state = new_state
        return state

    async def _resend_release(self, state: MeterState, trigger: str, tenant: Tenant | None) -> None:
        """This event triggered the latest release: its outputs may be unsent (a crash)."""
        release = state.last_release
        if release is None or release.trigger != trigger or tenant is None:
            return
        rows = await self._held.between(tenant.tenant_id, release.after_seq, release.upto_seq)
        await self._emit_release(tenant, release, rows)

    async def _emit_release(
        self, tenant: Tenant, release: Release, rows: Sequence[HeldRow]
    ) -> None:
        payloads = {r.event_id: r.payload for r in rows}
        verdicts = release.verdicts([(r.seq, r.event_id) for r in rows])
        records = [codec.decode(payloads[v.event_id], expect="inbound_message") for v in verdicts]
        tenant_id = tenant.tenant_id
        await _all(
            self._producer.send(
                Topic.SESSION_EVENTS, tenant_id, session_event(r, v), timeout=SEND_TIMEOUT_S
            )
            for r, v in zip(records, verdicts, strict=True)
        )
        sends: list[Awaitable[None]] = []
        for r, v in zip(records, verdicts, strict=True):
            sends.append(
                self._producer.send(
                    Topic.ADMITTED, tenant_id, admitted(r, v), timeout=SEND_TIMEOUT_S
                )
            )
            sends.append(
                self._producer.send(Topic.USAGE, tenant_id, usage(r, v), timeout=SEND_TIMEOUT_S)
            )
        sends += self._alerts(tenant, release.alerts, release)
        sends.append(self._held.mark_released(tenant_id, release.after_seq, release.upto_seq))
        await _all(sends)

    # -- outputs of one message ---------------------------------------------------------

    async def _emit(
        self, event: Event, record: Mapping[str, Any], verdict: Verdict, tenant: Tenant
    ) -> None:
        tenant_id = str(record["tenant_id"])
        sends: list[Awaitable[None]] = [
            self._producer.send(
                Topic.SESSION_EVENTS,
                tenant_id,
                session_event(record, verdict),
                timeout=SEND_TIMEOUT_S,
            )
        ]
        sends += self._alerts(tenant, verdict.alerts, verdict)
        if verdict.outcome is Outcome.HELD:
            conversation = f"{record['channel']}:{record['conversation_id']}"
            sends.append(
                self._held.put(
                    tenant_id, verdict.event_id, conversation, verdict.period_start_ms, event.raw
                )
            )
            # same schema as the source: the original bytes, untouched
            sends.append(
                self._producer.send_raw(
                    Topic.HELD, tenant_id.encode(), event.raw, timeout=SEND_TIMEOUT_S
                )
            )
            if verdict.notice:
                notice = notice_record(record, verdict, tenant)
                sends.append(
                    self._producer.send(Topic.OUTBOUND, tenant_id, notice, timeout=SEND_TIMEOUT_S)
                )
        else:
            sends.append(
                self._producer.send(
                    Topic.ADMITTED, tenant_id, admitted(record, verdict), timeout=SEND_TIMEOUT_S
                )
            )
            sends.append(
                self._producer.send(
                    Topic.USAGE, tenant_id, usage(record, verdict), timeout=SEND_TIMEOUT_S
                )
            )
        await _all(sends)

    def _alerts(
        self, tenant: Tenant, alerts: Sequence[Alert], source: Verdict | Release
    ) -> list[Awaitable[None]]:
        if isinstance(source, Verdict):
            at, plan = source.metered_at_ms, source.plan_id
        else:
            at, plan = source.released_at_ms, source.plan_id
        return [
            self._producer.send(
                Topic.ALERTS,
                tenant.tenant_id,
                alert_record(
                    tenant,
                    alert,
                    plan_id=plan,
                    period_start_ms=source.period_start_ms,
                    period_end_ms=source.period_end_ms,
                    created_at_ms=at,
                ),
                timeout=SEND_TIMEOUT_S,
            )
            for alert in alerts
        ]


def _triggered(release: Release | None, trigger: str) -> bool:
    return release is not None and release.trigger == trigger


async def _all(sends: Any) -> None:
    """Await every send (all are started), then raise the first failure."""
    results = await asyncio.gather(*sends, return_exceptions=True)
    for result in results:
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
    held: HeldQueue,
    refresh: Callable[[], Awaitable[None]] | None = None,
    boundary: Boundary | None = None,
) -> tuple[AgentT[Any], AgentT[Any]]:
    """Add the `meter_state` table, the metering agent and the release agent to `app`."""
    table = app.Table(
        TABLE,
        default=None,
        partitions=settings.topic_partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        help="Per-tenant count, held messages, offsets and recent verdicts (streams.metering).",
    )
    metering = Metering(
        tenants, table, producer, held, refresh=refresh, durable=lambda: app.producer.flush()
    )
    guard = boundary or Boundary(STAGE, producer)
    release_guard = boundary or Boundary(RELEASE_STAGE, producer)

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

    async def release(stream: Any) -> None:
        manual = stream.noack()
        async for record in manual.events():
            message = record.message
            event = to_event(
                Topic.RELEASES, message.partition, message.offset, record.key, record.value
            )
            await release_guard.process(event, metering.handle_release)
            await manual.ack(record)

    meter_agent = app.agent(source_topic(app, settings, Topic.INBOUND), name=STAGE, concurrency=1)(
        meter
    )
    release_agent = app.agent(
        source_topic(app, settings, Topic.RELEASES), name=RELEASE_STAGE, concurrency=1
    )(release)
    return meter_agent, release_agent
