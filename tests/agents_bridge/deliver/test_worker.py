"""Delivery handler: messages.outbound → Telegram stand-in, retries, idempotency, no token leaks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from agents_bridge.deliver.telegram import TelegramDelivery
from agents_bridge.deliver.telegram_api import TelegramSender
from agents_bridge.deliver.worker import Delivery, reply_lane
from common.errors import InvalidEvent
from common.retry import RetryPolicy
from common.settings import Settings
from devstack.telegram_api import ApiCall, TelegramApiStandIn
from tests.agents_bridge.bridge_fakes import (
    BOT_TOKEN,
    FakeDirectory,
    outbound_event,
    tenant,
)
from tests.fakes import FakeClock


@dataclass
class Rig:
    api: TelegramApiStandIn
    delivery: Delivery
    clock: FakeClock
    directory: FakeDirectory


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    api = TelegramApiStandIn()
    api.register_bot(BOT_TOKEN)
    await api.start()
    directory = FakeDirectory()
    directory.add(tenant("t-1"))
    directory.add(tenant("t-nobot", bot_token=None))
    clock = FakeClock()
    settings = Settings(telegram_api_base=api.base_url, sender_attempts=3)
    policy = RetryPolicy(attempts=settings.sender_attempts, clock=clock, rand=lambda: 0.5)
    async with aiohttp.ClientSession() as http:
        telegram = TelegramDelivery(
            directory=directory, sender=TelegramSender(http, settings), policy=policy
        )
        delivery = Delivery({"telegram": telegram})
        yield Rig(api, delivery, clock, directory)
    await api.stop()


async def test_sends_the_reply_to_its_chat(rig: Rig) -> None:
    event = outbound_event("the answer", reply_route={"chat_id": "42", "message_thread_id": "5"})
    await rig.delivery.handle(event)
    [sent] = rig.api.messages()
    assert sent.params == {"chat_id": 42, "text": "the answer", "message_thread_id": 5}
    assert rig.delivery.delivered("reply:telegram:123456:1")


async def test_chat_id_falls_back_to_the_conversation(rig: Rig) -> None:
    await rig.delivery.handle(outbound_event("x", conversation_id="77", reply_route={}))
    assert rig.api.messages()[0].params["chat_id"] == 77


async def test_long_reply_is_split_in_order(rig: Rig) -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 700 for i in range(3)]  # ~3500 chars each
    await rig.delivery.handle(outbound_event("\n\n".join(paragraphs)))
    texts = [c.text for c in rig.api.messages(42)]
    assert len(texts) == 3
    assert [t.split(".")[0] for t in texts] == ["Paragraph 0", "Paragraph 1", "Paragraph 2"]
    assert all(len(t) <= 4096 for t in texts)


async def test_429_waits_retry_after_then_sends(rig: Rig) -> None:
    rig.api.fail_next(2, status=429, retry_after=7)
    await rig.delivery.handle(outbound_event("hi"))
    assert len(rig.api.messages()) == 1
    assert len(rig.api.failures) == 2
    assert rig.clock.sleeps == [7.0, 7.0]


async def test_persistent_5xx_is_dead_lettered_after_the_attempts(rig: Rig) -> None:
    rig.api.fail_next(3, status=500)
    with pytest.raises(InvalidEvent) as info:
        await rig.delivery.handle(outbound_event("hi"))
    assert info.value.reason == "telegram_unavailable: telegram_500: Internal Server Error"
    assert len(rig.api.failures) == 3
    assert rig.api.messages() == []


async def test_blocked_bot_is_invalid_at_once(rig: Rig) -> None:
    rig.api.block_chat(42)
    with pytest.raises(InvalidEvent, match="telegram_403"):
        await rig.delivery.handle(outbound_event("hi"))
    assert rig.clock.sleeps == []
    assert not rig.delivery.delivered("reply:telegram:123456:1")


async def test_redelivery_in_the_same_process_is_not_sent_twice(rig: Rig) -> None:
    await rig.delivery.handle(outbound_event("once", offset=3))
    await rig.delivery.handle(outbound_event("once", offset=3))
    assert len(rig.api.messages()) == 1


async def test_retry_after_a_partial_send_resumes_at_the_failed_chunk(rig: Rig) -> None:
    def fail_after_first(call: ApiCall) -> None:
        if len(rig.api.messages()) == 1:
            rig.api.fail_next(3, status=500)

    rig.api._on_call = fail_after_first
    text = "A" * 3000 + "\n\n" + "B" * 3000
    with pytest.raises(InvalidEvent, match="telegram_unavailable"):
        await rig.delivery.handle(outbound_event(text))
    await rig.delivery.handle(outbound_event(text))  # e.g. replayed from the DLQ
    assert [c.text[0] for c in rig.api.messages()] == ["A", "B"]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"channel": "whatsapp"}, "channel_not_supported_yet"),
        ({"channel": "email"}, "channel_not_supported_yet"),
        ({"tenant_id": "nobody"}, "unknown_tenant"),
        ({"tenant_id": "t-nobot"}, "no_telegram_binding"),
    ],
)
async def test_undeliverable_replies_are_invalid(
    rig: Rig, kwargs: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        await rig.delivery.handle(outbound_event("hi", **kwargs))  # type: ignore[arg-type]
    assert info.value.reason == reason
    assert rig.api.calls == []


def test_lane_is_tenant_and_conversation() -> None:
    assert reply_lane(outbound_event(conversation_id="42")) == "t-1:42"


async def test_bot_token_never_reaches_the_logs(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reasons = []
    await rig.delivery.handle(outbound_event("ok", event_id="reply:a"))
    rig.api.fail_next(1, status=429, retry_after=1)
    await rig.delivery.handle(outbound_event("rate limited", event_id="reply:b"))
    await rig.delivery.handle(outbound_event("dup", event_id="reply:a"))
    rig.api.block_chat(42)
    try:
        await rig.delivery.handle(outbound_event("blocked", event_id="reply:c"))
    except InvalidEvent as err:
        reasons.append(err.reason)
    await rig.api.stop()
    try:
        await rig.delivery.handle(outbound_event("down", event_id="reply:d"))
    except InvalidEvent as err:
        reasons.append(err.reason)
    assert len(reasons) == 2
    assert caplog.records, "expected some log lines to check"
    secret = BOT_TOKEN.split(":", 1)[1]
    assert secret not in caplog.text
    assert all(secret not in r for r in reasons)
