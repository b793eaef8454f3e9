"""`openclaw-saas tenant show TENANT`: lifecycle state, plan, gateway container and health."""

from __future__ import annotations

import contextlib
from typing import Any

import docker
import psycopg
from psycopg.rows import dict_row

from common.settings import Settings

_SQL = """
SELECT t.id::text AS tenant_id, t.agent_id, t.display_name AS name, t.status,
       t.stripe_customer_id, u.email AS owner_email,
       s.plan_id AS plan, p.tenancy_mode, p.memory_mb, p.cpus, p.msg_limit,
       s.current_period_start::text AS period_start, s.current_period_end::text AS period_end,
       s.stripe_subscription_id, s.stripe_status, s.payment_failed_at::text AS payment_failed_at,
       s.grace_until::text AS grace_until, s.delete_at::text AS delete_at,
       m.unit_name AS gateway_unit, m.enabled AS agent_enabled, gu.container_id,
       gu.base_url AS gateway_url, gu.health AS last_health
FROM tenants t
LEFT JOIN users u ON u.id = t.user_id
LEFT JOIN subscriptions s ON s.tenant_id = t.id
LEFT JOIN plans p ON p.id = s.plan_id
LEFT JOIN gateway_unit_members m ON m.tenant_id = t.id
LEFT JOIN gateway_units gu ON gu.name = m.unit_name
WHERE t.id::text = %s OR t.agent_id = %s
"""


def show_tenant(settings: Settings, tenant: str) -> dict[str, Any] | None:
    """The tenant (by id or agent id) with its live container state when the engine answers."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        row = conn.execute(_SQL, (tenant, tenant)).fetchone()
    if row is None:
        return None
    out: dict[str, Any] = dict(row)
    out["cpus"] = float(out["cpus"]) if out.get("cpus") is not None else None
    out["container"] = _container(settings, out.get("gateway_unit"))
    return out


def _container(settings: Settings, name: str | None) -> dict[str, Any] | None:
    if not name:
        return None
    try:
        with contextlib.closing(docker.DockerClient(base_url=settings.docker_host, timeout=5)) as c:
            container = c.containers.get(name)
            state = container.attrs.get("State", {})
            host = container.attrs.get("HostConfig", {})
            return {
                "id": container.short_id,
                "state": state.get("Status"),
                "health": (state.get("Health") or {}).get("Status"),
                "memory_mb": (host.get("Memory") or 0) // (1024 * 1024),
                "cpus": (host.get("NanoCpus") or 0) / 1e9,
            }
    except docker.errors.NotFound:
        return {"state": "absent"}
    except Exception as err:  # engine unreachable: say so, the rest is still useful
        return {"state": "unknown", "error": type(err).__name__}
