"""The metering handlers, `Metering`: one message of messages.inbound (`handle`, here), a
batch of them (`handle_batch`: group commit, `streams.metering.group`) and a request of
quota.releases (`handle_release`, `streams.metering.release`). What they share (the lock,
the state cache, tenant lookups) is `streams.metering.core`; see `streams.metering` for the
whole story.
"""

from __future__ import annotations

from dataclasses import replace

from common.consumer import Event
from common.directory import Tenant
from schemas.types import InboundMessage
from streams.metering.decide import InboundRef, Kind, check_tenant, decide, undecided
from streams.metering.group import GroupCommit
from streams.metering.outputs import message_sends, queue_row, send_all
from streams.metering.overage import needs_release
from streams.metering.release import Releases, inbound_trigger, triggered
from streams.metering.state import Outcome, Verdict
from streams.topics import decode_as


class Metering(GroupCommit, Releases):
    """The handlers: inbound events (one, or a batch) or a release request in, outputs
    acknowledged."""

    async def handle(self, event: Event) -> None:
        """One message from messages.inbound."""
        record = decode_as(event, InboundMessage)
        tenant_id = record["tenant_id"]
        tenant = await self._tenant(tenant_id)
        ref = InboundRef.of(record, event.partition, event.offset)
        trigger = inbound_trigger(ref.event_id)
        async with self._lock:
            with self._scope(event):
                state = self._state(tenant_id)
                await self._resend_release(state, trigger, tenant)
                queued: set[str] = set()
                if undecided(state, ref) and needs_release(state, tenant):
                    state = await self._release(state, check_tenant(tenant), trigger, queued=queued)
                new_state, decision = decide(
                    state, ref, tenant, self._clock.now(), queued=ref.event_id in queued
                )
                if decision.kind is Kind.NEW and not triggered(new_state.last_release, trigger):
                    new_state = replace(new_state, last_release=None)  # its outputs are all sent
                await self._write(tenant_id, state, new_state)
            verdict = decision.verdict
            if verdict is None:  # decided long ago, outputs known sent
                return
            if decision.kind is Kind.NEW:
                self._count(verdict.plan_id, verdict.outcome.value)
            await self._emit(event, record, verdict, check_tenant(tenant))

    async def _emit(
        self, event: Event, record: InboundMessage, verdict: Verdict, tenant: Tenant
    ) -> None:
        await self._settle()
        sends = message_sends(self._producer, event, record, verdict, tenant)
        if verdict.outcome is Outcome.HELD:
            sends.append(queue_row(self._held, event, record, verdict))
        await send_all(sends)
