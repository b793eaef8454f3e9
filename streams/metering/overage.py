"""Releasing held messages, as pure functions over one tenant's state.

Held messages wait in the tenant's queue (PostgreSQL `held_messages`, ordered by `seq`;
see `streams.metering.held_store`). The state remembers how many are held and the `seq` up to which
they are released, so the queue rows still held are exactly those after `released_seq`:
releases always take a prefix of the queue, which keeps the original order.

A release happens when the tenant has held messages and room under its current allowance
(an upgrade raised the limit, or a new period restarted the count). `plan_release` re-meters
the next queue rows like new messages: each is admitted while there is room (counted in the
current period, soft alert included), the rest stay held (with the period's hard alert if
it has not gone out yet). One release is ONE state write, and the `Release` it records is
enough to send its outputs again if the worker dies before they are all acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from common.directory import Tenant
from common.tenant_status import SUSPENDED
from common.timeconv import to_ms
from streams.metering.decide import check_tenant, hard_alert, in_period, soft_alert, with_alerts
from streams.metering.state import RECENT_EVENTS, MeterState, Outcome, Release, Verdict

#: At most this many queue rows are read and released in one state write.
RELEASE_BATCH = 500


def room(state: MeterState, tenant: Tenant) -> int | None:
    """Messages the tenant may still send in its current period (None: unlimited)."""
    if tenant.msg_limit is None:
        return None
    return max(0, tenant.msg_limit - in_period(state, tenant).count)


def needs_release(state: MeterState, tenant: Tenant | None) -> bool:
    """Held messages, a tenant in service (not suspended) and room for one of them."""
    if state.held <= 0 or tenant is None or tenant.period_start is None:
        return False
    if tenant.status == SUSPENDED:
        return False
    free = room(state, tenant)
    return free is None or free > 0


def fetch_size(state: MeterState, tenant: Tenant) -> int:
    """How many queue rows to read for the next release: what fits, plus one to tell
    whether more remain."""
    free = room(state, tenant)
    return min(RELEASE_BATCH if free is None else free, RELEASE_BATCH) + 1


def plan_release(
    state: MeterState,
    tenant: Tenant,
    rows: Sequence[tuple[int, str]],
    trigger: str,
    now: datetime,
) -> tuple[MeterState, Release, list[Verdict]]:
    """Re-meter queue rows `(seq, event_id)` (the next ones after `released_seq`, in order).

    Returns the next state, the `Release` to remember, and the admitted verdicts in order.
    """
    tenant = check_tenant(tenant)
    assert tenant.plan_id and tenant.period_end
    current = in_period(state, tenant)
    limit = tenant.msg_limit
    count, last = current.count, current.released_seq
    admitted: list[tuple[int, str]] = []
    skipped: list[str] = []
    for seq, event_id in rows[:RELEASE_BATCH]:
        if seq <= current.released_seq:
            continue  # released before (a stale read): never twice
        if limit is not None and count >= limit:
            break
        known = current.verdict_for(event_id)
        if known is not None and known.outcome is Outcome.ADMITTED:
            skipped.append(event_id)  # admitted directly before: passes, uncounted
        else:
            admitted.append((seq, event_id))
            count += 1
        last = seq
    consumed = len(admitted) + len(skipped)
    remaining = sum(1 for seq, _ in rows if seq > last)
    held = max(current.held - consumed, remaining) if remaining else 0
    alerts = soft_alert(current, limit, count) if count > current.count else ()
    if remaining and limit is not None and count >= limit:
        alerts += hard_alert(current, limit, count)
    release = Release(
        trigger=trigger,
        after_seq=current.released_seq,
        upto_seq=last,
        first_count=current.count,
        plan_id=tenant.plan_id,
        period_start_ms=current.period_start_ms or 0,
        period_end_ms=to_ms(tenant.period_end),
        released_at_ms=to_ms(now),
        skipped=tuple(skipped),
        alerts=alerts,
    )
    verdicts = release.verdicts(admitted)
    new_state = replace(
        with_alerts(current, alerts),
        count=count,
        held=held,
        released_seq=last,
        recent=(*current.recent, *verdicts)[-RECENT_EVENTS:],
        last_release=release,
    )
    return new_state, release, verdicts


def at_request(state: MeterState, partition: int, offset: int) -> MeterState:
    """`state` remembering that the release request at `offset` was handled."""
    if state.seen_request(partition, offset):
        return state
    return replace(state, request_offset={**state.request_offset, partition: offset})
