"""Exactness under crashes: the stream worker is killed with SIGKILL at random points while
600 messages of three tenants flow, then the whole inbound topic is replayed.

After each restart Faust rebuilds the meter from its changelog and the broker redelivers
everything after the last committed offset. In the end: the distinct usage ids on
usage.records, the distinct admitted messages and `usage_logs` in PostgreSQL all equal the
expected admissions, no tenant is admitted past its limit, every message is admitted or in
the overage queue, and nothing changes when the inbound topic is consumed again from 0.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from common.settings import Settings
from common.topics import Topic
from control.processes import ServiceGroup
from devstack.probes import eventually, group_lag, probe_consumer, read_topic, sql, watermarks
from devstack.smtp_relay import RelaySink
from tests.integration.quota_rig import ensure_plan, inbound, new_tenant, produce

pytestmark = pytest.mark.integration
PER_TENANT = 200
LIMIT = 160


def _high(settings: Settings, topic: Topic) -> int:
    consumer = probe_consumer(settings)
    try:
        name = settings.topic(topic.value)
        return sum(
            watermarks(consumer, TopicPartition(name, p))[1]
            for p in range(settings.topic_partitions)
        )
    finally:
        consumer.close()


def _reset_inbound_offsets(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    name = settings.topic(Topic.INBOUND.value)
    parts = [TopicPartition(name, p, 0) for p in range(settings.topic_partitions)]
    request = ConsumerGroupTopicPartitions(settings.group("streams"), parts)
    for fut in admin.alter_consumer_group_offsets([request]).values():
        fut.result(timeout=30)


async def test_sigkill_and_replay_count_every_message_once(
    settings: Settings, tmp_path: Path
) -> None:
    sink = RelaySink()
    port = await asyncio.to_thread(sink.start)
    settings = Settings.from_env({}, **{**vars(settings), "smtp_relay_port": port})
    ensure_plan(settings, f"test-{LIMIT}", LIMIT)
    plans = {"a": f"test-{LIMIT}", "b": "business", "c": f"test-{LIMIT}"}
    tenants = {
        k: new_tenant(settings, f"crash-{k}", plan)["tenant_id"] for k, plan in plans.items()
    }
    limits = {tenants[k]: (LIMIT if plan != "business" else 10_000) for k, plan in plans.items()}
    run = settings.topic_prefix  # event ids are unique, like the channels' own ids
    records = [
        inbound(tid, f"{run}{k}{i}", str(i % 7))
        for i in range(PER_TENANT)
        for k, tid in tenants.items()
    ]
    expected = {tid: min(PER_TENANT, limit) for tid, limit in limits.items()}
    rng = random.Random(time.time_ns())
    group = ServiceGroup(settings, ["streams"], tmp_path / "logs")
    group_id = settings.group("streams")

    async def wait_done() -> None:
        async def done() -> bool:
            group.check_alive()
            return (
                group_lag(settings, group_id, Topic.INBOUND) == 0
                and group_lag(settings, group_id, Topic.USAGE) == 0
            )

        await eventually(done, timeout=240, what="the worker to catch up")

    try:
        await asyncio.to_thread(group.start)
        third = len(records) // 3
        kills = []
        for n in range(3):
            await produce(settings, records[n * third : (n + 1) * third])
            if n == 2:
                break
            base = _high(settings, Topic.USAGE)
            target = base + rng.randint(20, third // 2)

            async def progressed(target: int = target) -> bool:
                group.check_alive()
                return _high(settings, Topic.USAGE) >= target

            await eventually(progressed, timeout=120, what="metering progress")
            proc = group.procs["streams"]
            proc.kill()  # SIGKILL: no flush, no commit, no LeaveGroup
            await asyncio.to_thread(proc.wait)
            kills.append(_high(settings, Topic.USAGE))
            await asyncio.to_thread(group.start_one, "streams")
        await wait_done()
        first = _totals(settings, limits, records)
        assert first == {
            "usage_ids": expected,
            "admitted": expected,
            "usage_logs": expected,
            "held": {tid: PER_TENANT - n for tid, n in expected.items() if n < PER_TENANT},
            "lost": [],
            "admitted_and_held": [],
            "over_limit": [],
            "alerts": {
                tenants["a"]: {"soft": 1, "hard": 1},
                tenants["c"]: {"soft": 1, "hard": 1},
            },
        }, (kills, _problems(tmp_path / "logs" / "streams.log"))

        alert_ids = {x["alert_id"] for x in read_topic(settings, Topic.ALERTS)}
        mine = {a for a in alert_ids if a.split(":")[0] in limits}

        async def mailed() -> bool:
            return {r.header("X-OpenClaw-Alert-Id") for r in sink.received} >= mine

        await eventually(mailed, timeout=60, what="an email per alert")

        # replay the whole inbound topic: nothing changes
        await asyncio.to_thread(group.stop)
        await asyncio.to_thread(_reset_inbound_offsets, settings)
        await asyncio.to_thread(group.start)
        await eventually(
            lambda: _lag_is(settings, group_id, 0), timeout=240, what="the replay to finish"
        )
        await wait_done()
        assert _totals(settings, limits, records) == first
    finally:
        codes = await asyncio.to_thread(group.stop)
        await asyncio.to_thread(sink.stop)
    assert all(code in (0, -15) for code in codes.values()), codes


def _problems(log: Path) -> list[str]:
    """The worker's own warnings and errors (for a failure message)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    mine = ("streams.", "common.")
    return [
        line
        for line in lines
        if " WARNING " in line or " ERROR " in line
        if any(f" {m}" in line for m in mine)
    ][-40:]


async def _lag_is(settings: Settings, group_id: str, lag: int) -> bool:
    return group_lag(settings, group_id, Topic.INBOUND) == lag


def _totals(
    settings: Settings, limits: dict[str, int], records: list[dict[str, object]]
) -> dict[str, object]:
    """What the topics and PostgreSQL say, per tenant id."""
    ids = set(limits)
    usage_ids: dict[str, set[str]] = defaultdict(set)
    for u in read_topic(settings, Topic.USAGE):
        if u["tenant_id"] in ids and u["kind"] == "message":
            usage_ids[u["tenant_id"]].add(u["usage_id"])
    admitted: dict[str, dict[str, int]] = defaultdict(dict)
    over: list[str] = []
    for a in read_topic(settings, Topic.ADMITTED):
        m = a["message"]
        if m["tenant_id"] not in ids:
            continue
        seen = admitted[m["tenant_id"]].setdefault(m["event_id"], a["count_in_period"])
        if seen != a["count_in_period"] or seen > limits[m["tenant_id"]]:
            over.append(m["event_id"])
    logs = sql(
        settings,
        "SELECT tenant_id::text AS t, sum(message_count) AS n FROM usage_logs"
        " WHERE tenant_id = ANY(%s::uuid[]) GROUP BY tenant_id",
        list(ids),
    )
    held = sql(
        settings,
        "SELECT tenant_id::text AS t, event_id FROM held_messages"
        " WHERE tenant_id = ANY(%s::uuid[])",
        list(ids),
    )
    held_ids = {r["event_id"] for r in held}
    everything = {str(r["event_id"]) for r in records}
    in_admitted = {e for per in admitted.values() for e in per}
    alerts: dict[str, Counter[str]] = defaultdict(Counter)
    for x in {x["alert_id"]: x for x in read_topic(settings, Topic.ALERTS)}.values():
        if x["tenant_id"] in ids:
            alerts[x["tenant_id"]][x["level"]] += 1
    return {
        "usage_ids": {t: len(v) for t, v in usage_ids.items()},
        "admitted": {t: len(v) for t, v in admitted.items()},
        "usage_logs": {r["t"]: int(r["n"]) for r in logs},
        "held": dict(Counter(r["t"] for r in held)),
        "lost": sorted(everything - in_admitted - held_ids),
        "admitted_and_held": sorted(in_admitted & held_ids),
        "over_limit": over,
        "alerts": {t: dict(c) for t, c in alerts.items()},
    }
