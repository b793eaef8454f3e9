"""Pacing: a chat is paced to ~1 msg/s, groups to 20/min, a bot to its rate; chats interleave."""

from __future__ import annotations

import asyncio

import pytest

from agents_bridge.deliver import pacing
from agents_bridge.deliver.pacing import Bucket, Pacer, PacingPolicy, is_group
from tests.fakes import ManualClock

T0 = 1000.0


async def _send_all(
    pacer: Pacer, clock: ManualClock, plan: list[tuple[str, int]]
) -> list[tuple[float, str]]:
    """Each (chat, n) sends n messages in its own task; returns (time, chat) in send order."""
    sent: list[tuple[float, str]] = []

    async def chat(chat_id: str, n: int) -> None:
        for _ in range(n):
            await pacer.wait("bot-1", chat_id)
            sent.append((round(clock.at - T0, 3), chat_id))

    tasks = [asyncio.create_task(chat(c, n)) for c, n in plan]
    await clock.advance(0)
    await clock.advance(60)
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    return sent


async def test_one_chat_is_paced_to_one_per_second_and_two_chats_interleave() -> None:
    clock = ManualClock(at=T0)
    sent = await _send_all(Pacer(clock=clock), clock, [("111", 3), ("222", 3)])
    assert sent == [
        (0.0, "111"),
        (0.0, "222"),
        (1.0, "111"),
        (1.0, "222"),
        (2.0, "111"),
        (2.0, "222"),
    ]


async def test_a_waiting_chat_holds_no_slot_of_the_bot() -> None:
    clock = ManualClock(at=T0)
    pacer = Pacer(PacingPolicy(bot_rate=10, bot_burst=1), clock=clock)
    sent = await _send_all(pacer, clock, [("111", 3), ("222", 3)])
    assert [t for t, c in sent if c == "111"] == [0.0, 1.0, 2.0]
    assert [t for t, c in sent if c == "222"] == [0.1, 1.1, 2.1]


async def test_the_bot_bucket_caps_many_chats() -> None:
    clock = ManualClock(at=T0)
    pacer = Pacer(PacingPolicy(bot_rate=2, bot_burst=2), clock=clock)
    sent = await _send_all(pacer, clock, [(str(100 + i), 1) for i in range(6)])
    assert [t for t, _ in sent] == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert [c for _, c in sent] == [str(100 + i) for i in range(6)]  # first come, first served


async def test_group_chats_get_twenty_per_minute() -> None:
    clock = ManualClock(at=T0)
    sent = await _send_all(Pacer(clock=clock), clock, [("-1001234", 3)])
    assert [t for t, _ in sent] == [0.0, 3.0, 6.0]


async def test_wait_reports_the_time_waited() -> None:
    clock = ManualClock(at=T0)
    pacer = Pacer(clock=clock)
    assert await pacer.wait("b", "1") == 0
    second = asyncio.create_task(pacer.wait("b", "1"))
    await clock.wait_sleeping(1)
    await clock.advance(1)
    assert await second == 1.0


async def test_idle_chats_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pacing, "_PRUNE_AT", 4)
    clock = ManualClock(at=T0)
    pacer = Pacer(clock=clock)
    for chat in ("1", "2", "3", "4"):
        await pacer.wait("b", chat)
    assert len(pacer) == 4
    await clock.advance(5)
    await pacer.wait("b", "5")
    assert len(pacer) == 1


def test_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = Bucket(rate=1.0, burst=3)
    assert [bucket.reserve(0.0) for _ in range(5)] == [0.0, 0.0, 0.0, 1.0, 2.0]
    assert bucket.reserve(10.0) == 10.0  # refilled while idle
    with pytest.raises(ValueError):
        Bucket(rate=0)


@pytest.mark.parametrize(
    ("chat_id", "group"), [("8734062810", False), ("-100123", True), ("-42", True), ("@ch", True)]
)
def test_is_group(chat_id: str, group: bool) -> None:
    assert is_group(chat_id) is group
