"""WhatsApp Cloud API `POST {base}/{version}/{phone_number_id}/messages`, every answer classified.

- 2xx with `messages[0].id`: sent; returns the wamid;
- code 131047 (the 24-hour customer-service window is closed): `WindowClosed`, so the
  caller can fall back to the tenant's approved template;
- rate limits, codes 130429 (throughput), 131056 (pair rate), 80007 (WABA) and 4 (app):
  `RateLimited` (a `RetryableError`) carrying how long to back off;
- 5xx, 408, codes 1, 2, 131000, 131016, 133004, timeouts, connection errors: `RetryableError`;
- anything else (190 expired token, 100 bad parameter, 131026 undeliverable, 131048 spam
  limit, 132xxx template errors...): `InvalidEvent("whatsapp_<code>: <message>")`.

The access token travels only in the `Authorization` header; error texts are scrubbed of
it anyway. Meta's error-code reference: research/protocols.md §2.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from common.errors import InvalidEvent, RetryableError
from common.settings import Secret, Settings
from common.telemetry import CHANNEL_SENDS

CHANNEL = "whatsapp"
MAX_TEXT = 4096
WINDOW_CLOSED = 131047
# Seconds to back off per rate-limit code (Graph sends no Retry-After). Pair rate is about
# one message per 6 s per recipient; WABA and app limits are hourly, so wait longer.
RATE_LIMIT_WAIT_S = {130429: 2.0, 131056: 6.0, 80007: 60.0, 4: 60.0}
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
_NO_TOKEN = Secret("")


class WindowClosed(InvalidEvent):
    """131047: more than 24 hours since the user last wrote; only templates may go out."""


class RateLimited(RetryableError):
    """A Graph rate limit: back off `retry_after` seconds, then try again."""


class GraphClient:
    """Calls the Graph API at `settings.whatsapp_graph_base` (a local stand-in in tests)."""

    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        self._session = session
        self._base = f"{settings.whatsapp_graph_base.rstrip('/')}/{settings.whatsapp_api_version}"
        self._timeout = aiohttp.ClientTimeout(total=settings.whatsapp_timeout_s)

    async def send(self, token: Secret, phone_number_id: str, payload: dict[str, Any]) -> str:
        """POST one message; returns its wamid or raises (see the module's docstring)."""
        url = f"{self._base}/{phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {token.value}"}
        try:
            async with self._session.post(
                url, json=payload, headers=headers, timeout=self._timeout
            ) as resp:
                status = resp.status
                raw = await resp.read()
        # `from None`: never chain an aiohttp error that could carry request details.
        except TimeoutError:
            CHANNEL_SENDS.labels(CHANNEL, "timeout").inc()
            raise RetryableError("whatsapp_timeout") from None
        except aiohttp.InvalidURL:
            CHANNEL_SENDS.labels(CHANNEL, "rejected").inc()
            raise InvalidEvent("whatsapp_misconfigured: invalid Graph API URL") from None
        except aiohttp.ClientError as err:
            CHANNEL_SENDS.labels(CHANNEL, "connection").inc()
            reason = _scrub(f"{type(err).__name__}: {err}", token)
            raise RetryableError(f"whatsapp_connection: {reason}") from None
        return classify(status, raw, token)


def classify(status: int, raw: bytes, token: Secret = _NO_TOKEN) -> str:
    """The wamid of a successful answer, else the exception its error code means."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if 200 <= status < 300:
        wamid = _wamid(body)
        if wamid:
            CHANNEL_SENDS.labels(CHANNEL, "ok").inc()
            return wamid
        CHANNEL_SENDS.labels(CHANNEL, "retryable").inc()
        raise RetryableError(f"whatsapp_{status}: answer without a message id")
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    assert isinstance(error, dict)
    code = error.get("code") if isinstance(error.get("code"), int) else None
    message = _describe(error, status, token)
    if code == WINDOW_CLOSED:
        CHANNEL_SENDS.labels(CHANNEL, "window_closed").inc()
        raise WindowClosed(f"whatsapp_{code}: {message}")
    if code in RATE_LIMIT_WAIT_S or (code is None and status == 429):
        CHANNEL_SENDS.labels(CHANNEL, "rate_limited").inc()
        wait = RATE_LIMIT_WAIT_S.get(code or 130429)
        raise RateLimited(f"whatsapp_{code or status}: {message}", retry_after=wait)
    if code in TRANSIENT_CODES or status >= 500 or status == 408:
        CHANNEL_SENDS.labels(CHANNEL, "retryable").inc()
        raise RetryableError(f"whatsapp_{code or status}: {message}")
    CHANNEL_SENDS.labels(CHANNEL, "rejected").inc()
    raise InvalidEvent(f"whatsapp_{code or status}: {message}")


def _wamid(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    wamid = first.get("id") if isinstance(first, dict) else None
    return wamid if isinstance(wamid, str) and wamid else None


def _describe(error: dict[str, Any], status: int, token: Secret) -> str:
    text = str(error.get("message") or f"HTTP {status}")
    data = error.get("error_data")
    if isinstance(data, dict) and data.get("details"):
        text += f" ({data['details']})"
    return _scrub(text, token)[:300]


def _scrub(text: str, token: Secret) -> str:
    return text.replace(token.value, "***") if token.value else text
