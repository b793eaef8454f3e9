"""WhatsApp Cloud API webhook payloads, shaped like Meta's (research/protocols.md §2).

Builders for what Meta POSTs to a webhook: text and other inbound messages, and
delivery statuses, each wrapped in the `whatsapp_business_account` envelope. `sign`
computes the `X-Hub-Signature-256` header over the exact bytes sent. Used by the Graph
API stand-in (`devstack.graph_api`), the tests and `make run`; imports nothing of the
project, like the rest of devstack.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
WABA_ID = "102290129340398"


def sign(body: bytes, app_secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of body keyed with the app secret>`."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode(payload: dict[str, Any]) -> bytes:
    """The bytes to POST (and to sign): compact JSON, as Meta sends."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def new_wamid() -> str:
    """A message id in Meta's format (`wamid.` + base64 of an opaque id)."""
    raw = b"\x15\x02\x00\x11\x18\x12" + secrets.token_hex(10).upper().encode()
    return "wamid." + base64.b64encode(raw).decode().rstrip("=")


def envelope(
    phone_number_id: str,
    value: dict[str, Any],
    *,
    display_phone_number: str = "15550783881",
    waba_id: str = WABA_ID,
) -> dict[str, Any]:
    """One `messages` change for one business number, in the notification envelope."""
    full = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": full}]}],
    }


def inbound_message(
    phone_number_id: str,
    sender: str,
    message_type: str,
    content: dict[str, Any],
    *,
    wamid: str | None = None,
    name: str = "Sheena Nelson",
    timestamp: int | None = None,
    **envelope_kw: Any,
) -> dict[str, Any]:
    """A message of any type from `sender` (a wa_id) to the business number."""
    message = {
        "from": sender,
        "id": wamid or new_wamid(),
        "timestamp": str(int(timestamp if timestamp is not None else time.time())),
        "type": message_type,
        message_type: content,
    }
    value = {
        "contacts": [{"profile": {"name": name}, "wa_id": sender}],
        "messages": [message],
    }
    return envelope(phone_number_id, value, **envelope_kw)


def text_message(phone_number_id: str, sender: str, text: str, **kw: Any) -> dict[str, Any]:
    """A text message, the shape protocols.md quotes."""
    return inbound_message(phone_number_id, sender, "text", {"body": text}, **kw)


def image_message(phone_number_id: str, sender: str, **kw: Any) -> dict[str, Any]:
    """An image message (media arrive as ids to download, never inline)."""
    content = {
        "caption": "look at this",
        "mime_type": "image/jpeg",
        "sha256": "IRo0Hr8cTK2k3jmK/gAXb1dmsuIzX7o9kKa0VeVXfbI=",
        "id": "1489025385573210",
    }
    return inbound_message(phone_number_id, sender, "image", content, **kw)


def status_update(
    phone_number_id: str,
    wamid: str,
    status: str,
    recipient: str,
    *,
    timestamp: int | None = None,
    error_code: int | None = None,
    error_title: str = "",
    **envelope_kw: Any,
) -> dict[str, Any]:
    """A `statuses[]` notification (sent, delivered, read or failed) for an outbound wamid."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(timestamp if timestamp is not None else time.time())),
        "recipient_id": recipient,
    }
    if status != "failed":
        entry["conversation"] = {
            "id": hashlib.sha256(f"{phone_number_id}:{recipient}".encode()).hexdigest()[:32],
            "origin": {"type": "service"},
        }
        entry["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    if error_code is not None:
        entry["errors"] = [
            {
                "code": error_code,
                "title": error_title or "Message failed",
                "message": error_title or "Message failed",
                "error_data": {"details": error_title or "Message failed"},
            }
        ]
    return envelope(phone_number_id, {"statuses": [entry]}, **envelope_kw)
