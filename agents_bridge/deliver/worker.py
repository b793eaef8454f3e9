"""The delivery process's router: each `messages.outbound` reply to its channel's deliverer.

The lane is `tenant:conversation`, so the replies of one chat go out one at a time and in
order. Every channel plugs in the same way, as a `ChannelDelivery` under its name
(`Delivery(channels={"telegram": …, "whatsapp": …, "email": …})`); a reply on a channel
without one → `InvalidEvent("channel_not_supported_yet")` → messages.outbound.dlq. What a
channel raises (`InvalidEvent`: dead-letter; a retryable error: the worker retries) passes
through unchanged. This process remembers (bounded) the reply event_ids it delivered and
skips a redelivery of one of them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from agents_bridge.deliver.channel import ChannelDelivery
from common.consumer import Event, KafkaWorker
from common.errors import InvalidEvent
from common.kafka import EventProducer
from common.records import value_of
from common.settings import Settings
from common.telemetry import CHANNEL_SENDS
from common.topics import Topic
from schemas.types import OutboundReply

log = logging.getLogger(__name__)

STAGE = "delivery"
GROUP = "agents_bridge.delivery"  # the consumer group (committed offsets): keep the name
_REMEMBER = 10_000


def reply_lane(event: Event) -> str:
    """One lane per conversation: replies of one chat are sent in order."""
    reply = value_of(event, OutboundReply)
    return f"{reply['tenant_id']}:{reply['conversation_id']}"


class Delivery:
    """The `messages.outbound` handler."""

    def __init__(
        self, channels: Mapping[str, ChannelDelivery], *, remember: int = _REMEMBER
    ) -> None:
        self._remember = remember
        self._delivered: OrderedDict[str, None] = OrderedDict()
        # Every channel's deliverer by channel name (agents_bridge.deliver.channel).
        self._channels: dict[str, ChannelDelivery] = dict(channels)

    def delivered(self, event_id: str) -> bool:
        return event_id in self._delivered

    async def handle(self, event: Event) -> None:
        reply = value_of(event, OutboundReply)
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
