"""The four invariants of issue 7, checked from what the run left behind.

Evidence, read once the pipeline drained: the load's ledger (acks and refusals with their
times), the end users' stand-ins (replies), messages.inbound / messages.admitted /
messages.held and every dead-letter topic (read back in full), and PostgreSQL (`messages`
user rows, `usage_records`, `usage_logs`). Every message is traced by its `chaos-<n>` token.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from chaos.faults import Happened
from chaos.load import Offer
from chaos.plan import Plan, Windows
from common.settings import Settings
from common.topics import Topic
from control.dlq import DLQ_TOPICS, read_dead_letters
from devstack.probes import read_topic, sql

TOKEN = re.compile(r"chaos-(\d+)")
TOKEN_BYTES = re.compile(rb"chaos-(\d+)")


def seqs_in(text: str) -> set[int]:
    return {int(n) for n in TOKEN.findall(text)}


@dataclass
class Evidence:
    inbound: dict[int, set[str]] = field(default_factory=dict)  # seq -> event ids
    inbound_records: int = 0
    admitted: dict[str, str] = field(default_factory=dict)  # event id -> tenant id
    held: set[str] = field(default_factory=set)
    dead: dict[int, list[str]] = field(default_factory=dict)  # seq -> reasons
    dead_total: int = 0
    user_rows: Counter[str] = field(default_factory=Counter)  # event id -> rows
    usage_rows: dict[str, int] = field(default_factory=dict)  # tenant -> msg usage records
    usage_messages: dict[str, int] = field(default_factory=dict)  # tenant -> Σ messages
    usage_tokens: dict[str, int] = field(default_factory=dict)  # tenant -> Σ token records
    logs_messages: dict[str, int] = field(default_factory=dict)  # tenant -> usage_logs
    logs_tokens: dict[str, int] = field(default_factory=dict)


def dead_letters(settings: Settings) -> tuple[dict[int, list[str]], int]:
    """seq -> reasons, over every dead-letter topic; and how many entries there are."""
    found: dict[int, list[str]] = defaultdict(list)
    total = 0
    for topic in DLQ_TOPICS:
        for entry in read_dead_letters(settings, topic):
            total += 1
            for n in {int(m) for m in TOKEN_BYTES.findall(entry.record["payload"] or b"")}:
                found[n].append(f"{entry.record['stage']}: {entry.record['reason']}")
    return dict(found), total


def gather(settings: Settings, tenant_ids: list[str]) -> Evidence:
    ev = Evidence()
    inbound = read_topic(settings, Topic.INBOUND)
    ev.inbound_records = len(inbound)
    for r in inbound:
        for n in seqs_in(r["text"]):
            ev.inbound.setdefault(n, set()).add(r["event_id"])
    for r in read_topic(settings, Topic.ADMITTED):
        ev.admitted[r["message"]["event_id"]] = r["message"]["tenant_id"]
    ev.held = {r["event_id"] for r in read_topic(settings, Topic.HELD)}
    ev.dead, ev.dead_total = dead_letters(settings)
    rows = sql(
        settings,
        "SELECT event_id, count(*) AS n FROM messages"
        " WHERE role = 'user' AND tenant_id = ANY(%s::uuid[]) GROUP BY event_id",
        tenant_ids,
    )
    ev.user_rows = Counter({r["event_id"]: int(r["n"]) for r in rows})
    for r in sql(
        settings,
        "SELECT tenant_id::text AS t, count(*) FILTER (WHERE kind = 'message') AS rows,"
        " coalesce(sum(messages), 0) AS messages,"
        " coalesce(sum(input_tokens + output_tokens), 0) AS tokens"
        " FROM usage_records WHERE tenant_id = ANY(%s::uuid[]) GROUP BY tenant_id",
        tenant_ids,
    ):
        ev.usage_rows[r["t"]] = int(r["rows"])
        ev.usage_messages[r["t"]] = int(r["messages"])
        ev.usage_tokens[r["t"]] = int(r["tokens"])
    for r in sql(
        settings,
        "SELECT tenant_id::text AS t, sum(message_count) AS m, sum(token_count) AS k"
        " FROM usage_logs WHERE tenant_id = ANY(%s::uuid[]) GROUP BY tenant_id",
        tenant_ids,
    ):
        ev.logs_messages[r["t"]] = int(r["m"])
        ev.logs_tokens[r["t"]] = int(r["k"])
    return ev


@dataclass
class Check:
    name: str
    ok: bool
    counts: dict[str, Any]
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def replies_by_seq(replies: list[tuple[str, str, float]]) -> dict[int, list[float]]:
    """seq -> arrival times of the replies an end user got for it."""
    out: dict[int, list[float]] = defaultdict(list)
    for _channel, text, at in replies:
        for n in seqs_in(text):
            out[n].append(at)
    return dict(out)


def delivered_once(
    offers: list[Offer], ev: Evidence, replies: dict[int, list[float]]
) -> tuple[Check, list[dict[str, Any]]]:
    """(1) one session row and one reply (or a dead letter with a reason) per ack."""
    c: Counter[str] = Counter()
    bad: list[dict[str, Any]] = []
    for o in offers:
        ack = o.acked
        if ack is None:
            continue
        c["acknowledged"] += 1
        ids = ev.inbound.get(o.seq, set())
        rows = sum(ev.user_rows[i] for i in ids)
        got = len(replies.get(o.seq, []))
        reasons = [r for r in ev.dead.get(o.seq, []) if r.split(": ", 1)[-1].strip()]
        c["session_row_once" if rows == 1 else "session_rows_wrong"] += 1
        if got == 1:
            c["replied_once"] += 1
        elif got > 1:
            c["duplicate_replies"] += 1
        elif reasons:
            c["dead_lettered"] += 1
        else:
            c["lost"] += 1
        if got == 1 and reasons:
            c["replied_and_dead_lettered"] += 1
        if rows != 1 or got > 1 or (got == 0 and not reasons):
            bad.append({"seq": o.seq, "channel": o.channel, "tenant": o.tenant.gateway,
                        "event_ids": sorted(ids), "session_rows": rows, "replies": got,
                        "reply_at": replies.get(o.seq, []), "acked_at": ack.ended,
                        "dead_letters": ev.dead.get(o.seq, [])})  # fmt: skip
    counts = {k: c[k] for k in ("acknowledged", "session_row_once", "session_rows_wrong",
              "replied_once", "dead_lettered", "lost", "duplicate_replies",
              "replied_and_dead_lettered")}  # fmt: skip
    ok = c["acknowledged"] > 0 and not bad
    return Check("1 acked -> one session row, one reply or a dead letter", ok, counts), bad


def billed_once(ev: Evidence, tenant_ids: list[str]) -> Check:
    """(2) usage records and usage_logs equal the admitted messages, per tenant."""
    admitted: Counter[str] = Counter(ev.admitted.values())
    decided = set(ev.admitted) | ev.held
    events = {e for ids in ev.inbound.values() for e in ids}
    double = missing = rows_off = tokens_off = 0
    for t in tenant_ids:
        logged = ev.logs_messages.get(t, 0)
        double += max(0, logged - admitted[t])
        missing += max(0, admitted[t] - logged)
        rows_off += abs(ev.usage_rows.get(t, 0) - admitted[t])
        rows_off += abs(ev.usage_messages.get(t, 0) - admitted[t])
        tokens_off += abs(ev.logs_tokens.get(t, 0) - ev.usage_tokens.get(t, 0))
    counts = {
        "admitted": sum(admitted.values()),
        "held": len(ev.held),
        "usage_records_msg": sum(ev.usage_rows.values()),
        "usage_logs_messages": sum(ev.logs_messages.values()),
        "double_billed": double,
        "unbilled": missing,
        "usage_records_off": rows_off,
        "token_totals_off": tokens_off,
        "inbound_events_undecided": len(events - decided),
    }
    ok = double == missing == rows_off == tokens_off == 0 and not events - decided
    return Check("2 usage == admitted (0 double-billed)", ok, counts)


def refused_while_down(
    offers: list[Offer], ev: Evidence, outages: list[tuple[float, float]], expect_outage: bool
) -> Check:
    """(3) no ack while the broker was down; every ack has its event; retries accepted once."""
    c: Counter[str] = Counter()
    for o in offers:
        ack = o.acked
        if ack is not None:
            if not ev.inbound.get(o.seq):
                c["acked_without_event"] += 1
            if len(ev.inbound.get(o.seq, ())) > 1:
                c["several_event_ids"] += 1
            if any(a.outcome != "ack" for a in o.attempts):
                c["refused_then_acked"] += 1
        else:
            c["never_acked"] += 1
        for a in o.attempts:
            c[f"answers_{a.outcome}"] += 1
            asked = any(down <= a.started <= up for down, up in outages)
            answered = any(down <= a.ended <= up for down, up in outages)
            if a.outcome != "ack" and asked:
                c[f"outage_{a.outcome}"] += 1  # refused, asked while the broker was down
            elif a.outcome == "ack" and asked and answered:
                c["acked_during_outage"] += 1  # asked and answered while it was down
            elif a.outcome == "ack" and answered:
                c["acked_in_outage_asked_before"] += 1  # the broker had it before it stopped
    counts: dict[str, Any] = {
        "outage_s": round(sum(up - down for down, up in outages), 1),
        **{k: c[k] for k in sorted(c)},
    }
    counts.setdefault("acked_during_outage", 0)
    counts.setdefault("acked_without_event", 0)
    ok = (
        c["acked_during_outage"] == 0
        and c["acked_without_event"] == 0
        and c["several_event_ids"] == 0
        and c["never_acked"] == 0
    )
    note = ""
    if expect_outage and not (c["outage_503"] and c["outage_451"]):
        ok, note = False, "the broker outage saw no 503 or no 451: nothing was proven"
    return Check("3 broker down -> 503/451, nothing acknowledged", ok, counts, note)


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def latency_under_hang(
    offers: list[Offer],
    replies: dict[int, list[float]],
    windows: Windows,
    load_started: float,
    unhealthy: set[str],
    plan: Plan,
    faults: list[Happened],
) -> Check:
    """(4) healthy tenants' p99 (ack -> reply at the end user) barely moves during a hang."""
    base: list[float] = []
    hang: list[float] = []
    for o in offers:
        ack = o.acked
        if ack is None or o.tenant.gateway in unhealthy or o.seq not in replies:
            continue
        latency = min(replies[o.seq]) - ack.ended
        at = ack.ended - load_started
        if windows.baseline[0] <= at < windows.baseline[1]:
            base.append(latency)
        elif windows.hang[0] <= at < windows.hang[1]:
            hang.append(latency)
    p_base, p_hang = p99(base), p99(hang)
    ratio = None if not p_base or p_hang is None else p_hang / p_base
    counts = {
        "baseline_samples": len(base),
        "hang_samples": len(hang),
        "p50_baseline_ms": _ms(_median(base)),
        "p50_hang_ms": _ms(_median(hang)),
        "p99_baseline_ms": None if p_base is None else round(p_base * 1000, 1),
        "p99_hang_ms": None if p_hang is None else round(p_hang * 1000, 1),
        "ratio": None if ratio is None else round(ratio, 3),
        "limit": 1 + plan.p99_tolerance,
    }
    name = f"4 healthy p99 within {plan.p99_tolerance:.0%} while a gateway hangs"
    if not any(h.fault.kind == "hang" for h in faults):
        return Check(name, True, counts, "no hang in this plan: not judged")
    if min(len(base), len(hang)) < plan.p99_min_samples:
        return Check(name, True, counts, f"fewer than {plan.p99_min_samples} samples: not judged")
    assert ratio is not None
    return Check(name, ratio <= 1 + plan.p99_tolerance, counts)


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def table(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        verdict = "PASS" if check.ok else "FAIL"
        lines.append(f"[{verdict}] {check.name}" + (f"  ({check.note})" if check.note else ""))
        lines += [f"         {k:<28} {v}" for k, v in check.counts.items()]
    return "\n".join(lines)
