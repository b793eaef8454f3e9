"""Metering agents: messages.inbound → messages.admitted | the overage queue, and
quota.releases → held messages released in order.

The tenant's plan and period come from the in-memory `common.directory.Directory` (loaded
from PostgreSQL, refreshed by LISTEN/NOTIFY: no database call per message); the count lives
in the `meter_state` table (one JSON value per tenant, see `streams.metering`).

Group commit. The agent takes what the stream has buffered (`boundary.batches`, up to
`BATCH_MAX`, never waiting for more) and handles it as one group: it decides every event in
order with the pure `decide` (each tenant's state updated in memory), writes each touched
tenant's state to the table once (one changelog record per tenant), waits once until the
broker has acknowledged them all (`ChangelogAcks`), then starts every output of the group
and waits for all their acknowledgements (broker acks, the queue rows committed in
PostgreSQL) before the events are acked. So the state is durable before any output exists,
and a redelivered
event always finds its verdict: it is never decided a second time, not even after the plan
or the period changed in between; its outputs are sent again, the same.

A group stops before an event whose decision would push a verdict of the same group out of
the tenant's window of recent verdicts (`streams.metering.RECENT_EVENTS`): every event with
unsent outputs must stay in the window so a replay re-sends them. Events that need more than
a decision go the slow way, one at a time after the group before them is committed: a tenant
with held messages and room again (release first, see below), the event that triggered the
latest release (its outputs are re-sent), an unknown tenant (directory reload, dead letter)
and anything undecodable. When committing a group fails, each of its events is handled again
on its own (`Boundary.each`): replays by then, so nothing is counted twice.

Outputs of an admitted message, started in this order: the session event (so session-sync
usually stores the user message before the bridge's reply to it; it also copes with the
reverse), a soft alert when one is due, messages.admitted and the usage record. Of a held
message: the session event, the hard alert when one is due, messages.held (the original
bytes, an audit log), the polite notice to the end user (messages.outbound) and the queue
row (PostgreSQL; one tenant's rows are inserted one after the other, in decision order, so
`seq` keeps the original order).

Releases: before a new message of a tenant with held messages and room (after an upgrade or
in a new period) is decided, the held ones are released first, so nothing overtakes them; a
release request (`streams.release_watch`, `openclaw-saas overage release`) does the same for
a tenant that sends nothing. Both agents share the table and take one lock (a group holds it
from its first decision to its last output), so a tenant's state has one writer at a time;
the state's `last_release` names the event that triggered the latest release, and handling
that event again re-sends the release's outputs.

The parsed states of recently seen tenants are kept in memory (`STATE_CACHE`); every write
goes through here, and the cache is dropped whenever partitions move (Faust then rebuilds
the table from its changelog).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections import OrderedDict
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextlib import AbstractContextManager, aclosing, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

import faust
import faust.streams
from faust.types import AgentT

from common.consumer import Event
from common.directory import Tenant
from common.errors import InvalidEvent
from common.settings import Settings
from common.telemetry import QUOTA_DECISIONS
from common.timeconv import epoch_ms
from common.topics import Topic
from schemas import codec
from streams.alerts import alert_record, notice_record
from streams.boundary import BATCH_MAX, Boundary, Producer, batches
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
)
from streams.overage import at_request, fetch_size, needs_release, plan_release
from streams.topics import decode, source_topic, to_event

STAGE = "metering"
RELEASE_STAGE = "metering-releases"
TABLE = "meter_state"
SEND_TIMEOUT_S = 30.0
#: Reload the directory on an unknown tenant (a tenant created a moment ago) at most this often.
REFRESH_INTERVAL_S = 10.0
#: Parsed tenant states kept in memory (least recently used dropped first).
STATE_CACHE = 4096

Clock = Callable[[], datetime]
#: Makes an event the one the table's writes belong to (its partition); see `register`.
Scope = Callable[[Event], AbstractContextManager[Any]]


class Tenants(Protocol):
    def tenant(self, tenant_id: str) -> Tenant | None: ...


class StateTable(Protocol):
    """The `meter_state` faust Table, or a dict in tests."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def _no_scope(_: Event) -> AbstractContextManager[None]:
    return nullcontext()


class _Step(Enum):
    ADDED = "added"  # decided in memory, part of the group
    FULL = "full"  # commit the group first, then decide this event in the next one
    SLOW = "slow"  # commit the group first, then handle this event on its own


@dataclass(frozen=True)
class _Output:
    """A decided event of a group whose outputs are still to be sent."""

    event: Event
    record: Mapping[str, Any]
    verdict: Verdict
    tenant: Tenant


@dataclass
class _Group:
    """Events decided in memory, committed together."""

    events: list[Event] = field(default_factory=list)
    before: dict[str, MeterState] = field(default_factory=dict)  # tenant -> state read
    states: dict[str, MeterState] = field(default_factory=dict)  # tenant -> state now
    last: dict[str, Event] = field(default_factory=dict)  # tenant -> its latest event
    unsent: dict[str, set[str]] = field(default_factory=dict)  # tenant -> ids with outputs
    outputs: list[_Output] = field(default_factory=list)
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)  # (plan, outcome)


class Metering:
    """The handlers: inbound events (one, or a batch) or a release request in, outputs
    acknowledged."""

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
        scope: Scope = _no_scope,
        cache_size: int = STATE_CACHE,
        dump: Callable[[MeterState], Any] = MeterState.to_json,
        load: Callable[[Any], MeterState] = MeterState.from_json,
    ) -> None:
        self._tenants = tenants
        self._table = table
        self._producer = producer
        self._held = held
        self._refresh = refresh
        self._clock = clock
        self._durable = durable  # waits until the table's changelog writes are acknowledged
        self._scope = scope
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()  # one writer of the table at a time
        self._unflushed = False  # table writes not yet known durable
        self._cache: OrderedDict[str, MeterState] = OrderedDict()
        self._cache_size = cache_size
        self._decisions: dict[tuple[str, str], Any] = {}  # metric children by labels
        self._dump = dump  # a state as the table stores it
        self._load = load

    # -- one event ----------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        """One message from messages.inbound."""
        record = decode(event)
        tenant_id = str(record["tenant_id"])
        tenant = await self._tenant(tenant_id)
        conversation = f"{record['channel']}:{record['conversation_id']}"
        ref = InboundRef(str(record["event_id"]), event.partition, event.offset, conversation)
        trigger = f"in:{ref.event_id}"
        async with self._lock:
            with self._scope(event):
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
                self._count(verdict.plan_id, verdict.outcome.value)
            await self._emit(event, record, verdict, check_tenant(tenant))

    # -- a batch: group commit ----------------------------------------------------------

    async def handle_batch(self, events: Sequence[Event], guard: Boundary) -> None:
        """Events from messages.inbound in order: decided in groups, each group's states
        written once and made durable once, then all its outputs sent together. Returns
        when every event is handled (or dead-lettered) and may be acked."""
        i = 0
        while i < len(events):
            group = _Group()
            step = _Step.ADDED
            failure: Exception | None = None
            async with self._lock:
                while i < len(events):
                    try:
                        step = self._plan(group, events[i])
                    except Exception:  # e.g. the table store failed: the slow way retries
                        step = _Step.SLOW
                    if step is not _Step.ADDED:
                        break
                    i += 1
                try:
                    await self._commit(group)
                except Exception as err:  # handled again one by one, outside the lock
                    failure = err
                    self._forget(group.states)
            if failure is not None:
                await guard.each(group.events, self.handle, failure)
            else:
                guard.done(len(group.events))
            if step is _Step.SLOW:
                await guard.process(events[i], self.handle)
                i += 1

    def _plan(self, group: _Group, event: Event) -> _Step:
        """Decide `event` into `group` in memory, if it can be."""
        try:
            record = decode(event)
            tenant_id = str(record["tenant_id"])
            tenant = self._tenants.tenant(tenant_id)
            if tenant is None:
                return _Step.SLOW  # reload the directory, or dead-letter
            check_tenant(tenant)
            conversation = f"{record['channel']}:{record['conversation_id']}"
            ref = InboundRef(str(record["event_id"]), event.partition, event.offset, conversation)
        except (InvalidEvent, KeyError, TypeError, ValueError):
            return _Step.SLOW  # the slow way dead-letters it with the reason
        state = group.states.get(tenant_id)
        if state is None:
            with self._scope(event):
                state = self._state(tenant_id)
        release = state.last_release
        if release is not None and release.trigger == f"in:{ref.event_id}":
            return _Step.SLOW  # re-send the release this event triggered
        fresh = state.verdict_for(ref.event_id) is None and not state.seen_offset(
            ref.partition, ref.offset
        )
        if fresh and needs_release(state, tenant):
            return _Step.SLOW  # release the held messages first
        try:
            new_state, decision = decide(state, ref, tenant, self._clock())
        except InvalidEvent:
            return _Step.SLOW
        verdict = decision.verdict
        unsent = group.unsent.get(tenant_id)
        if unsent and new_state.recent is not state.recent:
            window = {v.event_id for v in new_state.recent}
            if not unsent <= window:
                return _Step.FULL  # it would push an unsent verdict out of the window
        if decision.kind is Kind.NEW:
            new_state = replace(new_state, last_release=None)  # its outputs are all sent
        group.before.setdefault(tenant_id, state)
        group.states[tenant_id] = new_state
        group.last[tenant_id] = event
        group.events.append(event)
        if verdict is not None:
            group.unsent.setdefault(tenant_id, set()).add(verdict.event_id)
            group.outputs.append(_Output(event, record, verdict, tenant))
            if decision.kind is Kind.NEW:
                key = (verdict.plan_id, verdict.outcome.value)
                group.decisions[key] = group.decisions.get(key, 0) + 1
        return _Step.ADDED

    async def _commit(self, group: _Group) -> None:
        """Write the group's states (one write per tenant), wait until they are durable,
        then send every output and wait for all acknowledgements."""
        for tenant_id, new in group.states.items():
            if new != group.before[tenant_id]:
                with self._scope(group.last[tenant_id]):
                    self._put(tenant_id, new)
        for (plan, outcome), n in group.decisions.items():
            self._count(plan, outcome, n)
        await self._settle()
        if not group.outputs:
            return
        sends: list[Awaitable[None]] = []
        rows: dict[str, list[_Output]] = {}  # queue rows per tenant, in decision order
        for out in group.outputs:
            sends += self._sends(out.event, out.record, out.verdict, out.tenant)
            if out.verdict.outcome is Outcome.HELD:
                rows.setdefault(out.tenant.tenant_id, []).append(out)
        sends += [self._put_rows(outs) for outs in rows.values()]
        await _all(sends)

    async def _put_rows(self, outs: Sequence[_Output]) -> None:
        """One tenant's queue rows, one after the other: `seq` follows decision order."""
        for out in outs:
            await self._held_put(out.event, out.record, out.verdict)

    # -- release requests ---------------------------------------------------------------

    async def handle_release(self, event: Event) -> None:
        """One request from quota.releases: release what the tenant's allowance allows."""
        request = decode(event)
        tenant_id = str(request["tenant_id"])
        tenant = check_tenant(await self._tenant(tenant_id))
        trigger = f"rq:{event.partition}:{event.offset}"
        async with self._lock:
            with self._scope(event):
                state = self._state(tenant_id)
                await self._resend_release(state, trigger, tenant)
                if state.seen_request(event.partition, event.offset):
                    return
                await self._release(
                    state, tenant, trigger, request_at=(event.partition, event.offset)
                )

    # -- state --------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop the parsed states (the table may have changed: partitions moved)."""
        self._cache.clear()

    def _forget(self, tenant_ids: Iterable[str]) -> None:
        for tenant_id in tenant_ids:
            self._cache.pop(tenant_id, None)

    def _state(self, tenant_id: str) -> MeterState:
        state = self._cache.get(tenant_id)
        if state is not None:
            self._cache.move_to_end(tenant_id)
            return state
        state = self._load(self._table.get(tenant_id))
        self._remember(tenant_id, state)
        return state

    def _remember(self, tenant_id: str, state: MeterState) -> None:
        if self._cache_size <= 0:
            return
        self._cache[tenant_id] = state
        self._cache.move_to_end(tenant_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _put(self, tenant_id: str, state: MeterState) -> None:
        """Write the tenant's state to the table (not yet durable: see `_settle`)."""
        self._cache.pop(tenant_id, None)
        self._unflushed = True
        self._table[tenant_id] = self._dump(state)
        self._remember(tenant_id, state)

    async def _settle(self) -> None:
        """Wait until every table write so far is durable (before any output)."""
        if self._unflushed:
            if self._durable is not None:
                await self._durable()
            self._unflushed = False

    async def _write(self, tenant_id: str, old: MeterState, new: MeterState) -> None:
        """Store the tenant's new state and wait until it is durable (before any output)."""
        if new != old:
            self._put(tenant_id, new)
        await self._settle()

    async def _tenant(self, tenant_id: str) -> Tenant | None:
        tenant = self._tenants.tenant(tenant_id)
        stale = time.monotonic() - self._refreshed_at >= REFRESH_INTERVAL_S
        if tenant is None and self._refresh is not None and stale:
            await self._refresh()  # a failure here is retried, not dead-lettered
            self._refreshed_at = time.monotonic()
            tenant = self._tenants.tenant(tenant_id)
        return tenant

    def _count(self, plan: str, outcome: str, n: int = 1) -> None:
        child = self._decisions.get((plan, outcome))
        if child is None:
            child = self._decisions[(plan, outcome)] = QUOTA_DECISIONS.labels(plan, outcome)
        child.inc(n)

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
            self._count(release.plan_id, "released", len(verdicts))
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
        await self._settle()
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
        await self._settle()
        sends = self._sends(event, record, verdict, tenant)
        if verdict.outcome is Outcome.HELD:
            sends.append(self._held_put(event, record, verdict))
        await _all(sends)

    def _sends(
        self, event: Event, record: Mapping[str, Any], verdict: Verdict, tenant: Tenant
    ) -> list[Awaitable[None]]:
        """The broker outputs of one decided message (the queue row is `_held_put`)."""
        tenant_id = tenant.tenant_id
        send = self._producer.send
        sends: list[Awaitable[None]] = [
            send(
                Topic.SESSION_EVENTS,
                tenant_id,
                session_event(record, verdict),
                timeout=SEND_TIMEOUT_S,
            )
        ]
        if verdict.alerts:
            sends += self._alerts(tenant, verdict.alerts, verdict)
        if verdict.outcome is Outcome.HELD:
            # same schema as the source: the original bytes, untouched
            sends.append(
                self._producer.send_raw(
                    Topic.HELD, tenant_id.encode(), event.raw, timeout=SEND_TIMEOUT_S
                )
            )
            if verdict.notice:
                notice = notice_record(record, verdict, tenant)
                sends.append(send(Topic.OUTBOUND, tenant_id, notice, timeout=SEND_TIMEOUT_S))
        else:
            sends.append(
                send(Topic.ADMITTED, tenant_id, admitted(record, verdict), timeout=SEND_TIMEOUT_S)
            )
            sends.append(
                send(Topic.USAGE, tenant_id, usage(record, verdict), timeout=SEND_TIMEOUT_S)
            )
        return sends

    def _held_put(
        self, event: Event, record: Mapping[str, Any], verdict: Verdict
    ) -> Awaitable[None]:
        conversation = f"{record['channel']}:{record['conversation_id']}"
        return self._held.put(
            str(record["tenant_id"]),
            verdict.event_id,
            conversation,
            verdict.period_start_ms,
            event.raw,
        )

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


def state_bytes(state: MeterState) -> bytes:
    """A tenant's state as the `meter_state` table stores it: compact JSON."""
    return json.dumps(state.to_json(), separators=(",", ":")).encode()


def state_from_bytes(raw: Any) -> MeterState:
    """The state from a `meter_state` value: JSON bytes (or a decoded value, or nothing)."""
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = json.loads(bytes(raw))
    return MeterState.from_json(raw)


@dataclass
class _Write:
    """One changelog record of the table, until the broker acknowledged it."""

    future: Awaitable[Any]
    partition: int | None
    key: Any
    value: Any


class ChangelogAcks:
    """The table's changelog writes, awaited: `wait()` returns once the broker acknowledged
    every record written so far, and raises when one was lost (after sending that key's
    latest value again, so the next `wait()` covers it). Exact, unlike flushing the
    producer, which gives up waiting on its own buffer after 0.1 s without progress."""

    def __init__(self, table: Any) -> None:
        self._send = table.send_changelog
        self._pending: list[_Write] = []
        self._latest: dict[Any, _Write] = {}
        table.send_changelog = self._sending  # every write of the table goes through here

    def _sending(self, partition: int | None, key: Any, value: Any, *args: Any, **kw: Any) -> Any:
        future = self._send(partition, key, value, *args, **kw)
        write = _Write(future, partition, key, value)
        self._pending.append(write)
        self._latest[key] = write
        return future

    async def wait(self) -> None:
        while self._pending:
            writes = list(self._pending)
            # asyncio.wait, not gather: a cancelled wait must not cancel Faust's futures
            await asyncio.wait([asyncio.ensure_future(w.future) for w in writes])
            del self._pending[: len(writes)]  # writes made meanwhile stay pending
            failure: BaseException | None = None
            for write in writes:
                error = _failure(write.future)
                latest = self._latest.get(write.key) is write
                if error is not None:
                    failure = failure or error
                    if latest:
                        self._sending(write.partition, write.key, write.value)
                elif latest:
                    del self._latest[write.key]
            if failure is not None:
                raise failure


def _failure(future: Awaitable[Any]) -> BaseException | None:
    if isinstance(future, asyncio.Future):
        return future.exception() if not future.cancelled() else asyncio.CancelledError()
    return None


@contextmanager
def _current_faust_event(source: Any) -> Iterator[None]:
    """Within the block, Faust's "current event" (whose partition a table write goes to) is
    `source`: what iterating the stream sets, made explicit for a batch."""
    token = faust.streams._current_event.set(weakref.ref(source))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


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
    return {**record, "received_at": epoch_ms(record["received_at"])}


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
        "occurred_at": epoch_ms(record["received_at"]),
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


def register(
    app: faust.App,
    settings: Settings,
    *,
    tenants: Tenants,
    producer: Producer,
    held: HeldQueue,
    refresh: Callable[[], Awaitable[None]] | None = None,
    boundary: Boundary | None = None,
    durable: Callable[[], Awaitable[None]] | None = None,
) -> tuple[AgentT[Any], AgentT[Any]]:
    """Add the `meter_state` table, the metering agent and the release agent to `app`.

    `durable` waits until the table's writes are acknowledged (default: every changelog
    record written so far, see `ChangelogAcks`)."""
    table = app.Table(
        TABLE,
        default=None,
        partitions=settings.topic_partitions,
        # values are JSON bytes made here (`state_bytes`): serialised once, not once for the
        # local store and once more for the changelog
        schema=faust.Schema(key_serializer="json", value_serializer="raw"),
        help="Per-tenant count, held messages, offsets and recent verdicts (streams.metering).",
    )
    acks = ChangelogAcks(table)
    # Faust files a table write under the partition of the event being processed (the
    # changelog partition and the local store's partition). A batch decides events of many
    # partitions, so each write runs with its tenant's event made the current one.
    sources: dict[int, Any] = {}  # id(Event) -> its Faust event, while its batch runs

    def scope(event: Event) -> AbstractContextManager[Any]:
        source = sources.get(id(event))
        return nullcontext() if source is None else _current_faust_event(source)

    metering = Metering(
        tenants,
        table,
        producer,
        held,
        refresh=refresh,
        durable=durable or acks.wait,
        scope=scope,
        dump=state_bytes,
        load=state_from_bytes,
    )
    guard = boundary or Boundary(STAGE, producer)
    release_guard = boundary or Boundary(RELEASE_STAGE, producer)

    async def moved(*_: Any, **__: Any) -> None:
        metering.forget()  # the table is rebuilt from the changelog: parse it again

    app.on_partitions_revoked.connect(moved)
    app.on_partitions_assigned.connect(moved)
    table.on_recover(moved)

    async def meter(stream: Any) -> None:
        # Manual acks: an event is acked only once its outputs are acknowledged. With
        # automatic acks Faust acks the current event even when the agent is cancelled
        # mid-retry (the ack sits in the stream generator's `finally`).
        manual = stream.noack()
        async with aclosing(batches(manual, BATCH_MAX)) as taken:
            async for records in taken:
                events = []
                for record in records:
                    message = record.message
                    event = to_event(
                        Topic.INBOUND, message.partition, message.offset, record.key, record.value
                    )
                    sources[id(event)] = record
                    events.append(event)
                try:
                    await metering.handle_batch(events, guard)
                finally:
                    sources.clear()
                for record in records:
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
