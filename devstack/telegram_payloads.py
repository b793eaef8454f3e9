"""Telegram Bot API webhook payloads and bot tokens, shaped like Telegram's.

`update` is what Telegram POSTs for a private text message; `bot_token` makes a token of
Telegram's form (`<bot id>:<35 characters>`). The twin of `devstack.whatsapp_payloads`,
for the tests, `make chaos` and the stand-ins; imports nothing of the project.
"""

from __future__ import annotations

import secrets
from typing import Any

#: The message date of updates built without one (2026-11-18, a fixed moment).
DATE = 1795360321


def bot_token() -> str:
    """A fresh token of Telegram's shape: a 10-digit bot id, a colon, 35 characters."""
    return f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(26)[:35]}"


def update(update_id: int, chat_id: int, text: str, *, date: int = DATE) -> dict[str, Any]:
    """An update carrying a private text message from user `chat_id`."""
    chat = {"id": chat_id, "type": "private", "first_name": "U"}
    message = {"message_id": update_id, "date": date, "text": text, "chat": chat}
    return {
        "update_id": update_id,
        "message": {**message, "from": {"id": chat_id, "is_bot": False, "first_name": "U"}},
    }
