"""WhatsApp Cloud API webhooks: one app-level callback for every tenant's numbers.

GET /webhooks/whatsapp: the verification handshake. `hub.mode=subscribe` and a
`hub.verify_token` whose sha256 is the stored hash of some WhatsApp binding → 200 with the
raw `hub.challenge`; anything else → 403.

POST /webhooks/whatsapp: verify → route → normalise → produce → 200.

The app secret that signs a POST is per binding, so the binding must be found before the
signature can be checked, and the binding is named inside the body
(`entry[].changes[].value.metadata.phone_number_id`). The order is therefore:

1. read the raw body (bounded: WHATSAPP_MAX_BODY_BYTES, larger → 413) and refuse a
   missing or malformed `X-Hub-Signature-256` header (401) before any parsing;
2. parse the JSON *only to locate* the phone_number_ids (`parse_notification`: bounded
   input, no action, no log of its content; not JSON / not the envelope → 400);
3. look every named number up in the in-memory directory (`by_binding`); one unknown
   number → 404 for the whole POST;
4. verify the HMAC-SHA256 of the raw bytes, in constant time, with the app secret of
   *every* binding the body names: a body naming numbers of different apps cannot carry
   one valid signature for all, so it is refused (401) and a tenant can never inject
   events for another tenant's number by mixing it into a body signed with its own secret;
5. only then normalise and produce (messages.inbound, messages.outbound for "not
   supported yet" notices, channel.statuses for statuses and unsupported messages),
   and answer 200 once the broker acknowledged all of them (else 503: Meta redelivers).

A body with no `messages` change (another webhook field) names no number and cannot be
verified; it is acknowledged (200, counted `ignored`) and nothing is acted on.

Statuses are not written to PostgreSQL here: the hot path only produces them, and the
status recorder (agents_bridge/deliver/statuses.py) writes them in its own process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from common.directory import Binding, Tenant
from common.errors import KafkaUnavailable
from common.telemetry import INGRESS_DUPLICATES, INGRESS_REQUESTS
from common.timeconv import now_ms
from common.topics import Topic
from ingress.dedup import RecentUpdates
from ingress.middlewares import ApiError, read_body
from ingress.outcomes import Outcome, count_error, counted
from ingress.signatures import (
    HUB_SIGNATURE_HEADER,
    hub_signature_ok,
    hub_signature_well_formed,
    verify_token_ok,
)
from ingress.typedefs import DIRECTORY, PRODUCER, SETTINGS
from ingress.unavailable import unavailable
from ingress.whatsapp_payload import (
    CHANNEL,
    MalformedNotification,
    Output,
    normalize,
    parse_notification,
)

log = logging.getLogger(__name__)

PATH = "/webhooks/whatsapp"
SEND_TIMEOUT_S = 10.0
# Meta retries an unacknowledged notification for up to 7 days.
RECENT_TTL_S = 7 * 24 * 3600.0
RECENT = web.AppKey("whatsapp_recent", RecentUpdates)
NOTICE = (
    "Sorry, {kind} messages are not supported yet. Please send your message as text "
    "and I will answer."
)
_NOTIFY_STATUSES = frozenset({"active", "grace"})
_MAX_CHALLENGE = 256
_TOPIC = {"inbound": Topic.INBOUND, "notice": Topic.OUTBOUND, "status": Topic.CHANNEL_STATUSES}


@runtime_checkable
class BindingDirectory(Protocol):
    """What this module needs of `common.directory.Directory`: in-memory lookups only."""

    loaded: asyncio.Event

    def by_binding(self, channel: str, external_id: str) -> tuple[Tenant, Binding] | None: ...

    def tenants(self) -> list[Tenant]: ...


def setup(app: web.Application) -> None:
    """Register the two routes and the duplicate memory on the ingress app."""
    app[RECENT] = RecentUpdates(ttl_s=RECENT_TTL_S)
    app.router.add_get(PATH, whatsapp_verify)
    app.router.add_post(PATH, whatsapp_webhook)


async def whatsapp_verify(request: web.Request) -> web.Response:
    """The subscription handshake: echo `hub.challenge` to a known verify token."""
    try:
        directory = _directory(request.app)
        query = request.query
        challenge = query.get("hub.challenge", "")
        if query.get("hub.mode") != "subscribe" or not 0 < len(challenge) <= _MAX_CHALLENGE:
            raise ApiError(403, "bad_verification", "hub.mode or hub.challenge missing")
        hashes = [b.secret_hash for t in directory.tenants() for b in _numbers(t)]
        if not verify_token_ok(query.get("hub.verify_token"), hashes):
            raise ApiError(403, "bad_verify_token", "unknown verify token")
    except ApiError as err:
        count_error(CHANNEL, err)
        raise
    INGRESS_REQUESTS.labels(CHANNEL, "verified").inc()
    return web.Response(text=challenge, content_type="text/plain")


@counted(CHANNEL)
async def whatsapp_webhook(request: web.Request) -> tuple[Outcome, dict[str, Any]]:
    """One notification: its outcome and JSON answer (counted, errors as JSON: `counted`)."""
    app = request.app
    directory = _directory(app)
    raw = await read_body(request, app[SETTINGS].whatsapp_max_body_bytes)
    signature = request.headers.get(HUB_SIGNATURE_HEADER)
    if not hub_signature_well_formed(signature):
        raise ApiError(401, "bad_signature", f"missing or malformed {HUB_SIGNATURE_HEADER}")
    try:
        notification = parse_notification(raw)
    except MalformedNotification as err:
        raise ApiError(400, "malformed", err.reason) from err
    if not notification.changes:
        return "ignored", {"ok": True, "ignored": "no_messages_change"}

    routes: dict[str, tuple[Tenant, Binding]] = {}
    for pnid in notification.phone_number_ids:
        found = directory.by_binding(CHANNEL, pnid)
        if found is None:
            raise ApiError(404, "unknown_number", "no tenant owns this phone number")
        routes[pnid] = found
    app_secrets = {b.credentials.get("app_secret") for _t, b in routes.values()}
    if not all(s and hub_signature_ok(signature, raw, s.value) for s in app_secrets):
        raise ApiError(401, "bad_signature", "signature does not match the app secret")

    received_ms = now_ms()
    outputs: list[Output] = []
    ignored: list[str] = []
    for change in notification.changes:
        tenant, _binding = routes[change.phone_number_id]
        out, skipped = normalize(
            change,
            tenant_id=tenant.tenant_id,
            received_at_ms=received_ms,
            notify=tenant.status in _NOTIFY_STATUSES,
            notice_text=NOTICE,
        )
        outputs.extend(out)
        ignored.extend(skipped)
    for reason in ignored:
        log.info("whatsapp notification part ignored: %s", reason)
    return await _produce(app, outputs, ignored)


async def _produce(
    app: web.Application, outputs: list[Output], ignored: list[str]
) -> tuple[Outcome, dict[str, Any]]:
    recent = app[RECENT]
    seen: set[tuple[str, tuple[str, int]]] = set()  # a body may repeat a message
    fresh = []
    for o in outputs:
        if o.dedup not in recent and (o.kind, o.dedup) not in seen:
            seen.add((o.kind, o.dedup))
            fresh.append(o)
    duplicates = len({o.dedup for o in outputs}) - len({o.dedup for o in fresh})
    if duplicates:
        INGRESS_DUPLICATES.labels(CHANNEL).inc(duplicates)
    if not fresh:
        outcome = "duplicate" if duplicates else "ignored"
        return outcome, {"ok": True, "duplicates": duplicates, "ignored": ignored}
    producer = app[PRODUCER]
    # Sends start in list order (a message's status before its notice, messages in order).
    results = await asyncio.gather(
        *(
            producer.send(_TOPIC[o.kind], o.record["tenant_id"], o.record, timeout=SEND_TIMEOUT_S)
            for o in fresh
        ),
        return_exceptions=True,
    )
    failed = {o.dedup for o, r in zip(fresh, results, strict=True) if r is not None}
    for output, result in zip(fresh, results, strict=True):
        if result is None and output.dedup not in failed:
            recent.add(output.dedup)
        elif result is not None and not isinstance(result, KafkaUnavailable):
            raise result
    if failed:
        log.warning("whatsapp: %d of %d events not produced", len(failed), len(fresh))
        raise unavailable("kafka_unavailable", "event store unavailable, retry later")
    return "accepted", {"ok": True, "produced": len(fresh), "duplicates": duplicates}


def _directory(app: web.Application) -> BindingDirectory:
    directory = app[DIRECTORY]
    if not isinstance(directory, BindingDirectory):  # a directory without channel bindings
        raise ApiError(500, "internal", "directory cannot route bindings", outcome="error")
    if not directory.loaded.is_set():
        raise unavailable("not_ready", "tenant directory not loaded yet")
    return directory


def _numbers(tenant: Tenant) -> list[Binding]:
    return [b for b in tenant.bindings if b.channel == CHANNEL]
