"""POST /webhooks/stripe: verify → translate → produce to tenants.lifecycle → 200.

The `Stripe-Signature` header is checked with the `stripe` library (HMAC-SHA256 over
"<t>.<raw body>", tolerance STRIPE_TOLERANCE_S) before the body is even parsed; a missing,
wrong or stale signature gets 400 and changes nothing. A verified event becomes one
TenantLifecycle record keyed by tenant, and the answer is 200 only once the broker has it
(503 otherwise, so Stripe redelivers). Duplicates are answered 200 without producing again;
the lifecycle service dedups durably on the event id, so one that slips past is harmless.

The tenant id is derived from the Stripe customer id (one customer, one tenant), so every
event of a customer lands on the same partition, in no need of a database lookup here.
Ordering is not trusted: each record carries the Stripe object's own timestamp
(`occurred_at` = `event.created`) and state, and the lifecycle service decides from those.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import stripe
from aiohttp import web

from common.errors import KafkaUnavailable
from common.secrets import SecretBox
from common.telemetry import INGRESS_DUPLICATES
from common.topics import Topic
from ingress.dedup import RecentUpdates
from ingress.middlewares import ApiError, read_body
from ingress.outcomes import Outcome, counted
from ingress.text import clean, epoch_seconds
from ingress.typedefs import PRODUCER, SETTINGS

log = logging.getLogger(__name__)

CHANNEL = "stripe"
SIGNATURE_HEADER = "Stripe-Signature"
SEND_TIMEOUT_S = 10.0
RETRY_AFTER_S = 5
# Stripe keeps retrying for up to three days; the durable dedup downstream covers the rest.
RECENT_TTL_S = 3 * 24 * 3600.0
RECENT = web.AppKey("stripe_recent_events", RecentUpdates)
BOX = web.AppKey("stripe_secret_box", SecretBox)
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


class Unusable(ValueError):
    """A verified event we cannot turn into a lifecycle record (acknowledged, counted)."""


def setup(app: web.Application) -> None:
    """Register the route and the duplicate memory on the ingress app."""
    app[RECENT] = RecentUpdates(ttl_s=RECENT_TTL_S)
    app[BOX] = SecretBox(app[SETTINGS])
    app.router.add_post("/webhooks/stripe", stripe_webhook)


_STRIPE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


def tenant_id_for(customer_id: str) -> str:
    """The tenant of a Stripe customer: stable, so replays and reorders agree."""
    return str(uuid.uuid5(TENANT_NAMESPACE, f"stripe:customer:{customer_id}"))


@counted(CHANNEL)
async def stripe_webhook(request: web.Request) -> tuple[Outcome, dict[str, Any]]:
    """One event: its outcome and JSON answer (counted, errors as JSON: `counted`)."""
    settings = request.app[SETTINGS]
    secret = settings.stripe_webhook_secret.value
    if not secret:
        raise ApiError(
            503, "not_configured", "STRIPE_WEBHOOK_SECRET is not set", outcome="unavailable"
        )
    header = request.headers.get(SIGNATURE_HEADER)
    if not header:
        raise ApiError(400, "missing_signature", f"no {SIGNATURE_HEADER} header")
    raw = await read_body(request, settings.max_body_bytes)
    try:
        stripe.WebhookSignature.verify_header(raw, header, secret, settings.stripe_tolerance_s)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as err:
        reason = "stale_signature" if "tolerance" in str(err) else "bad_signature"
        raise ApiError(400, reason, "signature verification failed") from err
    try:
        event = json.loads(raw)
        if not isinstance(event, dict) or _id_of(event.get("id")) is None:
            raise ValueError("not an event object")
    except ValueError as err:
        raise ApiError(400, "malformed", "body is not a Stripe event") from err

    event_id, event_type = event["id"], str(event.get("type", ""))
    if event_type not in HANDLED_TYPES:
        return "ignored", {"received": True, "ignored": event_type}
    recent = request.app[RECENT]  # keyed (event id, 0): RecentUpdates keys are (str, int)
    if (event_id, 0) in recent:
        INGRESS_DUPLICATES.labels(CHANNEL).inc()
        return "duplicate", {"received": True, "duplicate": True}
    try:
        record = lifecycle_record(event, seal=request.app[BOX].seal)
    except Unusable as err:
        log.warning("stripe event %s (%s) not usable: %s", event_id, event_type, err)
        return "ignored", {"received": True, "ignored": str(err)}
    if record is None:
        return "ignored", {"received": True, "ignored": "not actionable"}
    try:
        await request.app[PRODUCER].send(
            Topic.LIFECYCLE, record["tenant_id"], record, timeout=SEND_TIMEOUT_S
        )
    except KafkaUnavailable as err:
        log.warning("stripe event %s not produced: %s", event_id, err.reason)
        raise ApiError(
            503,
            "kafka_unavailable",
            "event store unavailable, retry later",
            outcome="unavailable",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from err
    recent.add((event_id, 0))
    return "accepted", {"received": True}


# -- translation (pure) -----------------------------------------------------------------


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
    customer = _id_of(obj.get("customer"))
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
        "stripe_object_id": _id_of(obj.get("id")),
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
        stripe_subscription_id=_id_of(obj.get("subscription")),
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
        stripe_price_id=_id_of(price.get("id")),
        stripe_subscription_id=_id_of(obj.get("id")),
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
        stripe_subscription_id=_id_of(subscription),
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


def _id_of(value: Any) -> str | None:
    """An id field may be a plain id or an expanded object; Stripe ids are short ASCII."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None
