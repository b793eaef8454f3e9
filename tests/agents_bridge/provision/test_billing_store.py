"""The lifecycle's PostgreSQL side on the real database (no Docker): dedup by event id,
any order converging, quotas visible at once, pool placement filling up pools."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from agents_bridge.provision.billing_store import BillingStore, agent_id_for
from agents_bridge.provision.lifecycle import Fact
from agents_bridge.provision.units_store import UnitStore
from common.errors import InvalidEvent
from common.settings import Settings
from control.tenant_status import show_tenant
from ingress.stripe_payload import lifecycle_record, tenant_id_for
from tests.stripe_events import DAY, checkout_completed, invoice, subscription

pytestmark = pytest.mark.integration


def _fact(evt: dict[str, Any]) -> Fact:
    record = lifecycle_record(evt)
    assert record is not None
    return Fact.from_record(record)


def _row(settings: Settings, sql: str, *params: Any) -> dict[str, Any] | None:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        row: dict[str, Any] | None = conn.execute(sql, params).fetchone()
        return row


def _state(settings: Settings, tenant: str) -> tuple[Any, ...]:
    row = _row(
        settings,
        "SELECT t.status, s.plan_id, s.grace_until, b.facts FROM tenants t"
        " JOIN subscriptions s ON s.tenant_id = t.id JOIN billing_states b ON b.tenant_id = t.id"
        " WHERE t.id = %s",
        tenant,
    )
    assert row is not None
    return row["status"], row["plan_id"], row["grace_until"], row["facts"]


def test_duplicates_and_reordering_converge_to_the_same_rows(settings: Settings) -> None:
    store = BillingStore(settings)
    now = datetime.now(UTC)
    t = int(now.timestamp())
    runs = []
    for order in ((0, 1, 2, 3), (3, 2, 1, 0)):
        customer = f"cus_{uuid.uuid4().hex[:8]}"
        tenant = tenant_id_for(customer)
        story = [
            checkout_completed(customer, plan="individual", created=t - 3 * DAY),
            subscription(customer, plan="business", created=t - 2 * DAY),
            subscription(customer, plan="individual", created=t - 2 * DAY - 5),  # stale
            invoice(customer, "in_1", paid=False, created=t - DAY),
        ]
        for i in order:
            store.apply(tenant, _fact(story[i]), now)
        again = store.apply(tenant, _fact(story[order[0]]), now)
        assert again.duplicate
        status, plan, grace_until, facts = _state(settings, tenant)
        runs.append((status, plan, grace_until))
        assert facts["customer_id"] == customer
    assert runs[0] == runs[1]
    assert runs[0][:2] == ("grace", "business")
    assert runs[0][2] == datetime.fromtimestamp(t - DAY, UTC) + timedelta(days=7)


def test_plan_change_is_in_postgres_at_once_and_clock_moves_status(settings: Settings) -> None:
    store = BillingStore(settings)
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    tenant = tenant_id_for(customer)
    now = datetime.now(UTC)
    t = int(now.timestamp())
    out = store.apply(tenant, _fact(checkout_completed(customer, plan="business", created=t)), now)
    assert out.spec is not None and out.spec.mode == "dedicated"
    assert out.spec.agent_id == agent_id_for(tenant)
    out = store.apply(tenant, _fact(subscription(customer, plan="enterprise", created=t + 1)), now)
    assert out.plan_changed
    row = _row(
        settings,
        "SELECT p.msg_limit, p.memory_mb FROM subscriptions s JOIN plans p ON p.id = s.plan_id"
        " WHERE s.tenant_id = %s",
        tenant,
    )
    assert row == {"msg_limit": None, "memory_mb": 4096}
    store.apply(tenant, _fact(invoice(customer, "in_9", paid=False, created=t + 2)), now)
    later = now + timedelta(days=8)
    assert tenant in store.due(later)
    assert store.recheck(tenant, later).decision.status == "suspended"
    assert _state(settings, tenant)[0] == "suspended"
    out = store.apply(
        tenant, _fact(invoice(customer, "in_9", paid=True, created=t + 8 * DAY)), later
    )
    assert (out.before, out.decision.status) == ("suspended", "active")
    shown = show_tenant(settings, agent_id_for(tenant))  # `openclaw-saas tenant show`
    assert shown is not None
    assert (shown["tenant_id"], shown["status"], shown["plan"]) == (tenant, "active", "enterprise")
    assert shown["stripe_customer_id"] == customer and shown["container"] is None


def test_unknown_plan_is_invalid_and_leaves_nothing(settings: Settings) -> None:
    store = BillingStore(settings)
    customer = f"cus_{uuid.uuid4().hex[:8]}"
    evt = checkout_completed(customer, plan="platinum")
    with pytest.raises(InvalidEvent):
        store.apply(tenant_id_for(customer), _fact(evt), datetime.now(UTC))
    assert (
        _row(settings, "SELECT 1 FROM processed_stripe_events WHERE event_id = %s", evt["id"])
        is None
    )


def test_pools_fill_up_then_a_new_pool_is_made(settings: Settings) -> None:
    s = Settings.from_env(
        {}, **{**vars(settings), "pool_size": 2, "provisioner_prefix": f"p{uuid.uuid4().hex[:5]}-"}
    )
    store, units = BillingStore(s), UnitStore(s)
    now = datetime.now(UTC)
    names = []
    for _ in range(3):
        customer = f"cus_{uuid.uuid4().hex[:8]}"
        tenant = tenant_id_for(customer)
        out = store.apply(tenant, _fact(checkout_completed(customer, plan="individual")), now)
        assert out.spec is not None
        names.append(units.place(tenant, out.spec.agent_id, "pool", "individual").name)
        assert units.place(tenant, out.spec.agent_id, "pool", "individual").name == names[-1]
    prefix = s.provisioner_prefix
    assert names == [f"{prefix}pool-1", f"{prefix}pool-1", f"{prefix}pool-2"]
    assert [m.agent_id for m in units.members(names[0])] == sorted(
        m.agent_id for m in units.members(names[0])
    )
