"""HTTP client for a tenant's OpenClaw gateway (`POST /v1/chat/completions`, non-streaming).

Contract (research/openclaw.md §2): `Authorization: Bearer <token>`, the agent chosen by
`model: "openclaw/<agent_id>"`, the conversation kept by `user` (the gateway turns it
into session `agent:<id>:openai-user:<user>`), and only the new user message is sent.

Every answer is classified once:

- 2xx with a message: the reply;
- 400/401/403/404 and other 4xx: `GatewayRejected` (an `InvalidEvent`: retrying cannot
  help), carrying the gateway's `error.message`;
- 408, 429, 5xx, timeouts, connection errors: retryable. This includes the 500 the
  gateway returns when two first turns of a *new* session race (SessionWorkStartChanged).

`GatewayClient.complete` retries the retryable ones under a `RetryPolicy`
(`settings.gateway_attempts`) and then raises `GatewayUnavailable`. Error texts never
contain the bearer token.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from common.errors import InvalidEvent, RetryableError
from common.retry import RetryPolicy
from common.settings import Secret, Settings
from common.telemetry import GATEWAY_ERRORS, GATEWAY_SECONDS

_RETRYABLE_4XX = frozenset({408, 429})
_MAX_REASON = 300


@dataclass(frozen=True)
class GatewayTarget:
    """Where one tenant's agent lives."""

    url: str
    token: Secret
    agent_id: str


@dataclass(frozen=True)
class GatewayReply:
    """What the agent answered to one user message."""

    text: str
    response_id: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None


class GatewayRejected(InvalidEvent):
    """The gateway refused the request for good (bad token, unknown agent, bad request)."""


class GatewayUnavailable(RetryableError):
    """The gateway did not answer usefully within the allowed attempts."""


def session_user(tenant_id: str, channel: str, conversation_id: str) -> str:
    """The `user` field: one gateway session per tenant, channel and conversation."""
    return f"{tenant_id}:{channel}:{conversation_id}"


class GatewayClient:
    """Sends one user message to a gateway and returns the agent's reply."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: Settings,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=settings.gateway_timeout_s)
        self._policy = policy or RetryPolicy(attempts=settings.gateway_attempts, base_s=1.0)

    async def complete(self, target: GatewayTarget, *, user: str, text: str) -> GatewayReply:
        """Ask the agent; raises `GatewayRejected` or, after all attempts, `GatewayUnavailable`."""

        async def attempt(_n: int) -> GatewayReply:
            return await self.request(target, user=user, text=text)

        return await self._policy.run(attempt)

    async def request(self, target: GatewayTarget, *, user: str, text: str) -> GatewayReply:
        """One HTTP attempt, classified; no retries."""
        body = {
            "model": f"openclaw/{target.agent_id}",
            "user": user,
            "messages": [{"role": "user", "content": text}],
        }
        headers = {"Authorization": f"Bearer {target.token.value}"}
        url = target.url.rstrip("/") + "/v1/chat/completions"
        started = time.perf_counter()
        outcome = "retryable"
        try:
            async with self._session.post(
                url, json=body, headers=headers, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
            reply = _classify(status, raw, target.token)
            outcome = "ok"
            return reply
        except GatewayRejected:
            outcome = "permanent"
            raise
        except GatewayUnavailable:
            raise
        except TimeoutError as err:
            GATEWAY_ERRORS.labels("timeout").inc()
            raise GatewayUnavailable("gateway timeout") from err
        except aiohttp.InvalidURL as err:
            outcome = "permanent"
            GATEWAY_ERRORS.labels("bad_url").inc()
            raise GatewayRejected("gateway_misconfigured: invalid gateway URL") from err
        except aiohttp.ClientError as err:
            GATEWAY_ERRORS.labels("connection").inc()
            reason = _scrub(f"{type(err).__name__}: {err}", target.token)
            raise GatewayUnavailable(f"gateway connection failed ({reason})") from err
        finally:
            GATEWAY_SECONDS.labels(outcome).observe(time.perf_counter() - started)


def _classify(status: int, raw: bytes, token: Secret) -> GatewayReply:
    data = _json(raw)
    if 200 <= status < 300:
        reply = _parse_reply(data)
        if reply is None:
            GATEWAY_ERRORS.labels("bad_response").inc()
            raise GatewayRejected("gateway_bad_response: no choices[0].message.content")
        return reply
    message = _scrub(_error_message(data, raw), token)
    if status in _RETRYABLE_4XX or status >= 500:
        GATEWAY_ERRORS.labels(f"http_{status}" if status < 600 else "http_other").inc()
        raise GatewayUnavailable(f"gateway {status}: {message}")
    GATEWAY_ERRORS.labels("rejected").inc()
    raise GatewayRejected(f"gateway_rejected: {status} {message}")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _parse_reply(data: Any) -> GatewayReply | None:
    if not isinstance(data, dict):
        return None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(content, str):
        return None
    raw_usage = data.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    return GatewayReply(
        text=content,
        response_id=_str_or_none(data.get("id")),
        model=_str_or_none(data.get("model")),
        input_tokens=_int_or_none(usage.get("prompt_tokens")),
        output_tokens=_int_or_none(usage.get("completion_tokens")),
    )


def _error_message(data: Any, raw: bytes) -> str:
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:_MAX_REASON]
    return raw[:_MAX_REASON].decode("utf-8", "replace").strip() or "(empty body)"


def _scrub(text: str, token: Secret) -> str:
    """Remove the bearer token from a text that may echo the request."""
    return text.replace(token.value, "***") if token.value else text


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


__all__ = [
    "GatewayClient",
    "GatewayRejected",
    "GatewayReply",
    "GatewayTarget",
    "GatewayUnavailable",
    "session_user",
]
