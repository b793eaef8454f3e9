"""Releases of held messages: what a tenant's allowance allows, in the queue's order.

Before a new message of a tenant with held messages and room (after an upgrade or in a new
period) is decided, the held ones are released first (`_release`, called by
`Metering.handle`), so nothing overtakes them; a release request on quota.releases
(`streams.metering.release_watch`, `openclaw-saas overage release`) does the same for a
tenant that sends nothing (`handle_release`). Each release is planned by the pure
`streams.metering.overage.plan_release` and written as one state write before its outputs
are sent (`_emit_release`). The state's `last_release` names the event that triggered the
latest release (`inbound_trigger` or `rq:<partition>:<offset>`), and handling that event
again re-sends the release's outputs (`_resend_release`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from common.consumer import Event
from common.directory import Tenant
from common.topics import Topic
from schemas import codec
from schemas.types import InboundMessage, ReleaseRequest
from streams.metering.core import MeterCore
from streams.metering.decide import check_tenant
from streams.metering.held_store import HeldRow
from streams.metering.outputs import (
    SEND_TIMEOUT_S,
    admitted,
    alert_sends,
    send_all,
    session_event,
    usage,
)
from streams.metering.overage import at_request, fetch_size, needs_release, plan_release
from streams.metering.state import MeterState, Release
from streams.topics import decode_as


def inbound_trigger(event_id: str) -> str:
    """The trigger of a release caused by the inbound message `event_id`."""
    return f"in:{event_id}"


def triggered(release: Release | None, trigger: str) -> bool:
    return release is not None and release.trigger == trigger


class Releases(MeterCore):
    """The release handler of `Metering`, and the releases its inbound handlers start."""

    async def handle_release(self, event: Event) -> None:
        """One request from quota.releases: release what the tenant's allowance allows."""
        request = decode_as(event, ReleaseRequest)
        tenant_id = request["tenant_id"]
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
                state, tenant, [(r.seq, r.event_id) for r in rows], trigger, self._clock.now()
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
        records = [codec.decode_as(payloads[v.event_id], InboundMessage) for v in verdicts]
        tenant_id = tenant.tenant_id
        await send_all(
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
        sends += alert_sends(self._producer, tenant, release.alerts, release)
        sends.append(self._held.mark_released(tenant_id, release.after_seq, release.upto_seq))
        await send_all(sends)
