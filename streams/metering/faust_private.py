"""Every use of Faust internals in the stream worker, in one place: a faust-streaming
upgrade (pinned to 0.15.3) re-reads this file and no other.

- `ChangelogAcks` replaces the `send_changelog` method of a table (a monkeypatch) to keep
  the future of every changelog record written, so metering can wait until the broker
  acknowledged its state writes before any output is sent;
- `current_faust_event` sets Faust's private "current event" (`faust.streams._current_event`,
  the event whose partition a table write is filed under) for a block, which iterating a
  stream does for one event and metering needs for each event of a batch.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faust.streams


@dataclass
class _Write:
    """One changelog record of the table, until the broker acknowledged it."""

    future: Awaitable[Any]
    partition: int | None
    key: Any
    value: Any


class ChangelogAcks:
    """The table's changelog writes, awaited: `wait()` returns once the broker acknowledged
    every record written so far, and raises when one was lost (after sending that key's
    latest value again, so the next `wait()` covers it). Exact, unlike flushing the
    producer, which gives up waiting on its own buffer after 0.1 s without progress."""

    def __init__(self, table: Any) -> None:
        self._send = table.send_changelog
        self._pending: list[_Write] = []
        self._latest: dict[Any, _Write] = {}
        table.send_changelog = self._sending  # every write of the table goes through here

    def _sending(self, partition: int | None, key: Any, value: Any, *args: Any, **kw: Any) -> Any:
        future = self._send(partition, key, value, *args, **kw)
        write = _Write(future, partition, key, value)
        self._pending.append(write)
        self._latest[key] = write
        return future

    async def wait(self) -> None:
        while self._pending:
            writes = list(self._pending)
            # asyncio.wait, not gather: a cancelled wait must not cancel Faust's futures
            await asyncio.wait([asyncio.ensure_future(w.future) for w in writes])
            del self._pending[: len(writes)]  # writes made meanwhile stay pending
            failure: BaseException | None = None
            for write in writes:
                error = _failure(write.future)
                latest = self._latest.get(write.key) is write
                if error is not None:
                    failure = failure or error
                    if latest:
                        self._sending(write.partition, write.key, write.value)
                elif latest:
                    del self._latest[write.key]
            if failure is not None:
                raise failure


def _failure(future: Awaitable[Any]) -> BaseException | None:
    if isinstance(future, asyncio.Future):
        return future.exception() if not future.cancelled() else asyncio.CancelledError()
    return None


@contextmanager
def current_faust_event(source: Any) -> Iterator[None]:
    """Within the block, Faust's "current event" (whose partition a table write goes to) is
    `source`: what iterating the stream sets, made explicit for a batch."""
    token = faust.streams._current_event.set(weakref.ref(source))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)
