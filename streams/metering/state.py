"""One tenant's meter state and how the `meter_state` table stores it.

`MeterState` is the value of the table (one JSON value per tenant, written as ONE changelog
record by `streams.metering.handler`); the `Verdict`s it keeps (the recent window, for replay
and duplicate detection), the `Release` it remembers (enough to send a release's outputs
again) and their `Alert`s are stored as compact JSON lists: `to_json`/`from_json` on each,
`Verdict.to_short` for the verdicts of the state's current period, and `state_bytes` /
`state_from_bytes` for the table's bytes. The rules that change a state are
`streams.metering.decide` and `streams.metering.overage`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: How many verdicts a tenant's state remembers for replay and duplicate detection.
RECENT_EVENTS = 64


class Outcome(StrEnum):
    ADMITTED = "admitted"
    HELD = "held"


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


def state_bytes(state: MeterState) -> bytes:
    """A tenant's state as the `meter_state` table stores it: compact JSON."""
    return json.dumps(state.to_json(), separators=(",", ":")).encode()


def state_from_bytes(raw: Any) -> MeterState:
    """The state from a `meter_state` value: JSON bytes (or a decoded value, or nothing)."""
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = json.loads(bytes(raw))
    return MeterState.from_json(raw)
