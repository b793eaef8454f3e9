"""Stripe events as Stripe sends them (API 2026 shapes), and signed with the `stripe` library.

`sign(body, secret)` builds the `Stripe-Signature` header exactly as Stripe does
(`t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")`), through stripe-python's own
`WebhookSignature.generate_signature_header`.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import stripe

WEBHOOK_SECRET = "whsec_test_0123456789abcdefghijklmnopqrstuv"
DAY = 24 * 3600
T0 = 1_795_000_000  # 2026-11-18, a fixed "now" for unit tests (seconds)
PRICES = {
    "individual": "price_individual_monthly",
    "business": "price_business_monthly",
    "enterprise": "price_enterprise_monthly",
}
_ids = itertools.count(1)


def _evt_id() -> str:
    return f"evt_test_{next(_ids):06d}"


def event(event_type: str, obj: dict[str, Any], created: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": extra.pop("event_id", None) or _evt_id(),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": obj, **extra},
    }


def checkout_completed(
    customer: str,
    *,
    email: str = "owner@example.com",
    plan: str = "business",
    subscription: str | None = None,
    created: int = T0,
    metadata: dict[str, str] | None = None,
    event_id: str | None = None,
    telegram_bot_token: str | None = None,
) -> dict[str, Any]:
    fields = []
    if telegram_bot_token:
        fields.append(
            {
                "key": "telegram_bot_token",
                "type": "text",
                "label": {"type": "custom", "custom": "Telegram bot token"},
                "text": {"value": telegram_bot_token},
            }
        )
    obj = {
        "id": f"cs_test_{customer}",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid",
        "customer": customer,
        "subscription": subscription or f"sub_{customer}",
        "client_reference_id": None,
        "customer_details": {"email": email, "name": "Acme Owner"},
        "metadata": {"plan_id": plan, "display_name": f"Acme {customer}", **(metadata or {})},
        "custom_fields": fields,
    }
    return event("checkout.session.completed", obj, created, event_id=event_id)


def subscription(
    customer: str,
    *,
    plan: str = "business",
    status: str = "active",
    created: int = T0,
    deleted: bool = False,
    period_start: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    start = period_start if period_start is not None else created
    obj = {
        "id": f"sub_{customer}",
        "object": "subscription",
        "customer": customer,
        "status": "canceled" if deleted else status,
        "cancel_at_period_end": False,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{customer}",
                    "price": {"id": PRICES[plan], "lookup_key": None, "metadata": {}},
                    "quantity": 1,
                    "current_period_start": start,
                    "current_period_end": start + 30 * DAY,
                }
            ],
        },
        "metadata": {},
    }
    kind = "customer.subscription.deleted" if deleted else "customer.subscription.updated"
    return event(kind, obj, created, event_id=event_id)


def invoice(
    customer: str,
    invoice_id: str,
    *,
    paid: bool,
    created: int = T0,
    event_id: str | None = None,
) -> dict[str, Any]:
    obj = {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "customer_email": "owner@example.com",
        "status": "paid" if paid else "open",
        "attempt_count": 1,
        "billing_reason": "subscription_cycle",
        "amount_due": 19900,
        "next_payment_attempt": None if paid else created + 3 * DAY,
        "parent": {"subscription_details": {"subscription": f"sub_{customer}"}},
    }
    kind = "invoice.paid" if paid else "invoice.payment_failed"
    return event(kind, obj, created, event_id=event_id)


def body_of(evt: dict[str, Any]) -> bytes:
    return json.dumps(evt, indent=2).encode()


def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header for `body`, computed by stripe-python."""
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp
    )
    return header
