"""POST /webhooks/telegram/{bot_id}: verify → normalise → produce to messages.inbound → 200.

The order matters: the bot must be known and the secret token right before the body is
even read; the update is acknowledged only after the broker acknowledged the event.
Tenants that are suspended or deleted still have their messages produced: metering
decides what happens to them (held, not forwarded), and Telegram must not pile up retries.
The pure half (parsing an update, building the record) is `ingress.telegram_payload`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from common.errors import KafkaUnavailable
from common.telemetry import INGRESS_DUPLICATES
from common.timeconv import now_ms
from common.topics import Topic
from ingress.middlewares import ApiError, read_body
from ingress.outcomes import Outcome, counted
from ingress.signatures import TELEGRAM_SECRET_HEADER, telegram_secret_ok
from ingress.telegram_payload import CHANNEL, Ignored, MalformedUpdate, normalize, parse_update
from ingress.typedefs import DIRECTORY, PRODUCER, RECENT_UPDATES, SETTINGS
from ingress.unavailable import unavailable

log = logging.getLogger(__name__)

# Telegram waits 60 s for an answer; the broker must acknowledge well within that.
SEND_TIMEOUT_S = 10.0
_BOT_ID = re.compile(r"[0-9]{1,20}")
PATH = "/webhooks/telegram/{bot_id}"


def setup(app: web.Application) -> None:
    """Register the route on the ingress app.

    The duplicate memory is the app's RECENT_UPDATES (set by `create_app`, which lets
    tests pass their own).
    """
    app.router.add_post(PATH, telegram_webhook)


@counted(CHANNEL)
async def telegram_webhook(request: web.Request) -> tuple[Outcome, dict[str, Any]]:
    """One update: its outcome and JSON answer (counted, errors as JSON: `counted`)."""
    app = request.app
    directory = app[DIRECTORY]
    if not directory.loaded.is_set():
        raise unavailable("not_ready", "tenant directory not loaded yet")

    bot_id = request.match_info["bot_id"]
    tenant = directory.by_telegram_bot(bot_id) if _BOT_ID.fullmatch(bot_id) else None
    binding = tenant.telegram if tenant is not None else None
    if tenant is None or binding is None:
        raise ApiError(404, "unknown_bot", "no tenant owns this bot")
    if not telegram_secret_ok(request.headers.get(TELEGRAM_SECRET_HEADER), binding.secret_hash):
        raise ApiError(401, "bad_secret", "missing or wrong secret token")

    try:
        update = parse_update(await read_body(request, request.app[SETTINGS].max_body_bytes))
    except MalformedUpdate as err:
        raise ApiError(400, "malformed", err.reason) from err

    recent = app[RECENT_UPDATES]
    key = (bot_id, update.update_id)
    if key in recent:
        INGRESS_DUPLICATES.labels(CHANNEL).inc()
        return "duplicate", {"ok": True, "duplicate": True}

    record = normalize(
        update,
        bot_id=bot_id,
        tenant_id=tenant.tenant_id,
        received_at_ms=now_ms(),
    )
    if isinstance(record, Ignored):
        log.debug("telegram update %s:%s ignored: %s", bot_id, update.update_id, record.reason)
        return "ignored", {"ok": True, "ignored": record.reason}

    try:
        await app[PRODUCER].send(Topic.INBOUND, tenant.tenant_id, record, timeout=SEND_TIMEOUT_S)
    except KafkaUnavailable as err:
        log.warning("telegram update %s not produced: %s", record["event_id"], err.reason)
        raise unavailable("kafka_unavailable", "event store unavailable, retry later") from err
    recent.add(key)
    log.debug("produced %s for tenant %s", record["event_id"], tenant.tenant_id)
    return "accepted", {"ok": True}
