"""Typing indicator: "typing" every 4 s while the gateway works, never in the message's way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from agents_bridge.deliver.telegram_api import TelegramSender
from agents_bridge.forward.typing_indicator import TelegramTyping
from agents_bridge.forward.worker import Forwarder
from common.settings import Secret, Settings
from common.topics import Topic
from devstack.telegram_api import ApiCall, TelegramApiStandIn
from tests.agents_bridge.bridge_fakes import (
    BOT_TOKEN,
    FakeDirectory,
    FakeGateway,
    admitted_event,
    tenant,
)
from tests.fakes import FakeProducer, ManualClock


@dataclass
class Rig:
    api: TelegramApiStandIn
    clock: ManualClock
    gateway: FakeGateway
    producer: FakeProducer
    typing: TelegramTyping
    forwarder: Forwarder


def _actions(calls: list[ApiCall]) -> list[ApiCall]:
    return [c for c in calls if c.method == "sendChatAction"]


async def _wait_actions(api: TelegramApiStandIn, count: int) -> None:
    await api.wait_for(lambda calls: len(_actions(calls)) == count)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    api = TelegramApiStandIn()
    api.register_bot(BOT_TOKEN)
    await api.start()
    directory = FakeDirectory()
    directory.add(tenant("t-1"))
    directory.add(tenant("t-nobot", bot_token=None))
    clock = ManualClock()
    gateway = FakeGateway(gates={"slow": asyncio.Event()})
    producer = FakeProducer()
    settings = Settings(telegram_api_base=api.base_url)
    async with aiohttp.ClientSession() as http:
        typing = TelegramTyping(TelegramSender(http, settings), directory, clock=clock)
        forwarder = Forwarder(
            settings, producer=producer, directory=directory, gateway=gateway, indicator=typing
        )
        yield Rig(api, clock, gateway, producer, typing, forwarder)
        await typing.close()
    await api.stop()


async def test_typing_repeats_every_4s_while_the_gateway_works(rig: Rig) -> None:
    handling = asyncio.create_task(rig.forwarder.handle(admitted_event(text="slow")))
    await _wait_actions(rig.api, 1)
    first = _actions(rig.api.calls)[0]
    assert first.params == {"chat_id": 42, "action": "typing"}
    assert str(first.bot_id) == BOT_TOKEN.split(":")[0]
    for expected in (2, 3):
        await rig.clock.wait_sleeping(1)
        await rig.clock.advance(4)
        await _wait_actions(rig.api, expected)
    await rig.clock.wait_sleeping(1)
    assert rig.clock.sleeps == [4.0, 4.0, 4.0]
    assert not handling.done()

    rig.gateway.gates["slow"].set()
    await asyncio.wait_for(handling, 5)
    assert [r["text"] for r in rig.producer.records(Topic.OUTBOUND)] == ["re: slow"]
    await asyncio.sleep(0)  # sleep-ok: yield to the event loop
    assert rig.typing.active == 0  # the indicator stopped with the reply
    assert len(_actions(rig.api.calls)) == 3


async def test_typing_uses_the_forum_topic(rig: Rig) -> None:
    event = admitted_event(text="slow")
    event.value["message"]["reply_route"] = {"chat_id": "-100777", "message_thread_id": "9"}
    handling = asyncio.create_task(rig.forwarder.handle(event))
    await _wait_actions(rig.api, 1)
    rig.gateway.gates["slow"].set()
    await asyncio.wait_for(handling, 5)
    [action] = _actions(rig.api.calls)
    assert action.params == {"chat_id": -100777, "action": "typing", "message_thread_id": 9}


async def test_failing_chat_actions_never_fail_the_message(rig: Rig) -> None:
    rig.api.fail_next(10, status=500, method="sendChatAction")
    handling = asyncio.create_task(rig.forwarder.handle(admitted_event(text="slow")))
    await rig.api.wait_for(lambda _calls: len(rig.api.failures) == 1)
    await rig.clock.wait_sleeping(1)
    await rig.clock.advance(4)
    await rig.api.wait_for(lambda _calls: len(rig.api.failures) == 2)
    rig.gateway.gates["slow"].set()
    await asyncio.wait_for(handling, 5)
    assert len(rig.producer.records(Topic.OUTBOUND)) == 1


async def test_429_stretches_the_interval_to_retry_after(rig: Rig) -> None:
    rig.api.fail_next(1, status=429, retry_after=10, method="sendChatAction")
    handling = asyncio.create_task(rig.forwarder.handle(admitted_event(text="slow")))
    await rig.clock.wait_sleeping(1)
    assert rig.clock.sleeps == [10.0]
    await rig.clock.advance(10)
    await _wait_actions(rig.api, 1)
    rig.gateway.gates["slow"].set()
    await asyncio.wait_for(handling, 5)


async def test_a_refused_chat_action_ends_the_indicator(rig: Rig) -> None:
    rig.api.fail_next(1, status=403, method="sendChatAction", description="Forbidden: blocked")
    handling = asyncio.create_task(rig.forwarder.handle(admitted_event(text="slow")))
    await rig.api.wait_for(lambda _calls: len(rig.api.failures) == 1)
    for _ in range(5):
        await asyncio.sleep(0)  # sleep-ok: yield to the event loop
    assert rig.typing.active == 0 and rig.clock.sleeping() == 0
    rig.gateway.gates["slow"].set()
    await asyncio.wait_for(handling, 5)
    assert len(rig.producer.records(Topic.OUTBOUND)) == 1


async def test_unreachable_telegram_does_not_delay_the_reply(rig: Rig) -> None:
    await rig.api.stop()
    await asyncio.wait_for(rig.forwarder.handle(admitted_event(text="quick")), 5)
    assert len(rig.producer.records(Topic.OUTBOUND)) == 1


async def test_a_hung_chat_action_does_not_hold_the_message() -> None:
    class Hanging:
        def __init__(self) -> None:
            self.started = asyncio.Event()

        async def send_chat_action(
            self,
            token: Secret,
            chat_id: str,
            action: str = "typing",
            *,
            thread_id: str | None = None,
            timeout_s: float | None = None,
        ) -> None:
            self.started.set()
            await asyncio.Event().wait()

    directory = FakeDirectory()
    directory.add(tenant("t-1"))
    sender = Hanging()
    typing = TelegramTyping(sender, directory, clock=ManualClock())
    gateway = FakeGateway(gates={"slow": asyncio.Event()})
    producer = FakeProducer()
    forwarder = Forwarder(
        Settings(), producer=producer, directory=directory, gateway=gateway, indicator=typing
    )
    handling = asyncio.create_task(forwarder.handle(admitted_event(text="slow")))
    await asyncio.wait_for(sender.started.wait(), 5)
    gateway.gates["slow"].set()
    await asyncio.wait_for(handling, 5)
    assert len(producer.records(Topic.OUTBOUND)) == 1
    await typing.close()
    assert typing.active == 0


@pytest.mark.parametrize(
    "fields", [{"channel": "whatsapp"}, {"channel": "email"}, {"tenant_id": "t-nobot"}]
)
async def test_no_typing_without_a_telegram_bot(rig: Rig, fields: dict[str, Any]) -> None:
    await rig.forwarder.handle(admitted_event(text="quick", **fields))
    assert rig.api.calls == []
    assert rig.typing.active == 0
