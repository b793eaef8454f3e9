"""Operator views of quotas: `usage show` and `overage release`.

`usage_show` reads PostgreSQL only: the subscription and plan (limit, period), `usage_logs`
for the current period (kept from usage.records, so it equals what billing sums, a moment
behind the meter), the overage queue (`held_messages` not yet released) and the alerts of
the period. `request_release` puts a request on quota.releases; the metering worker that
owns the tenant re-meters its held messages against the current allowance (nothing happens
if there is no room: raise the plan first).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common.kafka import EventProducer
from common.settings import Settings
from common.timeconv import now_ms
from common.topics import Topic


class UsageError(ValueError):
    """The tenant does not exist or has no subscription."""


_TENANT = """
SELECT t.id::text AS tenant_id, t.agent_id, s.plan_id, p.msg_limit,
       s.current_period_start AS period_start, s.current_period_end AS period_end
FROM tenants t
LEFT JOIN subscriptions s ON s.tenant_id = t.id
LEFT JOIN plans p ON p.id = s.plan_id
WHERE t.id::text = %(tenant)s OR t.agent_id = %(tenant)s
"""
_USED = """
SELECT COALESCE(SUM(message_count), 0) AS used, COALESCE(SUM(token_count), 0) AS tokens
FROM usage_logs WHERE tenant_id = %s AND period = (%s AT TIME ZONE 'UTC')::date
"""
_HELD = """
SELECT count(*) AS held, min(held_at) AS oldest FROM held_messages
WHERE tenant_id = %s AND released_at IS NULL
"""
_ALERTS = """
SELECT level, used, msg_limit AS limit, created_at, emailed_to, emailed_at
FROM quota_alerts
WHERE tenant_id = %s AND period_start = date_trunc('milliseconds', %s::timestamptz)
ORDER BY created_at
"""


def find_tenant(conn: psycopg.Connection[dict[str, Any]], tenant: str) -> dict[str, Any]:
    row = conn.execute(_TENANT, {"tenant": tenant}).fetchone()
    if row is None:
        raise UsageError(f"no tenant {tenant!r}")
    if row["plan_id"] is None:
        raise UsageError(f"tenant {tenant!r} has no subscription")
    return row


def usage_show(settings: Settings, tenant: str) -> dict[str, Any]:
    """The tenant's current period: used, limit, held, alerts."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        t = find_tenant(conn, tenant)
        used = conn.execute(_USED, (t["tenant_id"], t["period_start"])).fetchone() or {}
        held = conn.execute(_HELD, (t["tenant_id"],)).fetchone() or {}
        alerts = conn.execute(_ALERTS, (t["tenant_id"], t["period_start"])).fetchall()
    limit = t["msg_limit"]
    return {
        "tenant_id": t["tenant_id"],
        "agent_id": t["agent_id"],
        "plan": t["plan_id"],
        "period_start": t["period_start"].isoformat(),
        "period_end": t["period_end"].isoformat(),
        "used": int(used.get("used", 0)),
        "limit": limit,
        "remaining": None if limit is None else max(0, limit - int(used.get("used", 0))),
        "held": int(held.get("held", 0)),
        "oldest_held_at": held["oldest"].isoformat() if held.get("oldest") else None,
        "tokens": int(used.get("tokens", 0)),
        "alerts": [
            {
                **a,
                "created_at": a["created_at"].isoformat(),
                "emailed_at": a["emailed_at"].isoformat() if a["emailed_at"] else None,
            }
            for a in alerts
        ],
    }


async def _send_request(settings: Settings, tenant_id: str) -> str:
    request_id = uuid.uuid4().hex
    producer = EventProducer(settings)
    try:
        await producer.send(
            Topic.RELEASES,
            tenant_id,
            {
                "request_id": request_id,
                "tenant_id": tenant_id,
                "reason": "operator",
                "requested_at": now_ms(),
            },
            timeout=30,
        )
    finally:
        await asyncio.get_running_loop().run_in_executor(None, producer.close)
    return request_id


def request_release(settings: Settings, tenant: str) -> dict[str, Any]:
    """Ask metering to release the tenant's held messages (as far as its allowance allows)."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        t = find_tenant(conn, tenant)
        held = conn.execute(_HELD, (t["tenant_id"],)).fetchone() or {}
    request_id = asyncio.run(_send_request(settings, t["tenant_id"]))
    return {"tenant_id": t["tenant_id"], "request_id": request_id, "held": int(held["held"])}
