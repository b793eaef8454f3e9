"""Quotas on the real broker and database, with the stream worker as a child process.

Plan data, not a test-only code path: a plan 'test-5' (5 messages, upgrades to Business).
Tenant A sends 8 messages: exactly 5 are admitted, one soft (80%) and one hard alert go out
(topic and email to the owner, the hard one with the upgrade prompt), 3 are held and their
two conversations get one polite notice each. An upgrade in PostgreSQL releases the 3 in
order. Tenant B holds 2, and a new period releases them against the fresh allowance; a new
message then counts from where the period's count stands.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from common.topics import Topic
from control.processes import ServiceGroup
from control.usage import request_release, usage_show
from devstack.probes import eventually, read_topic, sql
from devstack.smtp_relay import RelaySink
from tests.integration.quota_rig import ensure_plan, inbound, new_tenant, produce

pytestmark = pytest.mark.integration
PLAN = "test-5"


def admitted_of(settings: Settings, tenant_id: str) -> list[tuple[str, int]]:
    return [
        (a["message"]["event_id"], a["count_in_period"])
        for a in read_topic(settings, Topic.ADMITTED)
        if a["message"]["tenant_id"] == tenant_id
    ]


def held_rows(settings: Settings, tenant_id: str) -> list[dict[str, Any]]:
    return sql(
        settings,
        "SELECT event_id, released_at FROM held_messages WHERE tenant_id = %s ORDER BY seq",
        tenant_id,
    )


async def test_limit_alerts_hold_upgrade_and_new_period(settings: Settings, tmp_path: Path) -> None:
    sink = RelaySink()
    port = await asyncio.to_thread(sink.start)
    settings = Settings.from_env(
        {}, **{**vars(settings), "smtp_relay_host": "127.0.0.1", "smtp_relay_port": port}
    )
    ensure_plan(settings, PLAN, 5)
    a = new_tenant(settings, "quota-a", PLAN)
    b = new_tenant(settings, "quota-b", PLAN)
    ta, tb = a["tenant_id"], b["tenant_id"]
    group = ServiceGroup(settings, ["streams"], tmp_path / "logs")
    try:
        await asyncio.to_thread(group.start)
        await produce(
            settings,
            [inbound(ta, f"a{i}", "77" if i == 6 else "4242") for i in range(8)]
            + [inbound(tb, f"b{i}") for i in range(7)],
        )

        async def settled() -> bool:
            group.check_alive()
            emails = len(sink.to(a["owner_email"]))
            held = len(held_rows(settings, ta)) + len(held_rows(settings, tb))
            return held == 5 and emails == 2 and len(admitted_of(settings, tb)) == 5

        await eventually(settled, timeout=120, what="5 held messages and 2 emails")

        # -- exactly the limit, one soft alert, one hard alert, the rest held -----------------
        assert admitted_of(settings, ta) == [(f"a{i}", i + 1) for i in range(5)]
        alerts = [x for x in read_topic(settings, Topic.ALERTS) if x["tenant_id"] == ta]
        assert [(x["level"], x["used"], x["limit"]) for x in alerts] == [
            ("soft", 4, 5),
            ("hard", 5, 5),
        ]
        assert "Upgrade to Business for 10,000 messages a month." in alerts[1]["message"]
        assert [r["event_id"] for r in held_rows(settings, ta)] == ["a5", "a6", "a7"]
        notices = [
            (n["in_reply_to"], n["conversation_id"])
            for n in read_topic(settings, Topic.OUTBOUND)
            if n["tenant_id"] == ta
        ]
        assert notices == [("a5", "4242"), ("a6", "77")]
        mails = {
            str(m["X-OpenClaw-Alert-Id"]).rsplit(":", 1)[1]: m for m in sink.to(a["owner_email"])
        }
        assert "hit your message limit" in str(mails["hard"]["Subject"])
        assert "Upgrade to Business" in mails["hard"].get_content()
        assert "80%" in str(mails["soft"]["Subject"])
        usage = [u for u in read_topic(settings, Topic.USAGE) if u["tenant_id"] == ta]
        assert sorted(u["usage_id"] for u in usage) == [f"msg:a{i}" for i in range(5)]
        shown = usage_show(settings, a["agent_id"])
        assert (shown["plan"], shown["limit"], shown["held"]) == (PLAN, 5, 3)
        assert [x["level"] for x in shown["alerts"]] == ["soft", "hard"]
        assert all(x["emailed_to"] == a["owner_email"] for x in shown["alerts"])

        # -- the upgrade releases A's held messages in order ----------------------------
        sql(settings, "UPDATE subscriptions SET plan_id = 'business' WHERE tenant_id = %s", ta)

        async def released() -> list[tuple[str, int]] | None:
            group.check_alive()
            got = admitted_of(settings, ta)
            return got if len(got) >= 8 else None

        got = await eventually(released, timeout=60, what="A's held messages released")
        assert got == [(f"a{i}", i + 1) for i in range(8)]
        assert all(r["released_at"] is not None for r in held_rows(settings, ta))

        async def a_used() -> dict[str, Any] | None:
            shown = usage_show(settings, ta)
            return shown if shown["used"] == 8 else None

        shown = await eventually(a_used, timeout=30, what="usage_logs of A at 8")
        assert (shown["plan"], shown["limit"], shown["held"]) == ("business", 10_000, 0)

        # -- a new period releases B's held messages and restarts the count --------------
        assert [r["event_id"] for r in held_rows(settings, tb)] == ["b5", "b6"]
        start = datetime.now(UTC) + timedelta(days=30)
        sql(
            settings,
            "UPDATE subscriptions SET current_period_start = %s, current_period_end = %s"
            " WHERE tenant_id = %s",
            start,
            start + timedelta(days=30),
            tb,
        )

        async def rolled() -> list[tuple[str, int]] | None:
            group.check_alive()
            got = admitted_of(settings, tb)
            return got if len(got) >= 7 else None

        got = await eventually(rolled, timeout=60, what="B's held messages released")
        assert got == [(f"b{i}", i + 1) for i in range(5)] + [("b5", 1), ("b6", 2)]
        await produce(settings, [inbound(tb, "b7")])
        got = await eventually(
            lambda: _at_least(settings, tb, 8), timeout=60, what="B's next message"
        )
        assert got[-1] == ("b7", 3)
        # an operator release with nothing left to release changes nothing
        out = await asyncio.to_thread(request_release, settings, tb)
        assert out["held"] == 0
        b_alerts = Counter(
            x["level"] for x in read_topic(settings, Topic.ALERTS) if x["tenant_id"] == tb
        )
        assert b_alerts == {"soft": 1, "hard": 1}  # the first period's; the new one is at 3/5
    finally:
        codes = await asyncio.to_thread(group.stop)
        await asyncio.to_thread(sink.stop)
    assert all(code in (0, -15) for code in codes.values()), codes


async def _at_least(settings: Settings, tenant_id: str, n: int) -> list[tuple[str, int]] | None:
    got = admitted_of(settings, tenant_id)
    return got if len(got) >= n else None
