"""The Faust internals metering relies on: `ChangelogAcks` waits for every changelog write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.metering.faust_private import ChangelogAcks


class FakeChangelog:
    """A table's send_changelog: futures the test resolves like broker acks."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, Any, asyncio.Future[None]]] = []

    def send_changelog(self, partition: int | None, key: Any, value: Any) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append((key, value, future))
        return future


async def test_changelog_acks_wait_for_every_write_and_resend_a_lost_latest_value() -> None:
    table = FakeChangelog()
    acks = ChangelogAcks(table)
    table.send_changelog(0, "a", b"1")
    table.send_changelog(0, "b", b"1")
    table.send_changelog(0, "a", b"2")
    waiting = asyncio.ensure_future(acks.wait())
    await asyncio.sleep(0)  # sleep-ok: let it start waiting (a deliberate yield, not a delay)
    assert not waiting.done()
    for i, (_, _, future) in enumerate(table.sent):
        if i == 1:
            future.set_exception(OSError("lost"))
        else:
            future.set_result(None)
    with pytest.raises(OSError):
        await waiting
    assert [(k, v) for k, v, _ in table.sent[3:]] == [("b", b"1")]  # sent again
    retry = asyncio.ensure_future(acks.wait())
    await asyncio.sleep(0)  # sleep-ok: a deliberate yield, as above
    assert not retry.done()
    table.sent[3][2].set_result(None)
    await retry
    await acks.wait()  # nothing pending


async def test_a_cancelled_wait_leaves_the_writes_pending_and_uncancelled() -> None:
    table = FakeChangelog()
    acks = ChangelogAcks(table)
    table.send_changelog(0, "a", b"1")
    waiting = asyncio.ensure_future(acks.wait())
    await asyncio.sleep(0)  # sleep-ok: a deliberate yield, as above
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    future = table.sent[0][2]
    assert not future.cancelled()
    again = asyncio.ensure_future(acks.wait())
    await asyncio.sleep(0)  # sleep-ok: a deliberate yield, as above
    assert not again.done()
    future.set_result(None)
    await again
