"""WhatsApp Cloud API notification → records to produce. Pure: no I/O, no clock, no settings.

`parse_notification` checks the envelope (`object`, `entry[].changes[]`) and keeps the
`messages` changes with their `metadata.phone_number_id`: that is all ingress reads before
the signature is verified, to find the binding (and so the app secret) to verify with.

`normalize` turns one verified change into what goes to Kafka:

- a text message (also a quick-reply `button` or an `interactive` reply, which carry
  text) → an InboundMessage for messages.inbound;
- any other message type (image, audio, location...) → a ChannelStatus `received` (the
  record) and, unless it is a reaction or a system message, an OutboundReply with a
  "not supported yet" notice on messages.outbound;
- each `statuses[]` entry (sent, delivered, read, failed) → a ChannelStatus.

Every output carries its dedup key: `(wamid, -1)` for a message, `(wamid, rank)` for a
status, stable across Meta's redeliveries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ingress.text import MAX_EPOCH_S, clean

CHANNEL = "whatsapp"
OBJECT = "whatsapp_business_account"
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
MESSAGE_KEY = -1  # the dedup key's second half for inbound messages
# Recorded, but answering them would be noise: a reaction, a number change notice.
NO_NOTICE_TYPES = frozenset({"reaction", "system"})
NOTICE_AGENT = "platform"
_PHONE_NUMBER_ID = re.compile(r"[0-9]{1,32}")
_WA_ID = re.compile(r"[0-9]{1,32}")
_TYPE = re.compile(r"[a-z_]{1,32}")

Kind = Literal["inbound", "notice", "status"]


class MalformedNotification(ValueError):
    """The body is not a WhatsApp Business Account notification."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Change:
    """One `messages` change, for one business phone number."""

    phone_number_id: str
    value: Mapping[str, Any]


@dataclass(frozen=True)
class Notification:
    changes: tuple[Change, ...]

    @property
    def phone_number_ids(self) -> list[str]:
        return sorted({c.phone_number_id for c in self.changes})


@dataclass(frozen=True)
class Output:
    """One record to produce; `dedup` identifies it across redeliveries."""

    kind: Kind
    dedup: tuple[str, int]
    record: dict[str, Any]


def parse_notification(body: bytes) -> Notification:
    """Parse a webhook body; raises `MalformedNotification`. Acts on nothing."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise MalformedNotification("body is not JSON") from err
    if not isinstance(data, dict) or data.get("object") != OBJECT:
        raise MalformedNotification(f"not a {OBJECT} notification")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedNotification("entry is not a list")
    changes = []
    for entry in entries:
        raw_changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(raw_changes, list):
            raise MalformedNotification("entry without a changes list")
        for change in raw_changes:
            if not isinstance(change, dict) or change.get("field") != "messages":
                continue  # account_update, template status...: not routed here
            value = change.get("value")
            metadata = value.get("metadata") if isinstance(value, dict) else None
            pnid = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if not isinstance(pnid, str) or not _PHONE_NUMBER_ID.fullmatch(pnid):
                raise MalformedNotification("messages change without a phone_number_id")
            assert isinstance(value, dict)
            changes.append(Change(pnid, value))
    return Notification(tuple(changes))


def event_id(phone_number_id: str, wamid: str) -> str:
    """The inbound event id: stable across Meta's redeliveries of the message."""
    return f"{CHANNEL}:{phone_number_id}:{wamid}"


def normalize(
    change: Change, *, tenant_id: str, received_at_ms: int, notify: bool, notice_text: str
) -> tuple[list[Output], list[str]]:
    """The records of one verified change, and the reasons of what it ignored."""
    outputs: list[Output] = []
    ignored: list[str] = []
    names = _contact_names(change.value.get("contacts"))
    for message in _list(change.value.get("messages")):
        out = _message(change.phone_number_id, message, names, tenant_id, received_at_ms)
        if isinstance(out, str):
            ignored.append(out)
            continue
        outputs.extend(out)
        if out[0].kind == "status" and notify and out[0].record["kind"] not in NO_NOTICE_TYPES:
            outputs.append(_notice(out[0].record, notice_text, received_at_ms))
    for status in _list(change.value.get("statuses")):
        got = _status(change.phone_number_id, status, tenant_id, received_at_ms)
        if isinstance(got, str):
            ignored.append(got)
        else:
            outputs.append(got)
    if _list(change.value.get("errors")):
        ignored.append("provider_errors")
    return outputs, ignored


def _message(
    pnid: str, message: Any, names: Mapping[str, str], tenant_id: str, now_ms: int
) -> list[Output] | str:
    if not isinstance(message, dict):
        return "malformed_message"
    wamid, sender, kind = message.get("id"), message.get("from"), message.get("type")
    if not isinstance(wamid, str) or not isinstance(sender, str):
        return "malformed_message"
    if not _is_wamid(wamid) or not _WA_ID.fullmatch(sender):
        return "malformed_message"
    if not isinstance(kind, str) or not _TYPE.fullmatch(kind):
        kind = "unknown"
    text = _text_of(message, kind)
    if text is not None:
        if not text.strip():
            return "empty_text"
        record = {
            "event_id": event_id(pnid, wamid),
            "tenant_id": tenant_id,
            "channel": CHANNEL,
            "conversation_id": sender,
            "sender_id": sender,
            "sender_name": names.get(sender),
            "text": clean(text),
            "received_at": now_ms,
            "channel_message_id": wamid,
            "reply_route": {"phone_number_id": pnid, "to": sender, "message_id": wamid},
        }
        return [Output("inbound", (wamid, MESSAGE_KEY), record)]
    code, title = _first_error(message.get("errors"))
    status: dict[str, Any] = {
        "event_id": f"{CHANNEL}:{wamid}:received",
        "tenant_id": tenant_id,
        "channel": CHANNEL,
        "account_id": pnid,
        "message_id": wamid,
        "direction": "in",
        "status": "received",
        "counterpart": sender,
        "kind": kind,
        "reply_event_id": None,
        "chunk": None,
        "error_code": code,
        "error_title": title,
        "details": {},
        "occurred_at": _timestamp_ms(message.get("timestamp"), now_ms),
    }
    return [Output("status", (wamid, MESSAGE_KEY), status)]


def _notice(received: Mapping[str, Any], text: str, now_ms: int) -> Output:
    pnid, wamid, sender = received["account_id"], received["message_id"], received["counterpart"]
    record = {
        "event_id": f"notice:{event_id(pnid, wamid)}",
        "in_reply_to": event_id(pnid, wamid),
        "tenant_id": received["tenant_id"],
        "channel": CHANNEL,
        "conversation_id": sender,
        "text": text.format(kind=received["kind"].replace("_", " ")),
        "reply_route": {
            "phone_number_id": pnid,
            "to": sender,
            "message_id": wamid,
            "kind": "notice",
        },
        "agent_id": NOTICE_AGENT,
        "gateway_response_id": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "created_at": now_ms,
    }
    return Output("notice", (wamid, MESSAGE_KEY), record)


def _status(pnid: str, status: Any, tenant_id: str, now_ms: int) -> Output | str:
    if not isinstance(status, dict):
        return "malformed_status"
    wamid, name, recipient = status.get("id"), status.get("status"), status.get("recipient_id")
    if not isinstance(wamid, str) or not isinstance(recipient, str) or not isinstance(name, str):
        return "malformed_status"
    if not _is_wamid(wamid) or not recipient:
        return "malformed_status"
    if name not in STATUS_RANK:
        return "unknown_status"
    details: dict[str, str] = {}
    pricing = status.get("pricing")
    if isinstance(pricing, dict):
        details.update(
            {clean(f"pricing_{k}"): clean(str(v)) for k, v in pricing.items() if _scalar(v)}
        )
    conversation = status.get("conversation")
    if isinstance(conversation, dict) and _scalar(conversation.get("id")):
        details["conversation_id"] = clean(str(conversation["id"]))
    code, title = _first_error(status.get("errors"))
    record = {
        "event_id": f"{CHANNEL}:{wamid}:{name}",
        "tenant_id": tenant_id,
        "channel": CHANNEL,
        "account_id": pnid,
        "message_id": wamid,
        "direction": "out",
        "status": name,
        "counterpart": clean(recipient[:64]),
        "kind": None,
        "reply_event_id": None,
        "chunk": None,
        "error_code": code,
        "error_title": title,
        "details": details,
        "occurred_at": _timestamp_ms(status.get("timestamp"), now_ms),
    }
    return Output("status", (wamid, STATUS_RANK[name]), record)


def _text_of(message: Mapping[str, Any], kind: str) -> str | None:
    """The text a message carries, or None when its type has none."""
    content = message.get(kind)
    if not isinstance(content, dict):
        return None
    if kind == "text":
        body = content.get("body")
    elif kind == "button":  # a template's quick-reply button
        body = content.get("text")
    elif kind == "interactive":  # a reply button or a list row
        reply = content.get("button_reply") or content.get("list_reply")
        body = reply.get("title") if isinstance(reply, dict) else None
    else:
        return None
    return body if isinstance(body, str) else None


def _contact_names(contacts: Any) -> dict[str, str]:
    names = {}
    for contact in _list(contacts):
        if not isinstance(contact, dict):
            continue
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        if isinstance(contact.get("wa_id"), str) and isinstance(name, str) and name:
            names[contact["wa_id"]] = clean(name)[:200]
    return names


def _first_error(errors: Any) -> tuple[str | None, str | None]:
    for error in _list(errors):
        if isinstance(error, dict) and _scalar(error.get("code")):
            title = error.get("title") or error.get("message")
            return clean(str(error["code"])), clean(str(title))[:300] if title else None
    return None, None


def _timestamp_ms(raw: Any, default: int) -> int:
    """Meta's `timestamp` is a string of Unix seconds; anything else (other digits than
    ASCII ones, past the year 9999) is not a time: `default`."""
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 12:
        seconds = int(raw)
        if seconds <= MAX_EPOCH_S:
            return seconds * 1000
    return default


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_wamid(value: str) -> bool:
    return 0 < len(value) <= 256 and value.isprintable()


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not isinstance(value, dict)
