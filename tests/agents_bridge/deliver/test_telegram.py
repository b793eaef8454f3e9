"""Telegram delivery: each chunk's result recorded, resumed from the record, paced per chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from agents_bridge.deliver.log import FAILED, SENT
from agents_bridge.deliver.telegram import TelegramDelivery
from agents_bridge.deliver.telegram_api import TelegramSender
from agents_bridge.deliver.worker import Delivery
from common.errors import InvalidEvent
from common.retry import RetryPolicy
from common.settings import Settings
from devstack.telegram_api import TelegramApiStandIn
from tests.agents_bridge.bridge_fakes import (
    BOT_TOKEN,
    FakeDeliveryLog,
    FakeDirectory,
    outbound_event,
    tenant,
)
from tests.fakes import FakeClock

EVENT_ID = "reply:telegram:123456:1"
TWO_CHUNKS = "A" * 3000 + "\n\n" + "B" * 3000


@dataclass
class Rig:
    api: TelegramApiStandIn
    clock: FakeClock
    log: FakeDeliveryLog
    http: aiohttp.ClientSession
    settings: Settings
    directory: FakeDirectory

    def delivery(self) -> Delivery:
        """A fresh delivery process sharing the Telegram API and the delivery log."""
        policy = RetryPolicy(attempts=3, clock=self.clock, rand=lambda: 0.5)
        telegram = TelegramDelivery(
            directory=self.directory,
            sender=TelegramSender(self.http, self.settings),
            policy=policy,
            deliveries=self.log,
        )
        return Delivery({"telegram": telegram})


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    api = TelegramApiStandIn()
    api.register_bot(BOT_TOKEN)
    await api.start()
    directory = FakeDirectory()
    directory.add(tenant("t-1"))
    settings = Settings(telegram_api_base=api.base_url, sender_attempts=3)
    async with aiohttp.ClientSession() as http:
        yield Rig(api, FakeClock(), FakeDeliveryLog(), http, settings, directory)
    await api.stop()


async def test_each_chunk_is_recorded_with_its_message_id(rig: Rig) -> None:
    await rig.delivery().handle(outbound_event(TWO_CHUNKS))
    ids = [str(c.result["message_id"]) for c in rig.api.messages()]
    assert rig.log.statuses() == [(0, SENT, ids[0], None), (1, SENT, ids[1], None)]
    row = rig.log.rows[(EVENT_ID, 1)]
    assert (row.tenant_id, row.channel, row.conversation_id, row.chunks) == (
        "t-1",
        "telegram",
        "42",
        2,
    )


async def test_chunks_of_one_chat_are_paced_one_per_second(rig: Rig) -> None:
    await rig.delivery().handle(outbound_event("\n\n".join(["x" * 3000] * 3)))
    assert len(rig.api.messages()) == 3
    assert rig.clock.sleeps == [1.0, 1.0]


async def test_a_refused_send_is_recorded_failed(rig: Rig) -> None:
    rig.api.block_chat(42)
    with pytest.raises(InvalidEvent, match="telegram_403"):
        await rig.delivery().handle(outbound_event("hi"))
    [(chunk, status, message_id, error)] = rig.log.statuses()
    assert (chunk, status, message_id) == (0, FAILED, None)
    assert error == "telegram_403: Forbidden: bot was blocked by the user"


async def test_a_later_success_replaces_the_failure(rig: Rig) -> None:
    rig.api.fail_next(3, status=500)
    with pytest.raises(InvalidEvent, match="telegram_unavailable"):
        await rig.delivery().handle(outbound_event("hi"))
    assert rig.log.statuses()[0][1] == FAILED
    await rig.delivery().handle(outbound_event("hi"))  # replayed from the DLQ
    assert rig.log.statuses()[0][:2] == (0, SENT)


async def test_another_process_resumes_after_the_recorded_chunks(rig: Rig) -> None:
    first = rig.delivery()
    rig.api._on_call = lambda call: rig.api.fail_next(3, status=500)  # after chunk 0
    with pytest.raises(InvalidEvent):
        await first.handle(outbound_event(TWO_CHUNKS))
    rig.api._on_call = None
    await rig.delivery().handle(outbound_event(TWO_CHUNKS))  # a new process, same log
    assert [c.text[0] for c in rig.api.messages()] == ["A", "B"]
    assert [s[1] for s in rig.log.statuses()] == [SENT, SENT]


async def test_a_result_postgres_missed_is_written_before_anything_is_resent(rig: Rig) -> None:
    delivery = rig.delivery()
    rig.log.fail_next = 1
    with pytest.raises(ConnectionError):  # retryable: the worker retries the event
        await delivery.handle(outbound_event(TWO_CHUNKS))
    assert len(rig.api.messages()) == 1
    await delivery.handle(outbound_event(TWO_CHUNKS))
    assert [c.text[0] for c in rig.api.messages()] == ["A", "B"]
    assert [s[1] for s in rig.log.statuses()] == [SENT, SENT]
    await delivery.handle(outbound_event(TWO_CHUNKS))  # delivered: nothing more
    assert len(rig.api.messages()) == 2 and rig.log.writes == 2


async def test_failure_records_are_best_effort(rig: Rig) -> None:
    rig.api.block_chat(42)
    rig.log.fail_next = 1
    with pytest.raises(InvalidEvent, match="telegram_403"):  # still dead-lettered
        await rig.delivery().handle(outbound_event("hi"))
    assert rig.log.rows == {}
