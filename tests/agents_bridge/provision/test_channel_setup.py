"""setWebhook against the local Bot API stand-in: accepted, refused for good, retryable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agents_bridge.provision.channel_setup import TelegramWebhooks
from common.errors import RetryableError
from common.settings import Settings
from devstack.telegram_api import TelegramApiStandIn

TOKEN = "700000001:AAE-unit-test-bot-token-abcdefghij"


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramApiStandIn]:
    stand_in = TelegramApiStandIn()
    await stand_in.start()
    stand_in.register_bot(TOKEN)
    yield stand_in
    await stand_in.stop()


def _hooks(telegram: TelegramApiStandIn) -> TelegramWebhooks:
    return TelegramWebhooks(Settings.from_env({}, telegram_api_base=telegram.base_url))


async def test_accepted_webhook_carries_url_and_secret(telegram: TelegramApiStandIn) -> None:
    url = "https://ingress.example/webhooks/telegram/700000001"
    refused = await asyncio.to_thread(_hooks(telegram)._set_webhook, TOKEN, url, "s3cret")
    assert refused is None
    assert telegram.webhook(TOKEN)["url"] == url
    assert telegram.webhook(TOKEN)["secret_token"] == "s3cret"


async def test_refusal_is_final_and_server_errors_are_retried(
    telegram: TelegramApiStandIn,
) -> None:
    hooks = _hooks(telegram)
    telegram.fail_next(status=400, method="setWebhook", description="Bad Request: bad webhook")
    refused = await asyncio.to_thread(hooks._set_webhook, TOKEN, "https://x/y", "s")
    assert refused is not None and "bad webhook" in refused
    telegram.fail_next(status=502, method="setWebhook")
    with pytest.raises(RetryableError) as caught:
        await asyncio.to_thread(hooks._set_webhook, TOKEN, "https://x/y", "s")
    assert TOKEN not in str(caught.value)
