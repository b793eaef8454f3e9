"""Metering decisions as pure functions over one tenant's state: no I/O, no clock.

`decide(state, event, tenant, now)` returns the tenant's next `MeterState` and the
`Decision` for one inbound message. The agent (`streams.agents.metering`) stores the state
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
`streams.overage`.

A suspended tenant (payment failed and the grace period ran out) has every message held the
same way, whatever its count, with no quota alert (the owner was told by billing); they are
released in order once the tenant is back in service. A deleted tenant's messages are
invalid (dead-lettered with the reason): there is no one left to serve them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from common.directory import Tenant
from common.errors import InvalidEvent
from common.tenant_status import DELETED, SUSPENDED
from common.timeconv import to_ms

#: How many verdicts a tenant's state remembers for replay and duplicate detection.
RECENT_EVENTS = 64
#: How many conversations a period remembers as notified (beyond: no more notices).
NOTIFIED_MAX = 1024


class Outcome(StrEnum):
    ADMITTED = "admitted"
    HELD = "held"


class Kind(StrEnum):
    NEW = "new"  # decided now: counted if admitted; send the outputs
    REPLAY = "replay"  # decided before: send the same outputs again, count nothing
    DONE = "done"  # decided long before: its outputs are known to be sent


class Level(StrEnum):
    SOFT = "soft"  # 80% of the period's messages
    HARD = "hard"  # the limit: messages are held


@dataclass(frozen=True)
class Alert:
    level: Level
    used: int
    limit: int

    def to_json(self) -> list[Any]:
        return [self.level.value, self.used, self.limit]

    @classmethod
    def from_json(cls, raw: Sequence[Any]) -> Alert:
        level, used, limit = raw
        return cls(Level(level), int(used), int(limit))


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
    alerts: tuple[Alert, ...] = ()  # raised by this decision
    notice: bool = False  # a held message whose conversation gets the polite notice

    def to_json(self) -> list[Any]:
        head: list[Any] = [
            self.event_id,
            self.outcome.value,
            self.count_in_period,
            self.plan_id,
            self.period_start_ms,
            self.period_end_ms,
            self.metered_at_ms,
        ]
        if self.alerts or self.notice:
            head += [[a.to_json() for a in self.alerts], self.notice]
        return head

    @classmethod
    def from_json(cls, raw: Sequence[Any], period: Sequence[Any] | None = None) -> Verdict:
        """A verdict in either form: whole (`to_json`) or short (`to_short`, with the
        `period` it was written against)."""
        if period is not None and not isinstance(raw[3], str):
            plan_id, start, end = period
            event_id, outcome, count, since = raw[:4]
            raw = [event_id, outcome, count, plan_id, start, end, start + since, *raw[4:]]
        event_id, outcome, count, plan_id, start, end, at = raw[:7]
        alerts = tuple(Alert.from_json(a) for a in raw[7]) if len(raw) > 7 else ()
        notice = bool(raw[8]) if len(raw) > 8 else False
        return cls(
            str(event_id),
            Outcome(outcome),
            int(count),
            str(plan_id),
            start,
            end,
            at,
            alerts,
            notice,
        )

    @property
    def period(self) -> tuple[str, int, int]:
        return (self.plan_id, self.period_start_ms, self.period_end_ms)

    def to_short(self) -> list[Any]:
        """`to_json` without the plan and period (the state stores them once for all its
        verdicts of that period) and with the time as ms since the period start: most of
        a meter state is its recent verdicts, and every changelog write carries them all."""
        whole = self.to_json()
        return [*whole[:3], self.metered_at_ms - self.period_start_ms, *whole[7:]]


def _recent_to_json(recent: Sequence[Verdict]) -> Any:
    if not recent:
        return []
    period = recent[-1].period
    return {
        "period": list(period),
        "verdicts": [v.to_short() if v.period == period else v.to_json() for v in recent],
    }


def _recent_from_json(raw: Any) -> tuple[Verdict, ...]:
    if isinstance(raw, Mapping):  # {"period": [...], "verdicts": [short or whole, ...]}
        period = raw["period"]
        return tuple(Verdict.from_json(v, period) for v in raw["verdicts"])
    return tuple(Verdict.from_json(v) for v in raw or ())  # written before the short form


@dataclass(frozen=True)
class Release:
    """One release of held messages: enough to send its outputs again after a crash.

    The messages released are the tenant's queue rows with `after_seq < seq <= upto_seq`,
    except `skipped` (admitted before, never counted twice); the i-th released message is
    number `first_count + i` (1-based) of the period.
    """

    trigger: str  # the event that caused it: "in:<event_id>" or "rq:<partition>:<offset>"
    after_seq: int
    upto_seq: int
    first_count: int
    plan_id: str
    period_start_ms: int
    period_end_ms: int
    released_at_ms: int
    skipped: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()

    def verdicts(self, rows: Sequence[tuple[int, str]]) -> list[Verdict]:
        """The admitted verdicts of this release, given queue rows (seq, event_id) in order."""
        out: list[Verdict] = []
        for seq, event_id in rows:
            if self.after_seq < seq <= self.upto_seq and event_id not in self.skipped:
                out.append(
                    Verdict(
                        event_id,
                        Outcome.ADMITTED,
                        self.first_count + len(out) + 1,
                        self.plan_id,
                        self.period_start_ms,
                        self.period_end_ms,
                        self.released_at_ms,
                    )
                )
        return out

    def to_json(self) -> list[Any]:
        return [
            self.trigger,
            self.after_seq,
            self.upto_seq,
            self.first_count,
            self.plan_id,
            self.period_start_ms,
            self.period_end_ms,
            self.released_at_ms,
            list(self.skipped),
            [a.to_json() for a in self.alerts],
        ]

    @classmethod
    def from_json(cls, raw: Sequence[Any]) -> Release:
        trigger, after, upto, first, plan_id, start, end, at, skipped, alerts = raw
        return cls(
            str(trigger),
            int(after),
            int(upto),
            int(first),
            str(plan_id),
            int(start),
            int(end),
            int(at),
            tuple(str(s) for s in skipped),
            tuple(Alert.from_json(a) for a in alerts),
        )


def _offsets(raw: Mapping[str, Any] | None) -> dict[int, int]:
    return {int(p): int(o) for p, o in (raw or {}).items()}


@dataclass(frozen=True)
class MeterState:
    """One tenant's meter: the value of the `meter_state` table (JSON)."""

    period_start_ms: int | None = None
    count: int = 0  # messages admitted in the period
    last_offset: Mapping[int, int] = field(default_factory=dict)  # partition -> offset
    recent: tuple[Verdict, ...] = ()  # oldest first, at most RECENT_EVENTS
    held: int = 0  # messages in the overage queue (all periods)
    released_seq: int = 0  # queue rows with seq <= this are released
    alerted: tuple[str, ...] = ()  # alert levels sent in the period
    notified: tuple[str, ...] = ()  # conversation keys given the notice in the period
    request_offset: Mapping[int, int] = field(default_factory=dict)  # quota.releases offsets
    last_release: Release | None = None

    def verdict_for(self, event_id: str) -> Verdict | None:
        for verdict in reversed(self.recent):
            if verdict.event_id == event_id:
                return verdict
        return None

    def seen_offset(self, partition: int, offset: int) -> bool:
        last = self.last_offset.get(partition)
        return last is not None and offset <= last

    def seen_request(self, partition: int, offset: int) -> bool:
        last = self.request_offset.get(partition)
        return last is not None and offset <= last

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "period_start": self.period_start_ms,
            "count": self.count,
            "last_offset": {str(p): o for p, o in sorted(self.last_offset.items())},
            "recent": _recent_to_json(self.recent),
        }
        if self.held or self.released_seq:
            out["held"], out["released_seq"] = self.held, self.released_seq
        if self.alerted or self.notified:
            out["alerted"], out["notified"] = list(self.alerted), list(self.notified)
        if self.request_offset:
            out["request_offset"] = {str(p): o for p, o in sorted(self.request_offset.items())}
        if self.last_release is not None:
            out["last_release"] = self.last_release.to_json()
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> MeterState:
        if not raw:
            return cls()
        release = raw.get("last_release")
        return cls(
            period_start_ms=raw.get("period_start"),
            count=int(raw.get("count", 0)),
            last_offset=_offsets(raw.get("last_offset")),
            recent=_recent_from_json(raw.get("recent")),
            held=int(raw.get("held", 0)),
            released_seq=int(raw.get("released_seq", 0)),
            alerted=tuple(raw.get("alerted", ())),
            notified=tuple(raw.get("notified", ())),
            request_offset=_offsets(raw.get("request_offset")),
            last_release=Release.from_json(release) if release else None,
        )


@dataclass(frozen=True)
class InboundRef:
    """Where an inbound message sits: its id, its position, and its conversation."""

    event_id: str
    partition: int
    offset: int
    conversation: str = ""  # <channel>:<conversation_id>, for the once-per-conversation notice


@dataclass(frozen=True)
class Decision:
    kind: Kind
    verdict: Verdict | None  # None only for Kind.DONE


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
