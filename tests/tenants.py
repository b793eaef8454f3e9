"""A `common.directory.Tenant` for tests, so each fake directory states only what differs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from common.directory import Tenant
from common.settings import Secret


def a_tenant(tenant_id: str, **changes: Any) -> Tenant:
    """An active Individual tenant (1,000 messages, upgrade to Business, no period yet) with
    a gateway on loopback and no channel binding; `changes` set any other field."""
    base = Tenant(
        tenant_id=tenant_id,
        agent_id=f"agent-{tenant_id[:8]}",
        status="active",
        plan_id="individual",
        msg_limit=1000,
        upgrade_to="business",
        period_start=None,
        period_end=None,
        gateway_url="http://127.0.0.1:18789",
        gateway_token=Secret("gw-token"),
        gateway_agent_id="main",
        telegram=None,
    )
    return replace(base, **changes)
