"""Tenant administration: create a tenant with its plan, Telegram binding and gateway."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common.secrets import SecretBox, token_hash
from common.settings import Settings

_BOT_TOKEN = re.compile(r"^(\d{3,20}):[A-Za-z0-9_-]{20,100}$")


class TenantError(ValueError):
    """Operator input that cannot become a tenant (message says why)."""


@dataclass(frozen=True)
class NewTenant:
    name: str
    plan: str
    owner_email: str
    telegram_bot_token: str | None
    gateway_url: str
    gateway_token: str
    agent_id: str | None = None
    # The agent to address in the gateway; a shared pool gateway hosts many agents.
    gateway_agent_id: str | None = None


def bot_id_of(token: str) -> str:
    match = _BOT_TOKEN.match(token)
    if not match:
        raise TenantError("telegram bot token must look like <digits>:<35 chars>")
    return match.group(1)


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:48] or "tenant"
    return f"{s}-{secrets.token_hex(3)}"


def create_tenant(
    settings: Settings, new: NewTenant, now: datetime | None = None
) -> dict[str, Any]:
    """Insert user, tenant, subscription, gateway and bindings in one transaction.

    Returns what the operator needs, including the webhook URL and the generated
    webhook secret token (shown once; only its hash is stored).
    """
    box = SecretBox(settings)
    now = now or datetime.now(UTC)
    agent_id = new.agent_id or slug(new.name)
    bot_id = bot_id_of(new.telegram_bot_token) if new.telegram_bot_token else None
    secret_token = secrets.token_urlsafe(32)
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn, conn.transaction():
        plan = conn.execute("SELECT id FROM plans WHERE id = %s", (new.plan,)).fetchone()
        if plan is None:
            raise TenantError(f"unknown plan {new.plan!r}")
        user = conn.execute(
            "INSERT INTO users (email) VALUES (%s) ON CONFLICT (email) DO UPDATE"
            " SET updated_at = NOW() RETURNING id",
            (new.owner_email,),
        ).fetchone()
        assert user is not None
        try:
            tenant = conn.execute(
                "INSERT INTO tenants (user_id, agent_id, display_name) VALUES (%s, %s, %s)"
                " RETURNING id::text AS id",
                (user["id"], agent_id, new.name),
            ).fetchone()
        except psycopg.errors.UniqueViolation as err:
            raise TenantError(f"agent id {agent_id!r} is taken") from err
        assert tenant is not None
        conn.execute(
            "INSERT INTO subscriptions (tenant_id, plan_id, current_period_start,"
            " current_period_end) VALUES (%s, %s, %s, %s)",
            (tenant["id"], new.plan, now, now + timedelta(days=30)),
        )
        conn.execute(
            "INSERT INTO tenant_gateways (tenant_id, base_url, token, agent_id)"
            " VALUES (%s, %s, %s, %s)",
            (
                tenant["id"],
                new.gateway_url.rstrip("/"),
                box.seal(new.gateway_token),
                new.gateway_agent_id or agent_id,
            ),
        )
        if bot_id and new.telegram_bot_token:
            try:
                conn.execute(
                    "INSERT INTO channel_bindings (tenant_id, channel, external_id, secret_hash,"
                    " credentials) VALUES (%s, 'telegram', %s, %s, %s)",
                    (
                        tenant["id"],
                        bot_id,
                        token_hash(secret_token),
                        box.seal(new.telegram_bot_token),
                    ),
                )
            except psycopg.errors.UniqueViolation as err:
                raise TenantError(f"telegram bot {bot_id} is bound to another tenant") from err
    out: dict[str, Any] = {
        "tenant_id": tenant["id"],
        "agent_id": agent_id,
        "name": new.name,
        "plan": new.plan,
        "owner_email": new.owner_email,
        "period_start": now.isoformat(),
        "period_end": (now + timedelta(days=30)).isoformat(),
    }
    if bot_id:
        out["telegram"] = {
            "bot_id": bot_id,
            "webhook_url": f"{settings.public_base_url.rstrip('/')}/webhooks/telegram/{bot_id}",
            "secret_token": secret_token,
        }
    return out


def list_tenants(settings: Settings) -> list[dict[str, Any]]:
    """Tenants with plan, status and bindings; never a secret."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT t.id::text AS tenant_id, t.agent_id, t.display_name AS name, t.status,"
            " s.plan_id AS plan, u.email AS owner_email,"
            " s.current_period_start::text AS period_start,"
            " s.current_period_end::text AS period_end,"
            " COALESCE((SELECT json_agg(json_build_object('channel', b.channel,"
            "   'external_id', b.external_id)) FROM channel_bindings b"
            "   WHERE b.tenant_id = t.id), '[]') AS bindings"
            " FROM tenants t LEFT JOIN subscriptions s ON s.tenant_id = t.id"
            " LEFT JOIN users u ON u.id = t.user_id ORDER BY t.created_at"
        ).fetchall()
    return list(rows)
