"""Bot API calls of `control.telegram_binding`: parameters, retries, errors without the token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from common.settings import Settings
from control.telegram_binding import BotApiError, bot_api, set_webhook
from devstack._proc import free_port
from devstack.telegram_api import TelegramApiStandIn

TOKEN = "123456789:AAH-operator-SECRET-abcdefghijklmnop"
SECRET_PART = TOKEN.split(":")[1]


@pytest.fixture
async def api() -> AsyncIterator[TelegramApiStandIn]:
    stand_in = TelegramApiStandIn()
    stand_in.register_bot(TOKEN)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def _settings(api: TelegramApiStandIn) -> Settings:
    return Settings(telegram_api_base=api.base_url, public_base_url="https://hooks.example.test/")


async def test_set_webhook_sends_url_secret_and_allowed_updates(api: TelegramApiStandIn) -> None:
    url = await asyncio.to_thread(set_webhook, _settings(api), TOKEN, "123456789", "s3cr3t_-")
    assert url == "https://hooks.example.test/webhooks/telegram/123456789"
    assert api.webhook(TOKEN) == {
        "url": url,
        "secret_token": "s3cr3t_-",
        "allowed_updates": ["message"],
    }


async def test_429_and_5xx_are_retried_honouring_retry_after(api: TelegramApiStandIn) -> None:
    api.fail_next(1, status=429, retry_after=3, method="setWebhook")
    api.fail_next(1, status=502, method="setWebhook")
    waits: list[float] = []
    await asyncio.to_thread(
        set_webhook, _settings(api), TOKEN, "123456789", "s", sleep=waits.append
    )
    assert waits == [3.0, 1.0]
    assert [c.status for c in api.failures] == [429, 502]
    assert api.webhook(TOKEN)["secret_token"] == "s"


async def test_refusals_are_final_and_name_the_method(api: TelegramApiStandIn) -> None:
    api.fail_next(1, status=400, method="setWebhook", description="Bad Request: bad webhook")
    with pytest.raises(BotApiError) as info:
        await asyncio.to_thread(set_webhook, _settings(api), TOKEN, "123456789", "s")
    assert info.value.reason == "setWebhook: Telegram answered 400: Bad Request: bad webhook"
    assert not info.value.retryable
    assert len(api.failures) == 1


async def test_unreachable_api_gives_up_without_leaking_the_token() -> None:
    settings = Settings(telegram_api_base=f"http://127.0.0.1:{free_port()}")
    waits: list[float] = []
    with pytest.raises(BotApiError) as info:
        await asyncio.to_thread(bot_api, settings, TOKEN, "deleteWebhook", {}, sleep=waits.append)
    assert info.value.reason.startswith("deleteWebhook: cannot reach the Telegram API")
    assert info.value.retryable and len(waits) == 2
    assert SECRET_PART not in info.value.reason
    assert SECRET_PART not in repr(info.value.__cause__) + repr(info.value.__context__)
