"""The tenant lifecycle state machine: the one place that decides a tenant's status.

Pure: no I/O, no clock of its own. Billing facts arrive as TenantLifecycle records (from
Stripe events, at least once and in any order); `merge` folds one into a tenant's `Facts`
using each Stripe object's own timestamp (`occurred_at` = `event.created`, ties broken by
event id), so any order of the same events gives the same facts. `decide(facts, now)` then
derives the status from the facts and the time the caller passes in:

    pending    no completed checkout yet (a subscription event arrived first)
    active     paid up
    grace      a payment failed less than GRACE ago (owner notified; service continues)
    suspended  a payment failed GRACE..DELETE ago (gateway stopped, messages held)
    deleted    subscription deleted/canceled, or a payment failed DELETE ago; final

A failed invoice stops counting once that invoice, or any later one, is paid. Deletion is
sticky: `advance` records it in the facts so a late `invoice.paid` cannot resurrect a
tenant whose gateway and data are gone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from common.tenant_status import Status as Status
from common.timeconv import epoch_ms

Version = tuple[int, str]  # (occurred_at ms, event id): a total order on one object's events
_NEVER: Version = (-1, "")
_ENDED_STATUSES = ("canceled", "incomplete_expired")


@dataclass(frozen=True)
class Policy:
    grace: timedelta = timedelta(days=7)
    delete_after: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class Fact:
    """One billing fact: the parts of a TenantLifecycle record the state machine reads."""

    event_id: str
    billing_event: str
    occurred_ms: int
    customer_id: str | None = None
    subscription_id: str | None = None
    object_id: str | None = None
    plan_id: str | None = None
    price_id: str | None = None
    subscription_status: str | None = None
    period_start_ms: int | None = None
    period_end_ms: int | None = None
    owner_email: str | None = None
    display_name: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    # Sealed channel credentials from the checkout: applied once, never kept in the facts.
    sealed_credentials: bytes | None = field(default=None, repr=False)

    @property
    def version(self) -> Version:
        return (self.occurred_ms, self.event_id)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Fact:
        """From a decoded TenantLifecycle record (timestamps as datetime or epoch ms)."""
        raw_settings = record.get("settings_json")
        settings = json.loads(raw_settings) if raw_settings else {}
        return cls(
            event_id=str(record["event_id"]),
            billing_event=str(record.get("billing_event") or ""),
            occurred_ms=_ms(record["occurred_at"]) or 0,
            customer_id=record.get("stripe_customer_id"),
            subscription_id=record.get("stripe_subscription_id"),
            object_id=record.get("stripe_object_id"),
            plan_id=record.get("plan_id"),
            price_id=record.get("stripe_price_id"),
            subscription_status=record.get("subscription_status"),
            period_start_ms=_ms(record.get("period_start")),
            period_end_ms=_ms(record.get("period_end")),
            owner_email=record.get("owner_email"),
            display_name=record.get("display_name"),
            settings={str(k): str(v) for k, v in dict(settings).items()},
            sealed_credentials=record.get("sealed_credentials"),
        )


@dataclass(frozen=True)
class Facts:
    """Everything known about one tenant's billing, each part at its newest version."""

    customer_id: str | None = None
    subscription_id: str | None = None
    checkout_ms: int | None = None  # earliest completed checkout
    owner_email: str | None = None
    display_name: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    profile_version: Version = _NEVER  # of owner/name/settings
    plan_id: str | None = None
    price_id: str | None = None
    plan_version: Version = _NEVER
    subscription_status: str | None = None
    period_start_ms: int | None = None
    period_end_ms: int | None = None
    subscription_version: Version = _NEVER
    ended_ms: int | None = None  # subscription deleted (earliest)
    failures: dict[str, int] = field(default_factory=dict)  # invoice -> first failure ms
    paid: dict[str, int] = field(default_factory=dict)  # invoice -> latest paid ms
    deleted_ms: int | None = None  # sticky: the moment the tenant was decided deleted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Facts:
        if not data:
            return cls()
        values = dict(data)
        for key in ("profile_version", "plan_version", "subscription_version"):
            values[key] = tuple(values.get(key) or _NEVER)
        return cls(**values)


@dataclass(frozen=True)
class Decision:
    status: Status
    reason: str
    failing_since_ms: int | None = None
    grace_until_ms: int | None = None
    delete_at_ms: int | None = None
    next_check_ms: int | None = None  # when the clock alone will change the status


def merge(facts: Facts, fact: Fact) -> Facts:
    """Fold one fact in; commutative for distinct events, idempotent for repeats."""
    f = replace(
        facts,
        customer_id=facts.customer_id or fact.customer_id,
        subscription_id=facts.subscription_id or fact.subscription_id,
    )
    kind = fact.billing_event
    if kind == "checkout.session.completed":
        f = _merge_checkout(f, fact)
    elif kind.startswith("customer.subscription."):
        f = _merge_subscription(f, fact, deleted=kind.endswith(".deleted"))
    elif kind == "invoice.payment_failed" and fact.object_id:
        first = min(f.failures.get(fact.object_id, fact.occurred_ms), fact.occurred_ms)
        f = replace(f, failures={**f.failures, fact.object_id: first})
    elif kind == "invoice.paid" and fact.object_id:
        latest = max(f.paid.get(fact.object_id, fact.occurred_ms), fact.occurred_ms)
        f = replace(f, paid={**f.paid, fact.object_id: latest})
    return f


def _merge_checkout(f: Facts, fact: Fact) -> Facts:
    checkout = fact.occurred_ms if f.checkout_ms is None else min(f.checkout_ms, fact.occurred_ms)
    f = replace(f, checkout_ms=checkout)
    if fact.version > f.profile_version:
        f = replace(
            f,
            owner_email=fact.owner_email or f.owner_email,
            display_name=fact.display_name or f.display_name,
            settings=fact.settings or f.settings,
            profile_version=fact.version,
        )
    if (fact.plan_id or fact.price_id) and fact.version > f.plan_version:
        f = replace(f, plan_id=fact.plan_id, price_id=fact.price_id, plan_version=fact.version)
    return f


def _merge_subscription(f: Facts, fact: Fact, *, deleted: bool) -> Facts:
    if deleted or fact.subscription_status in _ENDED_STATUSES:
        ended = fact.occurred_ms if f.ended_ms is None else min(f.ended_ms, fact.occurred_ms)
        f = replace(f, ended_ms=ended)
    if fact.version > f.subscription_version:
        f = replace(
            f,
            subscription_status=fact.subscription_status,
            period_start_ms=fact.period_start_ms or f.period_start_ms,
            period_end_ms=fact.period_end_ms or f.period_end_ms,
            subscription_version=fact.version,
        )
    if (fact.plan_id or fact.price_id) and fact.version > f.plan_version:
        f = replace(f, plan_id=fact.plan_id, price_id=fact.price_id, plan_version=fact.version)
    return f


def failing_since(facts: Facts) -> int | None:
    """When the oldest still-unpaid failure happened (None: nothing outstanding)."""
    latest_paid = max(facts.paid.values(), default=-1)
    outstanding = [
        at
        for invoice, at in facts.failures.items()
        if invoice not in facts.paid and at > latest_paid
    ]
    return min(outstanding, default=None)


def decide(facts: Facts, now: datetime, policy: Policy) -> Decision:
    """The status these facts mean at `now`."""
    if facts.deleted_ms is not None:
        return Decision("deleted", "deleted earlier")
    if facts.ended_ms is not None:
        return Decision("deleted", "subscription ended")
    if facts.checkout_ms is None:
        return Decision("pending", "no completed checkout yet")
    if facts.subscription_status == "paused":
        return Decision("suspended", "subscription paused")
    since = failing_since(facts)
    if since is None:
        return Decision("active", "paid up")
    now_ms = int(now.timestamp() * 1000)
    grace_until = since + _ms_of(policy.grace)
    delete_at = since + _ms_of(policy.delete_after)
    common = {"failing_since_ms": since, "grace_until_ms": grace_until, "delete_at_ms": delete_at}
    if now_ms < grace_until:
        return Decision("grace", "payment failed", next_check_ms=grace_until, **common)
    if now_ms < delete_at:
        return Decision("suspended", "unpaid past grace", next_check_ms=delete_at, **common)
    return Decision("deleted", "unpaid past deletion", **common)


def advance(facts: Facts, now: datetime, policy: Policy) -> tuple[Facts, Decision]:
    """`decide`, recording a deletion in the facts (it is final)."""
    decision = decide(facts, now, policy)
    if decision.status == "deleted" and facts.deleted_ms is None:
        facts = replace(facts, deleted_ms=int(now.timestamp() * 1000))
    return facts, decision


def announcement(before: Status | None, after: Status, plan_changed: bool) -> str | None:
    """The TenantLifecycle kind announcing a change (None: nothing worth announcing)."""
    if after == before:
        return "plan_changed" if plan_changed and after != "deleted" else None
    return {
        "active": "reactivated" if before in ("grace", "suspended") else "created",
        "grace": "payment_failed",
        "suspended": "suspended",
        "deleted": "deleted",
    }.get(after)


def to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _ms(value: Any) -> int | None:
    return None if value is None else epoch_ms(value)


def _ms_of(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)
