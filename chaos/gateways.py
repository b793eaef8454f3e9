"""Many tenants' OpenClaw gateways on one port, each recording what reached it.

Each tenant gets its own base URL, `http://127.0.0.1:<port>/gw/<name>`, and its own
bearer token; `POST /gw/<name>/v1/chat/completions` answers like an OpenClaw gateway
(research/openclaw.md §2: an OpenAI `chat.completion`) with `reply <name>: <text>`, so a
reply names the gateway that wrote it. A request with another tenant's token is refused
(401) and recorded as such. Per gateway a mode can be set while running: `ok`, `hang`
(the request never gets an answer) or `fail` (500). Used by the isolation and secrets
tests and by the chaos harness.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from devstack._proc import free_port

Mode = Literal["ok", "hang", "fail"]
_HERE: web.AppKey[StubGateways] = web.AppKey("stub_gateways")


@dataclass(frozen=True)
class GatewayCall:
    gateway: str
    authorized: bool
    model: str
    user: str
    text: str
    at: float  # time.monotonic() on arrival


@dataclass
class _Gateway:
    token: str
    mode: Mode = "ok"
    calls: list[GatewayCall] = field(default_factory=list)


class StubGateways:
    """The gateways of every tenant of a run; `add()` one per tenant before use."""

    def __init__(self) -> None:
        self._gateways: dict[str, _Gateway] = {}
        self._runner: web.AppRunner | None = None
        self._hung: asyncio.Event = asyncio.Event()  # never set: hung requests wait on it
        self.base = ""

    def add(self, name: str, token: str) -> str:
        """Register a gateway; returns its base URL (valid once started)."""
        self._gateways[name] = _Gateway(token)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.base}/gw/{name}"

    def gateway(self, name: str) -> _Gateway | None:
        return self._gateways.get(name)

    async def hang(self) -> None:
        """What a hung gateway does: never answer (until the server stops)."""
        await self._hung.wait()

    def set_mode(self, name: str, mode: Mode) -> None:
        self._gateways[name].mode = mode

    def calls(self, name: str | None = None) -> list[GatewayCall]:
        if name is not None:
            return list(self._gateways[name].calls)
        return [c for g in self._gateways.values() for c in g.calls]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app[_HERE] = self
        app.router.add_post("/gw/{name}/v1/chat/completions", _completions)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        port = port or free_port()
        await web.TCPSite(self._runner, host, port).start()
        self.base = f"http://{host}:{port}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _completions(request: web.Request) -> web.Response:
    here = request.app[_HERE]
    name = request.match_info["name"]
    gateway = here.gateway(name)
    if gateway is None:
        return web.json_response({"error": {"message": "no such gateway"}}, status=404)
    body: dict[str, Any] = await request.json()
    messages = body.get("messages") or [{}]
    text = str(messages[-1].get("content", ""))
    authorized = request.headers.get("Authorization") == f"Bearer {gateway.token}"
    gateway.calls.append(
        GatewayCall(
            gateway=name,
            authorized=authorized,
            model=str(body.get("model", "")),
            user=str(body.get("user", "")),
            text=text,
            at=time.monotonic(),
        )
    )
    if not authorized:
        return web.json_response({"error": {"message": "invalid token"}}, status=401)
    if gateway.mode == "hang":
        await here.hang()
    if gateway.mode == "fail":
        return web.json_response({"error": {"message": "stub failure"}}, status=500)
    return web.json_response(
        {
            "id": f"chatcmpl-{name}-{len(gateway.calls)}",
            "object": "chat.completion",
            "model": body.get("model", "stub"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"reply {name}: {text}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )
