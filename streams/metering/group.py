"""Group commit: a batch of messages.inbound decided in memory, committed together.

`GroupCommit.handle_batch` decides the events in order with the pure `decide` (each
tenant's state updated in memory, `_plan`), writes each touched tenant's state to the table
once (one changelog record per tenant), waits once until they are all durable, then starts
every output of the group and waits for all their acknowledgements (`_commit`). A group
stops before an event that needs more than a decision (`_Step.SLOW`: handled on its own,
`Metering.handle`) or that would push an unsent verdict of the group out of the tenant's
window of recent verdicts (`_Step.FULL`: it starts the next group). See `streams.metering`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from common.consumer import Event
from common.directory import Tenant
from common.errors import InvalidEvent
from schemas.types import InboundMessage
from streams.boundary import Boundary
from streams.metering.core import MeterCore
from streams.metering.decide import InboundRef, Kind, check_tenant, decide, undecided
from streams.metering.outputs import message_sends, queue_row, send_all
from streams.metering.overage import needs_release
from streams.metering.release import inbound_trigger, triggered
from streams.metering.state import MeterState, Outcome, Verdict
from streams.topics import decode_as


class _Step(Enum):
    ADDED = "added"  # decided in memory, part of the group
    FULL = "full"  # commit the group first, then decide this event in the next one
    SLOW = "slow"  # commit the group first, then handle this event on its own


@dataclass(frozen=True)
class _Output:
    """A decided event of a group whose outputs are still to be sent."""

    event: Event
    record: InboundMessage
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


class GroupCommit(MeterCore):
    """The batch handler of `Metering`."""

    async def handle(self, event: Event) -> None:
        """One event on its own (the slow way): `streams.metering.handler.Metering.handle`."""
        raise NotImplementedError

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
            record = decode_as(event, InboundMessage)
            tenant_id = record["tenant_id"]
            tenant = self._tenants.tenant(tenant_id)
            if tenant is None:
                return _Step.SLOW  # reload the directory, or dead-letter
            check_tenant(tenant)
            ref = InboundRef.of(record, event.partition, event.offset)
        except (InvalidEvent, KeyError, TypeError, ValueError):
            return _Step.SLOW  # the slow way dead-letters it with the reason
        state = group.states.get(tenant_id)
        if state is None:
            with self._scope(event):
                state = self._state(tenant_id)
        if triggered(state.last_release, inbound_trigger(ref.event_id)):
            return _Step.SLOW  # re-send the release this event triggered
        if undecided(state, ref) and needs_release(state, tenant):
            return _Step.SLOW  # release the held messages first
        try:
            new_state, decision = decide(state, ref, tenant, self._clock.now())
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
            sends += message_sends(self._producer, out.event, out.record, out.verdict, out.tenant)
            if out.verdict.outcome is Outcome.HELD:
                rows.setdefault(out.tenant.tenant_id, []).append(out)
        sends += [self._put_rows(outs) for outs in rows.values()]
        await send_all(sends)

    async def _put_rows(self, outs: Sequence[_Output]) -> None:
        """One tenant's queue rows, one after the other: `seq` follows decision order."""
        for out in outs:
            await queue_row(self._held, out.event, out.record, out.verdict)
