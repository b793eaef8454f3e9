"""The Graph API stand-in answers like the WhatsApp Cloud API and posts signed statuses back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devstack import whatsapp_payloads as wa
from devstack.graph_api import GraphApiStandIn

PNID, TOKEN, SECRET, USER = "106540352242922", "EAA-token", "app-secret", "16505551234"


@pytest.fixture
async def api() -> AsyncIterator[GraphApiStandIn]:
    stand_in = GraphApiStandIn()
    stand_in.register_number(PNID, TOKEN)
    stand_in.register_template("reply_later", "en_US", params=1)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(
    http: aiohttp.ClientSession,
    api: GraphApiStandIn,
    body: dict[str, Any],
    *,
    token: str = TOKEN,
    pnid: str = PNID,
    version: str = "v26.0",
) -> tuple[int, dict[str, Any]]:
    url = f"{api.base_url}/{version}/{pnid}/messages"
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


def text(body: str = "hi", to: str = USER) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


async def test_text_send(api: GraphApiStandIn, http: aiohttp.ClientSession) -> None:
    status, body = await send(http, api, text("hello"))
    assert status == 200
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": USER, "wa_id": USER}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    [call] = api.messages(PNID, USER)
    assert (call.text, call.wamid) == ("hello", wamid)


@pytest.mark.parametrize(
    ("kw", "status", "code"),
    [
        ({"token": "wrong"}, 401, 190),
        ({"pnid": "999"}, 400, 100),
        ({"version": "latest"}, 400, 100),
    ],
)
async def test_auth_and_path_errors(
    api: GraphApiStandIn, http: aiohttp.ClientSession, kw: dict[str, str], status: int, code: int
) -> None:
    got, body = await send(http, api, text(), **kw)
    assert (got, body["error"]["code"]) == (status, code)
    assert body["error"]["fbtrace_id"]
    assert api.calls == []


async def test_body_errors(api: GraphApiStandIn, http: aiohttp.ClientSession) -> None:
    status, body = await send(http, api, text("x" * 4097))
    assert (status, body["error"]["code"]) == (400, 100)
    assert "4096" in body["error"]["error_data"]["details"]
    status, body = await send(http, api, {**text(), "messaging_product": "sms"})
    assert status == 400


async def test_closed_window_refuses_text_but_not_templates(
    api: GraphApiStandIn, http: aiohttp.ClientSession
) -> None:
    api.close_window(PNID, USER)
    status, body = await send(http, api, text())
    assert (status, body["error"]["code"]) == (400, 131047)
    template = {
        "messaging_product": "whatsapp",
        "to": USER,
        "type": "template",
        "template": {
            "name": "reply_later",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "hi"}]}],
        },
    }
    status, body = await send(http, api, template)
    assert status == 200 and body["messages"][0]["message_status"] == "accepted"
    bad = json.loads(json.dumps(template))
    bad["template"]["components"][0]["parameters"][0]["text"] = "a\nb"
    assert (await send(http, api, bad))[1]["error"]["code"] == 132018
    bad["template"]["components"] = []
    assert (await send(http, api, bad))[1]["error"]["code"] == 132000
    bad["template"]["name"] = "nope"
    assert (await send(http, api, bad))[1]["error"]["code"] == 132001


async def test_injected_rate_limits(api: GraphApiStandIn, http: aiohttp.ClientSession) -> None:
    api.fail_next(1, code=130429)
    api.fail_next(1, code=131056)
    assert (await send(http, api, text()))[0] == 429
    status, body = await send(http, api, text())
    assert (status, body["error"]["code"]) == (400, 131056)
    assert (await send(http, api, text()))[0] == 200
    assert [f.error_code for f in api.failures] == [130429, 131056]


async def test_wait_for_wakes_on_a_call(api: GraphApiStandIn, http: aiohttp.ClientSession) -> None:
    waiter = asyncio.create_task(api.wait_for(lambda calls: len(calls) == 1, timeout=5))
    await send(http, api, text())
    assert len(await waiter) == 1
    with pytest.raises(TimeoutError):
        await api.wait_for(lambda calls: len(calls) == 2, timeout=0.05)


async def test_statuses_are_posted_back_signed(http: aiohttp.ClientSession) -> None:
    received: list[tuple[bytes, str]] = []
    got_all = asyncio.Event()

    async def webhook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers[wa.SIGNATURE_HEADER]))
        if len(received) == 3:
            got_all.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    api = GraphApiStandIn()
    api.register_number(PNID, TOKEN, app_secret=SECRET, webhook_url=f"http://127.0.0.1:{port}/hook")
    await api.start()
    try:
        _, body = await send(http, api, text())
        await asyncio.wait_for(got_all.wait(), 5)
    finally:
        await api.stop()
        await runner.cleanup()
    statuses = []
    for raw, signature in received:
        expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert signature == f"sha256={expected}"
        value = json.loads(raw)["entry"][0]["changes"][0]["value"]
        assert value["metadata"]["phone_number_id"] == PNID
        [status] = value["statuses"]
        assert status["id"] == body["messages"][0]["id"]
        assert status["recipient_id"] == USER
        statuses.append(status["status"])
    assert statuses == ["sent", "delivered", "read"]
