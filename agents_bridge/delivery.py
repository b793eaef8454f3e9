"""consumes messages.outbound → sends each reply on its channel (Telegram `sendMessage`).

The lane is `tenant:conversation`, so the replies of one chat go out one at a time and in
order. A reply longer than Telegram's 4096 characters goes out as several messages.

Failures: each Telegram call is retried `settings.sender_attempts` times, waiting at least
the `retry_after` Telegram asked for on a 429; then the reply is dead-lettered
(`telegram_unavailable: …`). A permanent refusal (400 chat not found, 403 bot blocked,
401 revoked token), an unknown tenant, a tenant without a Telegram bot, or a channel
without a sender yet (WhatsApp, email) → `InvalidEvent` → messages.outbound.dlq.

Idempotency has an at-least-once limit: this process remembers (bounded) the reply
event_ids it delivered and how many chunks of a long reply already went out, so a
redelivery or retry *in the same process* sends nothing twice. After a crash or a
partition moving to another process between the send and the offset commit, Telegram
can receive the reply again; the Bot API has no idempotency key to prevent that.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from agents_bridge.ports import TenantLookup
from agents_bridge.retry import RetryPolicy
from agents_bridge.telegram_sender import TelegramSender, split_text
from common.consumer import Event, KafkaWorker
from common.errors import InvalidEvent, RetryableError
from common.kafka import EventProducer
from common.settings import Secret, Settings
from common.telemetry import CHANNEL_SENDS
from common.topics import Topic

log = logging.getLogger(__name__)

STAGE = "delivery"
GROUP = "agents_bridge.delivery"
_REMEMBER = 10_000


def reply_lane(event: Event) -> str:
    """One lane per conversation: replies of one chat are sent in order."""
    return f"{event.value['tenant_id']}:{event.value['conversation_id']}"


class Delivery:
    """The `messages.outbound` handler."""

    def __init__(
        self,
        settings: Settings,
        *,
        directory: TenantLookup,
        telegram: TelegramSender,
        policy: RetryPolicy | None = None,
        remember: int = _REMEMBER,
    ) -> None:
        self._directory = directory
        self._telegram = telegram
        self._policy = policy or RetryPolicy(attempts=settings.sender_attempts)
        self._remember = remember
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self._progress: OrderedDict[str, int] = OrderedDict()  # chunks already sent

    def delivered(self, event_id: str) -> bool:
        return event_id in self._delivered

    async def handle(self, event: Event) -> None:
        reply = event.value
        event_id = reply["event_id"]
        channel = reply["channel"]
        if event_id in self._delivered:
            CHANNEL_SENDS.labels(channel, "duplicate").inc()
            log.info("%s: %s already delivered, skipping", STAGE, event_id)
            return
        if channel != "telegram":
            raise InvalidEvent("channel_not_supported_yet")
        await self._send_telegram(reply)
        self._mark(self._delivered, event_id, None)
        self._progress.pop(event_id, None)

    async def _send_telegram(self, reply: Mapping[str, Any]) -> None:
        token = self._bot_token(reply["tenant_id"])
        route = reply.get("reply_route") or {}
        chat_id = route.get("chat_id") or reply["conversation_id"]
        thread_id = route.get("message_thread_id")
        chunks = split_text(reply["text"])
        if not chunks:
            log.info("%s: %s has no text, nothing to send", STAGE, reply["event_id"])
            return
        for index in range(self._progress.get(reply["event_id"], 0), len(chunks)):
            await self._send_chunk(token, chat_id, chunks[index], thread_id)
            self._mark(self._progress, reply["event_id"], index + 1)

    async def _send_chunk(
        self, token: Secret, chat_id: str, text: str, thread_id: str | None
    ) -> None:
        async def attempt(_n: int) -> int:
            return await self._telegram.send_message(token, chat_id, text, thread_id=thread_id)

        try:
            await self._policy.run(attempt)
        except RetryableError as err:
            raise InvalidEvent(f"telegram_unavailable: {err.reason}") from None

    def _bot_token(self, tenant_id: str) -> Secret:
        tenant = self._directory.tenant(tenant_id)
        if tenant is None:
            raise InvalidEvent("unknown_tenant")
        if tenant.telegram is None or not tenant.telegram.bot_token:
            raise InvalidEvent("no_telegram_binding")
        return tenant.telegram.bot_token

    def _mark(self, seen: OrderedDict[str, Any], event_id: str, value: Any) -> None:
        seen[event_id] = value
        seen.move_to_end(event_id)
        while len(seen) > self._remember:
            seen.popitem(last=False)


def build_worker(settings: Settings, delivery: Delivery, producer: EventProducer) -> KafkaWorker:
    """The delivery consumer: lanes per conversation; `producer` writes the DLQ."""
    return KafkaWorker(
        settings,
        stage=STAGE,
        group=GROUP,
        topics=[Topic.OUTBOUND],
        handler=delivery.handle,
        producer=producer,
        lane_of=reply_lane,
    )
