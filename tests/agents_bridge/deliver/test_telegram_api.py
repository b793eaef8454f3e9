"""TelegramSender against the Telegram Bot API stand-in."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from agents_bridge.deliver.telegram_api import TelegramSender
from common.errors import InvalidEvent, RetryableError
from common.settings import Secret, Settings
from devstack.telegram_api import TelegramApiStandIn
from tests.agents_bridge.bridge_fakes import BOT_TOKEN


@pytest.fixture
async def api() -> AsyncIterator[TelegramApiStandIn]:
    stand_in = TelegramApiStandIn()
    stand_in.register_bot(BOT_TOKEN)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def sender(api: TelegramApiStandIn) -> AsyncIterator[TelegramSender]:
    async with aiohttp.ClientSession() as http:
        yield TelegramSender(http, Settings(telegram_api_base=api.base_url))


TOKEN = Secret(BOT_TOKEN)


async def test_send_message(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    message_id = await sender.send_message(TOKEN, "42", "hello", thread_id="7")
    assert message_id == 1
    [call] = api.messages()
    assert call.params == {"chat_id": 42, "text": "hello", "message_thread_id": 7}


async def test_non_numeric_chat_id_is_sent_as_a_string(
    api: TelegramApiStandIn, sender: TelegramSender
) -> None:
    await sender.send_message(TOKEN, "@channel", "hello")
    assert api.messages()[0].params["chat_id"] == "@channel"


async def test_429_carries_retry_after(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    api.fail_next(1, status=429, retry_after=17)
    with pytest.raises(RetryableError) as info:
        await sender.send_message(TOKEN, "42", "hello")
    assert info.value.retry_after == 17
    assert "Too Many Requests" in info.value.reason
    assert not isinstance(info.value, InvalidEvent)


async def test_5xx_is_retryable(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    api.fail_next(1, status=502)
    with pytest.raises(RetryableError, match="telegram_502"):
        await sender.send_message(TOKEN, "42", "hello")


async def test_blocked_bot_is_invalid(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    api.block_chat(42)
    with pytest.raises(InvalidEvent) as info:
        await sender.send_message(TOKEN, "42", "hello")
    assert info.value.reason == "telegram_403: Forbidden: bot was blocked by the user"


async def test_bad_request_is_invalid(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    api.fail_next(1, status=400, description="Bad Request: chat not found")
    with pytest.raises(InvalidEvent, match="chat not found"):
        await sender.send_message(TOKEN, "42", "hello")


async def test_revoked_token_is_invalid_and_not_echoed(sender: TelegramSender) -> None:
    other = Secret("999:REVOKED-secret")
    with pytest.raises(InvalidEvent) as info:
        await sender.send_message(other, "42", "hello")
    assert info.value.reason == "telegram_401: Unauthorized"


async def test_connection_error_is_retryable_without_the_token() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with aiohttp.ClientSession() as http:
        sender = TelegramSender(http, Settings(telegram_api_base=f"http://127.0.0.1:{port}"))
        with pytest.raises(RetryableError) as info:
            await sender.send_message(TOKEN, "42", "hello")
    assert BOT_TOKEN not in info.value.reason
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
