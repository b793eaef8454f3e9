"""The Telegram Bot API stand-in answers like Telegram and records what it accepted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack import telegram_api
from devstack.telegram_api import ApiCall, TelegramApiStandIn

TOKEN = "123456:AAH-test-token"


@pytest.fixture
async def api() -> AsyncIterator[TelegramApiStandIn]:
    stand_in = TelegramApiStandIn()
    stand_in.register_bot(TOKEN)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    api: TelegramApiStandIn,
    method: str,
    token: str = TOKEN,
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    verb = kwargs.pop("verb", "POST")
    async with http.request(verb, f"{api.base_url}/bot{token}/{method}", **kwargs) as resp:
        return resp.status, await resp.json()


async def test_send_message_json(api: TelegramApiStandIn, http: aiohttp.ClientSession) -> None:
    status, body = await call(
        http, api, "sendMessage", json={"chat_id": 42, "text": "hi", "message_thread_id": 7}
    )
    assert status == 200
    assert body["ok"] is True
    result = body["result"]
    assert result["chat"] == {"id": 42, "type": "private"}
    assert result["text"] == "hi"
    assert result["message_id"] == 1
    assert result["message_thread_id"] == 7
    assert isinstance(result["date"], int)
    [sent] = api.messages(42)
    assert sent.bot_id == 123456
    assert sent.text == "hi"


async def test_form_and_query_bodies(api: TelegramApiStandIn, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, api, "sendMessage", data={"chat_id": "-100", "text": "form"})
    assert status == 200
    assert body["result"]["chat"]["id"] == -100
    status, body = await call(
        http, api, "sendChatAction", verb="GET", params={"chat_id": "5", "action": "typing"}
    )
    assert (status, body) == (200, {"ok": True, "result": True})
    assert [c.method for c in api.calls] == ["sendMessage", "sendChatAction"]


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"chat_id": 1, "text": "x" * 4097}, "Bad Request: message is too long"),
        ({"chat_id": 1, "text": ""}, "Bad Request: message text is empty"),
        ({"text": "hello"}, "Bad Request: chat_id is empty"),
    ],
)
async def test_validation(
    api: TelegramApiStandIn, http: aiohttp.ClientSession, params: dict[str, Any], description: str
) -> None:
    status, body = await call(http, api, "sendMessage", json=params)
    assert status == 400
    assert body == {"ok": False, "error_code": 400, "description": description}
    assert api.calls == []
    assert len(api.failures) == 1


async def test_max_length_is_accepted(api: TelegramApiStandIn, http: aiohttp.ClientSession) -> None:
    status, _ = await call(http, api, "sendMessage", json={"chat_id": 1, "text": "x" * 4096})
    assert status == 200


async def test_unknown_token_is_unauthorized(
    api: TelegramApiStandIn, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, api, "getMe", token="999:nope")
    assert status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_unknown_method(api: TelegramApiStandIn, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, api, "sendPigeon", json={})
    assert status == 404
    assert body["ok"] is False


async def test_webhook_methods_and_get_me(
    api: TelegramApiStandIn, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, api, "getMe")
    assert status == 200
    assert body["result"]["id"] == 123456
    assert body["result"]["is_bot"] is True
    hook = {"url": "https://example.test/hooks/telegram/123456", "secret_token": "s3cr3t"}
    status, body = await call(http, api, "setWebhook", json=hook)
    assert (status, body["result"]) == (200, True)
    assert api.webhook(TOKEN)["secret_token"] == "s3cr3t"
    _, body = await call(http, api, "getWebhookInfo", verb="GET")
    assert body["result"]["url"] == hook["url"]
    assert body["result"]["pending_update_count"] == 0
    _, body = await call(http, api, "deleteWebhook")
    assert body["result"] is True
    _, body = await call(http, api, "getWebhookInfo")
    assert body["result"]["url"] == ""


async def test_fault_injection_429_then_ok(
    api: TelegramApiStandIn, http: aiohttp.ClientSession
) -> None:
    api.fail_next(2, status=429, retry_after=3)
    for _ in range(2):
        status, body = await call(http, api, "sendMessage", json={"chat_id": 1, "text": "a"})
        assert status == 429
        assert body == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        }
    status, _ = await call(http, api, "sendMessage", json={"chat_id": 1, "text": "a"})
    assert status == 200
    assert len(api.messages()) == 1


async def test_fault_injection_only_hits_its_method(
    api: TelegramApiStandIn, http: aiohttp.ClientSession
) -> None:
    api.fail_next(1, status=500)
    status, _ = await call(http, api, "getMe")
    assert status == 200
    status, body = await call(http, api, "sendMessage", json={"chat_id": 1, "text": "a"})
    assert (status, body["description"]) == (500, "Internal Server Error")


async def test_blocked_chat_is_forbidden(
    api: TelegramApiStandIn, http: aiohttp.ClientSession
) -> None:
    api.block_chat(77)
    status, body = await call(http, api, "sendMessage", json={"chat_id": 77, "text": "a"})
    assert status == 403
    assert body["description"] == "Forbidden: bot was blocked by the user"


async def test_wait_for_wakes_on_new_calls(
    api: TelegramApiStandIn, http: aiohttp.ClientSession
) -> None:
    waiter = asyncio.create_task(api.wait_for(lambda calls: len(calls) >= 2, timeout=5))
    await call(http, api, "sendMessage", json={"chat_id": 1, "text": "one"})
    assert not waiter.done()
    await call(http, api, "sendMessage", json={"chat_id": 1, "text": "two"})
    calls = await waiter
    assert [c.text for c in calls] == ["one", "two"]


async def test_wait_for_times_out(api: TelegramApiStandIn) -> None:
    with pytest.raises(TimeoutError):
        await api.wait_for(lambda calls: bool(calls), timeout=0.01)


async def test_accept_any_token_and_on_call(http: aiohttp.ClientSession) -> None:
    seen: list[ApiCall] = []
    stand_in = TelegramApiStandIn(accept_any_token=True, on_call=seen.append)
    await stand_in.start()
    try:
        status, _ = await call(
            http, stand_in, "sendMessage", token="42:any", json={"chat_id": 1, "text": "x"}
        )
        assert status == 200
        assert [c.bot_id for c in seen] == [42]
    finally:
        await stand_in.stop()


def test_print_message(capsys: pytest.CaptureFixture[str]) -> None:
    telegram_api._print_message(ApiCall(42, "sendMessage", {"chat_id": 7, "text": "hello"}))
    out = capsys.readouterr().out
    assert "chat 7: hello" in out
    assert "42:" not in out  # the bot id is printed, never a token
