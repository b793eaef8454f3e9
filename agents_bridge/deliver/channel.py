"""The channel contract: each channel of the delivery process plugs in without editing others.

`ChannelDelivery` delivers one `messages.outbound` reply on its channel (Telegram,
WhatsApp, email...). `Delivery(channels={"telegram": TelegramDelivery(...), "whatsapp":
WhatsAppDelivery(...), "email": EmailSender(...)})` routes each reply by its `channel`; a
channel without an entry is dead-lettered `channel_not_supported_yet`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class ChannelDelivery(Protocol):
    """Sends one reply; raises `InvalidEvent` (dead-letter) or a retryable error."""

    async def deliver(self, reply: Mapping[str, Any]) -> None: ...
