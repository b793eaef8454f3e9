"""PostgreSQL side of the lifecycle: facts, dedup by event id, and the tenant's rows.

`apply` runs one transaction per billing fact: record the event id (a repeat changes
nothing), fold the fact into the tenant's facts, decide the status at the clock's `now`,
and write users / tenants / subscriptions so that every directory (ingress, metering, the
bridge) sees the new plan and status at once (their triggers NOTIFY). `recheck` does the
same for the clock alone (grace ends, deletion is due).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from agents_bridge.provision.gateway_config import PlanLimits
from agents_bridge.provision.lifecycle import (
    Decision,
    Fact,
    Facts,
    Policy,
    Status,
    advance,
    merge,
    to_datetime,
)
from agents_bridge.provision.provisioner import TenantSpec
from common.errors import InvalidEvent
from common.secrets import SecretBox
from common.settings import Settings

log = logging.getLogger(__name__)
Conn = psycopg.Connection[dict[str, Any]]
_BOT_TOKEN = re.compile(r"^(\d{3,20}):[A-Za-z0-9_-]{20,100}$")
_LOAD = (
    "SELECT b.facts, b.status, s.plan_id FROM billing_states b"
    " LEFT JOIN subscriptions s ON s.tenant_id = b.tenant_id WHERE b.tenant_id = %s"
)
_LOAD_LOCKED = _LOAD + " FOR UPDATE OF b"


@dataclass(frozen=True)
class Outcome:
    """What one apply/recheck changed; `spec` is what the provisioner should converge to."""

    tenant_id: str
    before: Status | None
    decision: Decision
    plan_before: str | None
    spec: TenantSpec | None
    duplicate: bool = False

    @property
    def plan_changed(self) -> bool:
        return self.spec is not None and self.plan_before not in (None, self.spec.plan_id)


def agent_id_for(tenant_id: str) -> str:
    return "t-" + tenant_id.replace("-", "")[:16]


class BillingStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._box = SecretBox(settings)
        self.policy = Policy(
            grace=timedelta(days=settings.billing_grace_days),
            delete_after=timedelta(days=settings.billing_delete_days),
        )

    def _connect(self) -> Conn:
        return psycopg.connect(self._settings.database_url, row_factory=dict_row)

    def apply(self, tenant_id: str, fact: Fact, now: datetime) -> Outcome:
        with self._connect() as conn, conn.transaction():
            fresh = conn.execute(
                "INSERT INTO processed_stripe_events (event_id, event_type, tenant_id, occurred_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                (fact.event_id, fact.billing_event, tenant_id, to_datetime(fact.occurred_ms)),
            ).fetchone()
            facts, before, plan_before = self._load(conn, tenant_id)
            if fresh is None:  # seen before: the facts stay, the caller re-converges
                outcome = self._settle(conn, tenant_id, facts, before, plan_before, now)
                return replace(outcome, duplicate=True)
            merged = merge(facts, fact)
            if merged.checkout_ms is not None and self._plan(conn, merged) is None:
                raise InvalidEvent(f"unknown_plan: {merged.plan_id or merged.price_id}")
            outcome = self._settle(conn, tenant_id, merged, before, plan_before, now)
            if fact.sealed_credentials and outcome.decision.status not in ("pending", "deleted"):
                self._bind_channels(conn, tenant_id, fact.sealed_credentials)
            return outcome

    def recheck(self, tenant_id: str, now: datetime) -> Outcome:
        with self._connect() as conn, conn.transaction():
            facts, before, plan_before = self._load(conn, tenant_id)
            return self._settle(conn, tenant_id, facts, before, plan_before, now)

    def due(self, now: datetime) -> list[str]:
        """Tenants whose status the clock may have changed by `now`."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT tenant_id::text AS id FROM billing_states WHERE next_check_at <= %s",
                (now,),
            ).fetchall()
        return [str(r["id"]) for r in rows]

    def spec(self, tenant_id: str, now: datetime) -> TenantSpec | None:
        with self._connect() as conn:
            facts, status, _ = self._load(conn, tenant_id, lock=False)
            return self._spec(conn, tenant_id, facts, status or "pending")

    # -- internals ---------------------------------------------------------------------

    def _load(
        self, conn: Conn, tenant_id: str, *, lock: bool = True
    ) -> tuple[Facts, Status | None, str | None]:
        row = conn.execute(_LOAD_LOCKED if lock else _LOAD, (tenant_id,)).fetchone()
        if row is None:
            return Facts(), None, None
        return Facts.from_json(row["facts"]), row["status"], row["plan_id"]

    def _settle(
        self,
        conn: Conn,
        tenant_id: str,
        facts: Facts,
        before: Status | None,
        plan_before: str | None,
        now: datetime,
    ) -> Outcome:
        facts, decision = advance(facts, now, self.policy)
        if decision.status != "pending":
            self._write_tenant(conn, tenant_id, facts, decision)
        conn.execute(
            "INSERT INTO billing_states (tenant_id, stripe_customer_id, facts, status,"
            " next_check_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id) DO UPDATE SET"
            " facts = EXCLUDED.facts, status = EXCLUDED.status,"
            " next_check_at = EXCLUDED.next_check_at, updated_at = NOW()",
            (
                tenant_id,
                facts.customer_id,
                Jsonb(facts.to_json()),
                decision.status,
                to_datetime(decision.next_check_ms),
            ),
        )
        spec = self._spec(conn, tenant_id, facts, decision.status)
        return Outcome(tenant_id, before, decision, plan_before, spec)

    def _bind_channels(self, conn: Conn, tenant_id: str, sealed: bytes) -> None:
        """Bind the Telegram bot bought with the checkout; its webhook is set once serving."""
        try:
            credentials = json.loads(self._box.open(sealed).value)
        except (ValueError, InvalidTag) as err:
            log.warning("tenant %s: channel credentials cannot be opened (%s)", tenant_id, err)
            return
        token = str(credentials.get("telegram_bot_token") or "")
        match = _BOT_TOKEN.match(token)
        if match is None:
            log.warning("tenant %s: the checkout's telegram bot token is malformed", tenant_id)
            return
        bound = conn.execute(
            "INSERT INTO channel_bindings (tenant_id, channel, external_id, credentials, settings)"
            " VALUES (%s, 'telegram', %s, %s, %s) ON CONFLICT (channel, external_id) DO NOTHING"
            " RETURNING id",
            (tenant_id, match.group(1), self._box.seal(token), Jsonb({"webhook": "pending"})),
        ).fetchone()
        if bound is None:
            log.warning("tenant %s: telegram bot %s is already bound", tenant_id, match.group(1))

    def _plan(self, conn: Conn, facts: Facts) -> dict[str, Any] | None:
        """The plan a price id names (the newest fact's), else the plan id given."""
        row: dict[str, Any] | None = None
        if facts.price_id:
            row = conn.execute(
                "SELECT * FROM plans WHERE stripe_price_id = %s", (facts.price_id,)
            ).fetchone()
        if row is None and facts.plan_id:
            row = conn.execute("SELECT * FROM plans WHERE id = %s", (facts.plan_id,)).fetchone()
        return row

    def _write_tenant(self, conn: Conn, tenant_id: str, facts: Facts, decision: Decision) -> None:
        plan = self._plan(conn, facts)
        if plan is None:
            raise InvalidEvent(f"unknown_plan: {facts.plan_id or facts.price_id}")
        email = facts.owner_email or f"{facts.customer_id or tenant_id}@customers.invalid"
        user = conn.execute(
            "INSERT INTO users (email) VALUES (%s) ON CONFLICT (email) DO UPDATE"
            " SET updated_at = NOW() RETURNING id",
            (email,),
        ).fetchone()
        assert user is not None
        conn.execute(
            "INSERT INTO tenants (id, user_id, agent_id, display_name, status, stripe_customer_id)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
            " status = EXCLUDED.status, display_name = EXCLUDED.display_name"
            " WHERE tenants.status IS DISTINCT FROM EXCLUDED.status"
            " OR tenants.display_name IS DISTINCT FROM EXCLUDED.display_name",
            (
                tenant_id,
                user["id"],
                agent_id_for(tenant_id),
                facts.display_name or email,
                decision.status,
                facts.customer_id,
            ),
        )
        start = to_datetime(facts.period_start_ms or facts.checkout_ms)
        end = to_datetime(facts.period_end_ms) or (start + timedelta(days=30) if start else None)
        conn.execute(
            "INSERT INTO subscriptions (tenant_id, plan_id, status, current_period_start,"
            " current_period_end, stripe_subscription_id, stripe_status, payment_failed_at,"
            " grace_until, delete_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET plan_id = EXCLUDED.plan_id,"
            " status = EXCLUDED.status, current_period_start = EXCLUDED.current_period_start,"
            " current_period_end = EXCLUDED.current_period_end,"
            " stripe_subscription_id = EXCLUDED.stripe_subscription_id,"
            " stripe_status = EXCLUDED.stripe_status,"
            " payment_failed_at = EXCLUDED.payment_failed_at,"
            " grace_until = EXCLUDED.grace_until, delete_at = EXCLUDED.delete_at,"
            " updated_at = NOW() WHERE (subscriptions.plan_id, subscriptions.status,"
            " subscriptions.current_period_start, subscriptions.current_period_end,"
            " subscriptions.grace_until)"
            " IS DISTINCT FROM (EXCLUDED.plan_id, EXCLUDED.status,"
            " EXCLUDED.current_period_start, EXCLUDED.current_period_end, EXCLUDED.grace_until)",
            (
                tenant_id,
                plan["id"],
                decision.status,
                start,
                end,
                facts.subscription_id,
                facts.subscription_status,
                to_datetime(decision.failing_since_ms),
                to_datetime(decision.grace_until_ms),
                to_datetime(decision.delete_at_ms),
            ),
        )
        for key, value in facts.settings.items():
            conn.execute(
                "INSERT INTO tenant_configs (tenant_id, config_type, config_key, config_value)"
                " VALUES (%s, 'agent', %s, %s) ON CONFLICT (tenant_id, config_type, config_key)"
                " DO UPDATE SET config_value = EXCLUDED.config_value, updated_at = NOW()",
                (tenant_id, key, Jsonb(value)),
            )

    def _spec(self, conn: Conn, tenant_id: str, facts: Facts, status: Status) -> TenantSpec | None:
        if status == "pending":
            return None
        plan = self._plan(conn, facts)
        if plan is None:
            return None
        return TenantSpec(
            tenant_id=tenant_id,
            agent_id=agent_id_for(tenant_id),
            status=status,
            plan_id=str(plan["id"]),
            mode=str(plan["tenancy_mode"]),
            limits=PlanLimits(
                memory_mb=int(plan["memory_mb"] or 1536),
                cpus=float(plan["cpus"] or 1.0),
                pids_limit=int(plan.get("pids_limit") or 1024),
            ),
            display_name=facts.display_name or facts.owner_email or tenant_id,
            settings=dict(facts.settings),
        )
