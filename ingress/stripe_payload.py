"""Stripe event → TenantLifecycle record. Pure: no I/O, no clock, no settings.

`lifecycle_record` translates one verified event (None: nothing to do; `Unusable`: an
event of a handled type we cannot use). The tenant id is derived from the Stripe customer
id (one customer, one tenant), so every event of a customer lands on the same partition,
in no need of a database lookup. Ordering is not trusted: each record carries the Stripe
object's own timestamp (`occurred_at` = `event.created`) and state, and the lifecycle
service decides from those. Channel credentials from a checkout travel only sealed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ingress.text import clean, epoch_seconds

# tenant_id = uuid5(TENANT_NAMESPACE, "stripe:customer:<cus_...>")
TENANT_NAMESPACE = uuid.UUID("8d0c3a52-6f61-4d8e-a7a4-3c5e1b0f9d21")
# Checkout metadata keys that become the tenant's (non-secret) agent settings.
SETTING_KEYS = ("display_name", "persona", "instructions", "tools_notes", "language")
# Checkout custom fields holding channel credentials: sealed before they reach Kafka.
CREDENTIAL_FIELDS = ("telegram_bot_token",)
Seal = Callable[[str], bytes]

_KIND = {
    "checkout.session.completed": "created",
    "customer.subscription.created": "plan_changed",
    "customer.subscription.updated": "plan_changed",
    "customer.subscription.deleted": "deleted",
    "invoice.payment_failed": "payment_failed",
    "invoice.paid": "reactivated",
}
HANDLED_TYPES = frozenset(_KIND)

_STRIPE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


class Unusable(ValueError):
    """A verified event we cannot turn into a lifecycle record (acknowledged, counted)."""


def tenant_id_for(customer_id: str) -> str:
    """The tenant of a Stripe customer: stable, so replays and reorders agree."""
    return str(uuid.uuid5(TENANT_NAMESPACE, f"stripe:customer:{customer_id}"))


def lifecycle_record(event: Mapping[str, Any], seal: Seal | None = None) -> dict[str, Any] | None:
    """The TenantLifecycle record for a verified Stripe event (None: nothing to do).

    Channel credentials in a checkout's custom fields travel only sealed by `seal`
    (dropped without one).
    """
    event_type = str(event.get("type", ""))
    kind = _KIND.get(event_type)
    if kind is None:
        return None
    obj = _dict(_dict(event.get("data")).get("object"))
    if not obj:
        raise Unusable("event has no data.object")
    customer = id_of(obj.get("customer"))
    if not customer:
        raise Unusable("object has no customer")
    created = epoch_seconds(event.get("created"))
    if created is None:
        raise Unusable("event has no usable created timestamp")
    record: dict[str, Any] = {
        "event_id": str(event["id"]),
        "tenant_id": tenant_id_for(customer),
        "kind": kind,
        "plan_id": None,
        "period_start": None,
        "period_end": None,
        "occurred_at": created * 1000,
        "billing_event": event_type,
        "stripe_customer_id": customer,
        "stripe_subscription_id": None,
        "stripe_object_id": id_of(obj.get("id")),
        "subscription_status": None,
        "stripe_price_id": None,
        "owner_email": None,
        "display_name": None,
        "settings_json": None,
        "sealed_credentials": None,
    }
    if event_type == "checkout.session.completed":
        return _checkout(obj, record, seal)
    if event_type.startswith("customer.subscription."):
        return _subscription(obj, record)
    return _invoice(obj, record)


def _checkout(
    obj: Mapping[str, Any], record: dict[str, Any], seal: Seal | None
) -> dict[str, Any] | None:
    if obj.get("mode") != "subscription" or obj.get("status") != "complete":
        return None
    metadata = _dict(obj.get("metadata"))
    details = _dict(obj.get("customer_details"))
    email = details.get("email") or obj.get("customer_email")
    if not isinstance(email, str) or "@" not in email:
        raise Unusable("checkout session has no customer email")
    settings = {k: str(metadata[k]) for k in SETTING_KEYS if metadata.get(k)}
    record.update(
        plan_id=_str(metadata.get("plan_id") or metadata.get("plan")),
        stripe_subscription_id=id_of(obj.get("subscription")),
        owner_email=clean(email.strip().lower()),
        display_name=_str(metadata.get("display_name") or details.get("name")),
        settings_json=json.dumps(settings, sort_keys=True) if settings else None,
    )
    credentials = _credentials(obj.get("custom_fields"))
    if credentials and seal is not None:
        record["sealed_credentials"] = seal(json.dumps(credentials, sort_keys=True))
    return record


def _credentials(fields: Any) -> dict[str, str]:
    """Checkout custom text fields named in CREDENTIAL_FIELDS: {key: value}."""
    found = {}
    for item in fields if isinstance(fields, list) else []:
        entry = _dict(item)
        value = _dict(entry.get("text")).get("value")
        if entry.get("key") in CREDENTIAL_FIELDS and isinstance(value, str) and value.strip():
            found[str(entry["key"])] = value.strip()
    return found


def _subscription(obj: Mapping[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    items = _dict(obj.get("items")).get("data")
    item = _dict(items[0]) if isinstance(items, list) and items else {}
    price = _dict(item.get("price"))
    metadata = _dict(obj.get("metadata"))
    # Since API 2025-03-31.basil the period lives on the items, not the subscription.
    start = item.get("current_period_start", obj.get("current_period_start"))
    end = item.get("current_period_end", obj.get("current_period_end"))
    record.update(
        plan_id=_str(
            price.get("lookup_key")
            or _dict(price.get("metadata")).get("plan_id")
            or metadata.get("plan_id")
        ),
        stripe_price_id=id_of(price.get("id")),
        stripe_subscription_id=id_of(obj.get("id")),
        subscription_status=_str(obj.get("status")),
        period_start=_ms(start),
        period_end=_ms(end),
    )
    return record


def _invoice(obj: Mapping[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    # Since basil the subscription id sits at parent.subscription_details.subscription.
    parent = _dict(_dict(obj.get("parent")).get("subscription_details"))
    subscription = parent.get("subscription") or obj.get("subscription")
    email = obj.get("customer_email")
    record.update(
        stripe_subscription_id=id_of(subscription),
        owner_email=clean(email.strip().lower()) if isinstance(email, str) and email else None,
    )
    return record


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return clean(str(value)) if isinstance(value, str | int) and value != "" else None


def _ms(seconds: Any) -> int | None:
    usable = epoch_seconds(seconds)
    return None if usable is None else usable * 1000


def id_of(value: Any) -> str | None:
    """An id field may be a plain id or an expanded object; Stripe ids are short ASCII."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None
