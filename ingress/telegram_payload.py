"""Telegram update → InboundMessage record. Pure: no I/O, no clock, no settings.

`parse_update` decides whether a body is a Telegram update at all (else: 400 malformed).
`normalize` turns an update into the record ingress produces, or says why the update is
ignored: Telegram must get a 200 for those too, or it would deliver them again and hold
back the chat's later updates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from ingress.text import clean

CHANNEL = "telegram"

# Update fields other than `message` (Bot API 10.1); we acknowledge them and drop them.
UPDATE_KINDS = frozenset(
    {
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)


class MalformedUpdate(ValueError):
    """The body is not a Telegram update (not JSON, not an object, no integer update_id)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Update:
    update_id: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Ignored:
    """An update we acknowledge without producing; `reason` is short and bounded."""

    reason: str


def parse_update(body: bytes) -> Update:
    """Parse a webhook body; raises `MalformedUpdate`."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise MalformedUpdate("body is not JSON") from err
    if not isinstance(data, dict):
        raise MalformedUpdate("body is not a JSON object")
    update_id = data.get("update_id")
    if not _is_int(update_id):
        raise MalformedUpdate("update_id is missing or not an integer")
    return Update(update_id, data)


def event_id(bot_id: str, update_id: int) -> str:
    """Stable across Telegram's redeliveries, so every stage can deduplicate on it."""
    return f"{CHANNEL}:{bot_id}:{update_id}"


def normalize(
    update: Update, *, bot_id: str, tenant_id: str, received_at_ms: int
) -> dict[str, Any] | Ignored:
    """The InboundMessage record for a text message, or why the update is ignored."""
    message = update.fields.get("message")
    if message is None:
        kinds = sorted(k for k in update.fields if k != "update_id")
        if not kinds:
            return Ignored("empty_update")
        return Ignored(kinds[0] if kinds[0] in UPDATE_KINDS else "unsupported_update")
    if not isinstance(message, dict):
        return Ignored("malformed_message")
    text = message.get("text")
    if not isinstance(text, str) or not text:
        return Ignored("no_text")  # stickers, photos, voice, service messages...
    chat = message.get("chat")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not _is_int(chat_id):
        return Ignored("malformed_message")
    sender = message.get("from")
    if not isinstance(sender, dict):
        sender = message.get("sender_chat")  # anonymous group admins, channels
    if not isinstance(sender, dict) or not _is_int(sender.get("id")):
        return Ignored("no_sender")
    if sender.get("is_bot") is True:
        return Ignored("from_bot")  # never let two tenants' bots talk to each other forever

    route = {"chat_id": str(chat_id), "bot_id": bot_id}
    thread = message.get("message_thread_id")
    if _is_int(thread):
        route["message_thread_id"] = str(thread)
    message_id = message.get("message_id")
    return {
        "event_id": event_id(bot_id, update.update_id),
        "tenant_id": tenant_id,
        "channel": CHANNEL,
        "conversation_id": str(chat_id),
        "sender_id": str(sender["id"]),
        "sender_name": _display_name(sender),
        "text": clean(text),
        "received_at": received_at_ms,
        "channel_message_id": str(message_id) if _is_int(message_id) else None,
        "reply_route": route,
    }


def _display_name(sender: Mapping[str, Any]) -> str | None:
    """'First Last', else the username, else a chat's title; None when there is none."""
    first, last = sender.get("first_name"), sender.get("last_name")
    if isinstance(first, str) and first:
        full = f"{first} {last}" if isinstance(last, str) and last else first
        return clean(full)
    for name in ("username", "title"):
        value = sender.get(name)
        if isinstance(value, str) and value:
            return clean(value)
    return None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
