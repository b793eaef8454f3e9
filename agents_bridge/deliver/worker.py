"""consumes messages.outbound → sends each reply on its channel (Telegram `sendMessage`).

The lane is `tenant:conversation`, so the replies of one chat go out one at a time and in
order. A reply longer than Telegram's 4096 characters goes out as several messages.

Telegram (`agents_bridge.deliver.telegram`): paced per chat and per bot; each call is
retried `settings.sender_attempts` times, waiting at least the `retry_after` Telegram
asked for on a 429; then the reply is dead-lettered (`telegram_unavailable: …`). A
permanent refusal (400 chat not found, 403 bot blocked, 401 revoked token), an unknown
tenant, a tenant without a Telegram bot, or a channel without a sender yet → `InvalidEvent`
→ messages.outbound.dlq. Each chunk's result is recorded in `outbound_deliveries`.

Idempotency has an at-least-once limit: this process remembers (bounded) the reply
event_ids it delivered, and the chunks already sent are read back from
`outbound_deliveries`, so a redelivery sends nothing twice. Only a crash between a send
and its record can make Telegram receive that chunk again; the Bot API has no
idempotency key to prevent that.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from agents_bridge.deliver.group import ChannelDelivery
from agents_bridge.deliver.log import DeliveryLog
from agents_bridge.deliver.pacing import Pacer
from agents_bridge.deliver.telegram import TelegramDelivery
from agents_bridge.deliver.telegram_api import TelegramSender
from agents_bridge.ports import TenantLookup
from common.consumer import Event, KafkaWorker
from common.errors import InvalidEvent
from common.kafka import EventProducer
from common.retry import RetryPolicy
from common.settings import Settings
from common.telemetry import CHANNEL_SENDS
from common.topics import Topic

log = logging.getLogger(__name__)

STAGE = "delivery"
GROUP = "agents_bridge.delivery"  # the consumer group (committed offsets): keep the name
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
        pacer: Pacer | None = None,
        deliveries: DeliveryLog | None = None,
        channels: Mapping[str, ChannelDelivery] | None = None,
    ) -> None:
        self._remember = remember
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self._telegram = TelegramDelivery(
            directory=directory,
            sender=telegram,
            policy=policy or RetryPolicy(attempts=settings.sender_attempts),
            pacer=pacer,
            deliveries=deliveries,
            remember=remember,
        )
        # Every channel's deliverer by channel name (agents_bridge.deliver.group).
        self._channels: dict[str, ChannelDelivery] = {"telegram": self._telegram}
        self._channels.update(channels or {})

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
        deliverer = self._channels.get(channel)
        if deliverer is None:
            raise InvalidEvent("channel_not_supported_yet")
        await deliverer.deliver(reply)
        self._mark(self._delivered, event_id, None)

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
