"""Telegram Bot API `sendMessage` and `sendChatAction`, answers classified.

- 200 `ok:true`: sent;
- 429: `RetryableError` carrying `parameters.retry_after` (seconds Telegram asked us to wait);
- 5xx, timeouts, connection errors: `RetryableError`;
- any other 4xx (400 chat not found, 403 bot blocked, 401 revoked token): `InvalidEvent`.

The bot token is part of the URL (`/bot<token>/sendMessage`). Neither the token nor that
URL is ever logged or put into an error reason: aiohttp exceptions are reduced to their
type and scrubbed of the token.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from common.errors import InvalidEvent, RetryableError
from common.settings import Secret, Settings
from common.telemetry import CHANNEL_SENDS

TELEGRAM_MAX_CHARS = 4096


class TelegramSender:
    """Calls the Bot API at `settings.telegram_api_base` (a local stand-in in tests)."""

    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        self._session = session
        self._base = settings.telegram_api_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=settings.telegram_timeout_s)

    async def send_message(
        self, token: Secret, chat_id: str, text: str, *, thread_id: str | None = None
    ) -> int:
        """Send one message (at most 4096 characters); returns Telegram's message_id."""
        payload: dict[str, Any] = {"chat_id": _chat_id(chat_id), "text": text}
        if thread_id and thread_id.lstrip("-").isdigit():
            payload["message_thread_id"] = int(thread_id)
        result = await self.call(token, "sendMessage", payload)
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return message_id if isinstance(message_id, int) else 0

    async def send_chat_action(
        self,
        token: Secret,
        chat_id: str,
        action: str = "typing",
        *,
        thread_id: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """`sendChatAction`: Telegram shows it for 5 s or until the bot's next message.

        Not counted in `channel_sends_total` (the caller counts its own outcomes).
        """
        payload: dict[str, Any] = {"chat_id": _chat_id(chat_id), "action": action}
        if thread_id and thread_id.lstrip("-").isdigit():
            payload["message_thread_id"] = int(thread_id)
        await self.call(token, "sendChatAction", payload, timeout_s=timeout_s, count=False)

    async def call(
        self,
        token: Secret,
        method: str,
        payload: dict[str, Any],
        *,
        timeout_s: float | None = None,
        count: bool = True,
    ) -> Any:
        """One Bot API call; returns `result` or raises `RetryableError` / `InvalidEvent`.

        `count=False` keeps the call out of `channel_sends_total` (chat actions).
        """
        url = f"{self._base}/bot{token.value}/{method}"
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        outcome = _Count(count)
        try:
            async with self._session.post(url, json=payload, timeout=timeout) as resp:
                status = resp.status
                raw = await resp.read()
        # `from None` everywhere: an aiohttp cause may print the URL, and so the token.
        except TimeoutError:
            outcome("timeout")
            raise RetryableError("telegram_timeout") from None
        except aiohttp.InvalidURL:
            outcome("rejected")
            raise InvalidEvent("telegram_misconfigured: invalid API URL") from None
        except aiohttp.ClientError as err:
            outcome("connection")
            reason = _scrub(f"{type(err).__name__}: {err}", token)
            raise RetryableError(f"telegram_connection: {reason}") from None
        return _classify(status, raw, token, outcome)


class _Count:
    """Counts one outcome in `channel_sends_total{channel="telegram"}` (or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled

    def __call__(self, outcome: str) -> None:
        if self._enabled:
            CHANNEL_SENDS.labels("telegram", outcome).inc()


def _classify(status: int, raw: bytes, token: Secret, outcome: _Count) -> Any:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if 200 <= status < 300 and body.get("ok") is True:
        outcome("ok")
        return body.get("result")
    description = _scrub(str(body.get("description") or f"HTTP {status}"), token)[:300]
    raw_params = body.get("parameters")
    params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
    if status == 429:
        outcome("rate_limited")
        retry_after = params.get("retry_after")
        wait = float(retry_after) if isinstance(retry_after, int | float) else None
        raise RetryableError(f"telegram_429: {description}", retry_after=wait)
    if status >= 500 or status == 408 or 200 <= status < 300:
        outcome("retryable")
        raise RetryableError(f"telegram_{status}: {description}")
    outcome("rejected")
    if "migrate_to_chat_id" in params:
        description += f" (group migrated to chat {params['migrate_to_chat_id']})"
    raise InvalidEvent(f"telegram_{status}: {description}")


def _chat_id(chat_id: str) -> int | str:
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


def _scrub(text: str, token: Secret) -> str:
    return text.replace(token.value, "***") if token.value else text
