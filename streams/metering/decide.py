"""Metering decisions as pure functions over one tenant's state: no I/O, no clock.

`decide(state, event, tenant, now)` returns the tenant's next `MeterState` and the
`Decision` for one inbound message. The handler (`streams.metering.handler`) stores the state
as ONE table write (one changelog record, so the decision is atomic) and then sends the
outputs. Counting stays exact under at-least-once delivery:

- an event at or below the partition's `last_offset` was decided before (a replay after a
  crash): nothing is counted again and the recorded verdict is re-sent, byte for byte the
  same decision (downstream consumers are idempotent by event id);
- an event whose `event_id` is among the `recent` verdicts (ingress published it twice) is
  treated the same way;
- a replayed offset older than the recent window needs nothing: the agent handles one event
  at a time and finishes its outputs before the next, so only the newest events of a tenant
  can have unsent outputs, and those are in the window;
- a new subscription period (the tenant's `period_start` changed) restarts the count, and
  the alerts and notices of the period.

Under the plan's `msg_limit` (or with no limit), and with nothing held before it, a message
is admitted and counted; the one whose count reaches 80% of the limit carries the period's
soft alert. Otherwise it is held: it joins the tenant's overage queue (`held` counts it),
the first hold of the period carries the hard alert, and the first hold of each conversation
in the period carries a polite notice to the end user. Releasing held messages is
`streams.metering.overage`; the state's storage form is `streams.metering.state`.

A suspended tenant (payment failed and the grace period ran out) has every message held the
same way, whatever its count, with no quota alert (the owner was told by billing); they are
released in order once the tenant is back in service. A deleted tenant's messages are
invalid (dead-lettered with the reason): there is no one left to serve them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from common.directory import Tenant
from common.errors import InvalidEvent
from common.tenant_status import DELETED, SUSPENDED
from common.timeconv import to_ms
from schemas.types import InboundMessage
from streams.metering.state import (
    RECENT_EVENTS,
    Alert,
    Level,
    MeterState,
    Outcome,
    Verdict,
)

#: How many conversations a period remembers as notified (beyond: no more notices).
NOTIFIED_MAX = 1024


class Kind(StrEnum):
    NEW = "new"  # decided now: counted if admitted; send the outputs
    REPLAY = "replay"  # decided before: send the same outputs again, count nothing
    DONE = "done"  # decided long before: its outputs are known to be sent


@dataclass(frozen=True)
class InboundRef:
    """Where an inbound message sits: its id, its position, and its conversation."""

    event_id: str
    partition: int
    offset: int
    conversation: str = ""  # <channel>:<conversation_id>, for the once-per-conversation notice

    @classmethod
    def of(cls, record: InboundMessage, partition: int, offset: int) -> InboundRef:
        """The reference of a decoded InboundMessage consumed at `partition`/`offset`."""
        key = conversation(record)
        return cls(record["event_id"], partition, offset, key)


def conversation(record: InboundMessage) -> str:
    """An inbound message's conversation: `<channel>:<conversation_id>`."""
    return f"{record['channel']}:{record['conversation_id']}"


@dataclass(frozen=True)
class Decision:
    kind: Kind
    verdict: Verdict | None  # None only for Kind.DONE


def undecided(state: MeterState, event: InboundRef) -> bool:
    """Neither the event's id nor its offset is known to `state`: it was never decided."""
    return state.verdict_for(event.event_id) is None and not state.seen_offset(
        event.partition, event.offset
    )


def check_tenant(tenant: Tenant | None) -> Tenant:
    """The tenant, if metering can count for it; InvalidEvent otherwise."""
    if tenant is None:
        raise InvalidEvent("unknown tenant")
    if tenant.status == DELETED:
        raise InvalidEvent("tenant deleted")
    if tenant.plan_id is None or tenant.period_start is None or tenant.period_end is None:
        raise InvalidEvent("tenant has no subscription")
    return tenant


def in_period(state: MeterState, tenant: Tenant) -> MeterState:
    """`state` moved to the tenant's current period (a new period starts from zero)."""
    assert tenant.period_start is not None
    start = to_ms(tenant.period_start)
    if state.period_start_ms == start:
        return state
    return replace(state, period_start_ms=start, count=0, alerted=(), notified=())


def soft_threshold(limit: int) -> int:
    """The count that is 80% of `limit`, rounded up (at least 1)."""
    return max(1, (4 * limit + 4) // 5)


def soft_alert(state: MeterState, limit: int | None, count: int) -> tuple[Alert, ...]:
    """The soft alert due once `count` messages are admitted, if it is due now."""
    if limit is None or limit <= 0 or Level.SOFT in state.alerted:
        return ()
    return (Alert(Level.SOFT, count, limit),) if count >= soft_threshold(limit) else ()


def hard_alert(state: MeterState, limit: int | None, count: int) -> tuple[Alert, ...]:
    """The hard alert, if this period has not had it yet."""
    if limit is None or Level.HARD in state.alerted:
        return ()
    return (Alert(Level.HARD, count, limit),)


def with_alerts(state: MeterState, alerts: Sequence[Alert]) -> MeterState:
    if not alerts:
        return state
    return replace(state, alerted=(*state.alerted, *(a.level.value for a in alerts)))


def conversation_key(conversation: str) -> str:
    return hashlib.blake2b(conversation.encode(), digest_size=6).hexdigest()


def decide(
    state: MeterState | None,
    event: InboundRef,
    tenant: Tenant | None,
    now: datetime,
    *,
    queued: bool = False,
) -> tuple[MeterState, Decision]:
    """The tenant's next state and the decision for `event`.

    `queued`: the event is known to be in the overage queue already (its hold was decided
    before but that state was lost in a crash, and a release just read its row and counted
    it as held), so holding it again does not count it again.
    Raises InvalidEvent for an unknown tenant or one without a subscription period.
    """
    tenant = check_tenant(tenant)
    state = state or MeterState()

    known = state.verdict_for(event.event_id)
    if known is not None:
        return _at_offset(state, event), Decision(Kind.REPLAY, known)
    if state.seen_offset(event.partition, event.offset):
        return state, Decision(Kind.DONE, None)

    current = in_period(state, tenant)
    limit = tenant.msg_limit
    assert current.period_start_ms is not None and tenant.plan_id and tenant.period_end
    common = (tenant.plan_id, current.period_start_ms, to_ms(tenant.period_end), to_ms(now))
    suspended = tenant.status == SUSPENDED
    if not suspended and current.held == 0 and (limit is None or current.count < limit):
        count = current.count + 1
        alerts = soft_alert(current, limit, count)
        verdict = Verdict(event.event_id, Outcome.ADMITTED, count, *common, alerts)
        new_state = replace(with_alerts(current, alerts), count=count)
    else:  # suspended, at the limit, or behind messages already held: queue it
        alerts = () if suspended else hard_alert(current, limit, current.count)
        key = conversation_key(event.conversation) if event.conversation else ""
        notice = bool(key) and key not in current.notified and len(current.notified) < NOTIFIED_MAX
        verdict = Verdict(event.event_id, Outcome.HELD, 0, *common, alerts, notice)
        new_state = replace(
            with_alerts(current, alerts),
            held=current.held + (0 if queued else 1),
            notified=(*current.notified, key) if notice else current.notified,
        )
    new_state = replace(
        _at_offset(new_state, event), recent=(*state.recent, verdict)[-RECENT_EVENTS:]
    )
    return new_state, Decision(Kind.NEW, verdict)


def _at_offset(state: MeterState, event: InboundRef) -> MeterState:
    if state.seen_offset(event.partition, event.offset):
        return state
    return replace(state, last_offset={**state.last_offset, event.partition: event.offset})
