"""POST /webhooks/stripe: verify → translate → produce to tenants.lifecycle → 200.

The `Stripe-Signature` header is checked with the `stripe` library (HMAC-SHA256 over
"<t>.<raw body>", tolerance STRIPE_TOLERANCE_S) before the body is even parsed; a missing,
wrong or stale signature gets 400 and changes nothing. A verified event becomes one
TenantLifecycle record keyed by tenant (`ingress.stripe_payload`, the pure half), and the
answer is 200 only once the broker has it (503 otherwise, so Stripe redelivers). Duplicates
are answered 200 without producing again; the lifecycle service dedups durably on the
event id, so one that slips past is harmless.
"""

from __future__ import annotations

import json
import logging
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
from ingress.stripe_payload import HANDLED_TYPES, Unusable, id_of, lifecycle_record
from ingress.typedefs import PRODUCER, SETTINGS

log = logging.getLogger(__name__)

CHANNEL = "stripe"
PATH = "/webhooks/stripe"
SIGNATURE_HEADER = "Stripe-Signature"
SEND_TIMEOUT_S = 10.0
RETRY_AFTER_S = 5
# Stripe keeps retrying for up to three days; the durable dedup downstream covers the rest.
RECENT_TTL_S = 3 * 24 * 3600.0
RECENT = web.AppKey("stripe_recent_events", RecentUpdates)
BOX = web.AppKey("stripe_secret_box", SecretBox)


def setup(app: web.Application) -> None:
    """Register the route and the duplicate memory on the ingress app."""
    app[RECENT] = RecentUpdates(ttl_s=RECENT_TTL_S)
    app[BOX] = SecretBox(app[SETTINGS])
    app.router.add_post(PATH, stripe_webhook)


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
        if not isinstance(event, dict) or id_of(event.get("id")) is None:
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
