"""GatewayClient against a scripted OpenClaw-like HTTP server (pytest-aiohttp)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agents_bridge.forward.gateway_client import (
    GatewayClient,
    GatewayRejected,
    GatewayTarget,
    GatewayUnavailable,
    session_user,
)
from common.errors import InvalidEvent, RetryableError
from common.retry import RetryPolicy
from common.settings import Secret, Settings
from tests.agents_bridge.bridge_fakes import GATEWAY_TOKEN
from tests.fakes import FakeClock

OK_BODY = {
    "id": "chatcmpl_cb42",
    "object": "chat.completion",
    "created": 1795360321,
    "model": "openclaw/agent-a",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "STUB-REPLY #1"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
}

HANG: tuple[int, Any] = (0, {})  # script entry: never answer


def error(status: int, message: str, kind: str = "invalid_request_error") -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": kind}}


@dataclass
class ScriptedGateway:
    """Answers each request with the next scripted (status, body); records requests."""

    script: list[tuple[int, Any]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                "json": await request.json(),
            }
        )
        status, body = self.script.pop(0) if self.script else (200, OK_BODY)
        if (status, body) == HANG:
            await self.release.wait()
            status, body = 200, OK_BODY
        return web.json_response(body, status=status)


ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def gateway(aiohttp_server: ServerFactory) -> AsyncIterator[ScriptedGateway]:
    scripted = ScriptedGateway(script=[])
    app = web.Application()
    app.router.add_post("/v1/chat/completions", scripted.handle)
    server = await aiohttp_server(app)
    scripted.url = str(server.make_url("/"))
    yield scripted
    scripted.release.set()  # let hung handlers finish before the server closes


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(
    http: aiohttp.ClientSession, clock: FakeClock, *, attempts: int = 3, timeout: float = 5.0
) -> GatewayClient:
    settings = Settings(gateway_attempts=attempts, gateway_timeout_s=timeout)
    policy = RetryPolicy(attempts=attempts, clock=clock, rand=lambda: 0.5)
    return GatewayClient(http, settings, policy=policy)


def target(url: str) -> GatewayTarget:
    return GatewayTarget(url=url, token=Secret(GATEWAY_TOKEN), agent_id="agent-a")


async def test_ok_sends_the_contract_and_parses_the_reply(
    gateway: ScriptedGateway, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    user = session_user("t-1", "telegram", "42")
    reply = await client(http, clock).complete(target(gateway.url), user=user, text="hi there")
    assert reply.text == "STUB-REPLY #1"
    assert reply.response_id == "chatcmpl_cb42"
    assert reply.model == "openclaw/agent-a"
    assert (reply.input_tokens, reply.output_tokens) == (11, 7)
    [req] = gateway.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == f"Bearer {GATEWAY_TOKEN}"
    assert req["json"] == {
        "model": "openclaw/agent-a",
        "user": "t-1:telegram:42",
        "messages": [{"role": "user", "content": "hi there"}],
    }
    assert clock.sleeps == []


async def test_reply_without_usage(gateway: ScriptedGateway, http: aiohttp.ClientSession) -> None:
    body = {k: v for k, v in OK_BODY.items() if k not in ("usage", "model")}
    gateway.script = [(200, body)]
    reply = await client(http, FakeClock()).complete(target(gateway.url), user="u", text="x")
    assert (reply.input_tokens, reply.output_tokens, reply.model) == (None, None, None)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_4xx_is_permanent_and_not_retried(
    gateway: ScriptedGateway, http: aiohttp.ClientSession, status: int
) -> None:
    clock = FakeClock()
    gateway.script = [error(status, "Unknown agent 'agent-a'.")]
    with pytest.raises(GatewayRejected) as info:
        await client(http, clock).complete(target(gateway.url), user="u", text="x")
    assert isinstance(info.value, InvalidEvent)
    assert info.value.reason == f"gateway_rejected: {status} Unknown agent 'agent-a'."
    assert len(gateway.requests) == 1
    assert clock.sleeps == []


async def test_error_text_never_carries_the_token(
    gateway: ScriptedGateway, http: aiohttp.ClientSession
) -> None:
    gateway.script = [error(401, f"bad bearer {GATEWAY_TOKEN}", "unauthorized")]
    with pytest.raises(GatewayRejected) as info:
        await client(http, FakeClock()).complete(target(gateway.url), user="u", text="x")
    assert GATEWAY_TOKEN not in info.value.reason
    assert GATEWAY_TOKEN not in str(info.value)


async def test_500_on_a_first_turn_then_ok(
    gateway: ScriptedGateway, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    gateway.script = [error(500, "internal error", "api_error")]
    reply = await client(http, clock).complete(target(gateway.url), user="u", text="x")
    assert reply.text == "STUB-REPLY #1"
    assert len(gateway.requests) == 2
    assert clock.sleeps == [0.5]  # RetryPolicy base, no jitter with rand 0.5


@pytest.mark.parametrize("status", [408, 429, 502, 503])
async def test_retryable_statuses_exhaust_the_attempts(
    gateway: ScriptedGateway, http: aiohttp.ClientSession, status: int
) -> None:
    clock = FakeClock()
    gateway.script = [error(status, "upstream provider error", "api_error")] * 3
    with pytest.raises(GatewayUnavailable) as info:
        await client(http, clock, attempts=3).complete(target(gateway.url), user="u", text="x")
    assert isinstance(info.value, RetryableError)
    assert info.value.reason == f"gateway {status}: upstream provider error"
    assert len(gateway.requests) == 3
    assert clock.sleeps == [0.5, 1.0]


async def test_timeout_is_retryable(gateway: ScriptedGateway, http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    gateway.script = [HANG, HANG]
    gw = client(http, clock, attempts=2, timeout=0.05)
    with pytest.raises(GatewayUnavailable, match="timeout"):
        await gw.complete(target(gateway.url), user="u", text="x")
    assert len(gateway.requests) == 2
    assert len(clock.sleeps) == 1


async def test_timeout_then_ok(gateway: ScriptedGateway, http: aiohttp.ClientSession) -> None:
    gateway.script = [HANG]
    gw = client(http, FakeClock(), attempts=2, timeout=0.05)
    reply = await gw.complete(target(gateway.url), user="u", text="x")
    assert reply.text == "STUB-REPLY #1"


async def test_connection_refused_is_retryable(http: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = FakeClock()
    with pytest.raises(GatewayUnavailable, match="connection failed"):
        await client(http, clock, attempts=2).complete(
            target(f"http://127.0.0.1:{port}"), user="u", text="x"
        )
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("body", [{"choices": []}, {"id": "x"}, "not json", {"choices": [{}]}])
async def test_2xx_without_a_message_is_permanent(
    gateway: ScriptedGateway, http: aiohttp.ClientSession, body: Any
) -> None:
    gateway.script = [(200, body)]
    with pytest.raises(GatewayRejected, match="gateway_bad_response"):
        await client(http, FakeClock()).complete(target(gateway.url), user="u", text="x")
    assert len(gateway.requests) == 1


async def test_trailing_slash_in_gateway_url(
    gateway: ScriptedGateway, http: aiohttp.ClientSession
) -> None:
    url = gateway.url.rstrip("/") + "/"
    await client(http, FakeClock()).complete(target(url), user="u", text="x")
    assert gateway.requests[0]["path"] == "/v1/chat/completions"
