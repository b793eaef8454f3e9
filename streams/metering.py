"""Metering decisions as pure functions over one tenant's state: no I/O, no clock.

`decide(state, event, tenant, now)` returns the tenant's next `MeterState` and the
`Decision` for one inbound message. The agent (`streams.agents.metering`) stores the state
as ONE table write per message (one changelog record, so the decision is atomic) and then
sends the outputs. Counting stays exact under at-least-once delivery:

- an event at or below the partition's `last_offset` was decided before (a replay after a
  crash): nothing is counted again and the recorded verdict is re-sent, byte for byte the
  same decision (downstream consumers are idempotent by event id);
- an event whose `event_id` is among the `recent` verdicts (ingress published it twice) is
  treated the same way;
- a replayed offset older than the recent window needs nothing: the agent handles one event
  at a time and finishes its outputs before the next, so only the newest events of a tenant
  can have unsent outputs, and those are in the window;
- a new subscription period (the tenant's `period_start` changed) restarts the count.

Under the plan's `msg_limit` (or with no limit) a message is admitted and counted; at or
over the limit it is held (overage and alerts are decided elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from common.directory import Tenant
from common.errors import InvalidEvent

#: How many verdicts a tenant's state remembers for replay and duplicate detection.
RECENT_EVENTS = 64


class Outcome(StrEnum):
    ADMITTED = "admitted"
    HELD = "held"


class Kind(StrEnum):
    NEW = "new"  # decided now: counted if admitted; send the outputs
    REPLAY = "replay"  # decided before: send the same outputs again, count nothing
    DONE = "done"  # decided long before: its outputs are known to be sent


@dataclass(frozen=True)
class Verdict:
    """What was decided for one message: all the outputs need."""

    event_id: str
    outcome: Outcome
    count_in_period: int  # 1-based position among admitted messages; 0 when held
    plan_id: str
    period_start_ms: int
    period_end_ms: int
    metered_at_ms: int

    def to_json(self) -> list[Any]:
        return [
            self.event_id,
            self.outcome.value,
            self.count_in_period,
            self.plan_id,
            self.period_start_ms,
            self.period_end_ms,
            self.metered_at_ms,
        ]

    @classmethod
    def from_json(cls, raw: Sequence[Any]) -> Verdict:
        event_id, outcome, count, plan_id, start, end, at = raw
        return cls(str(event_id), Outcome(outcome), int(count), str(plan_id), start, end, at)


@dataclass(frozen=True)
class MeterState:
    """One tenant's meter: the value of the `meter_state` table (JSON)."""

    period_start_ms: int | None = None
    count: int = 0  # messages admitted in the period
    last_offset: Mapping[int, int] = field(default_factory=dict)  # partition -> offset
    recent: tuple[Verdict, ...] = ()  # oldest first, at most RECENT_EVENTS

    def verdict_for(self, event_id: str) -> Verdict | None:
        for verdict in reversed(self.recent):
            if verdict.event_id == event_id:
                return verdict
        return None

    def seen_offset(self, partition: int, offset: int) -> bool:
        last = self.last_offset.get(partition)
        return last is not None and offset <= last

    def to_json(self) -> dict[str, Any]:
        return {
            "period_start": self.period_start_ms,
            "count": self.count,
            "last_offset": {str(p): o for p, o in sorted(self.last_offset.items())},
            "recent": [v.to_json() for v in self.recent],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> MeterState:
        if not raw:
            return cls()
        return cls(
            period_start_ms=raw.get("period_start"),
            count=int(raw.get("count", 0)),
            last_offset={int(p): int(o) for p, o in raw.get("last_offset", {}).items()},
            recent=tuple(Verdict.from_json(v) for v in raw.get("recent", [])),
        )


@dataclass(frozen=True)
class InboundRef:
    """Where an inbound message sits: its id and its position in the source topic."""

    event_id: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Decision:
    kind: Kind
    verdict: Verdict | None  # None only for Kind.DONE


def decide(
    state: MeterState | None, event: InboundRef, tenant: Tenant | None, now: datetime
) -> tuple[MeterState, Decision]:
    """The tenant's next state and the decision for `event`.

    Raises InvalidEvent for an unknown tenant or one without a subscription period.
    """
    if tenant is None:
        raise InvalidEvent("unknown tenant")
    if tenant.plan_id is None or tenant.period_start is None or tenant.period_end is None:
        raise InvalidEvent("tenant has no subscription")
    state = state or MeterState()

    known = state.verdict_for(event.event_id)
    if known is not None:
        return _at_offset(state, event), Decision(Kind.REPLAY, known)
    if state.seen_offset(event.partition, event.offset):
        return state, Decision(Kind.DONE, None)

    period_start = to_ms(tenant.period_start)
    count = state.count if state.period_start_ms == period_start else 0
    if tenant.msg_limit is None or count < tenant.msg_limit:
        count += 1
        outcome, position = Outcome.ADMITTED, count
    else:
        outcome, position = Outcome.HELD, 0
    verdict = Verdict(
        event_id=event.event_id,
        outcome=outcome,
        count_in_period=position,
        plan_id=tenant.plan_id,
        period_start_ms=period_start,
        period_end_ms=to_ms(tenant.period_end),
        metered_at_ms=to_ms(now),
    )
    new_state = replace(
        _at_offset(state, event),
        period_start_ms=period_start,
        count=count,
        recent=(*state.recent, verdict)[-RECENT_EVENTS:],
    )
    return new_state, Decision(Kind.NEW, verdict)


def _at_offset(state: MeterState, event: InboundRef) -> MeterState:
    if state.seen_offset(event.partition, event.offset):
        return state
    return replace(state, last_offset={**state.last_offset, event.partition: event.offset})


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds (what timestamp-millis fields carry); naive datetimes are UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
