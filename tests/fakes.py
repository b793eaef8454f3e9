"""Fakes shared by every package's tests: the producer and the clocks.

`FakeProducer` keeps `common.kafka.EventProducer`'s contract (tests/test_fakes_contract.py
runs one suite against both): `send` encodes at once (a record that does not fit its schema
raises `CodecError` before anything is sent) and returns what to await for the
acknowledgement; what was sent reads back per topic, in order, with its key and decoded
value; a down (or closed) producer fails sends with `KafkaUnavailable`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.errors import KafkaUnavailable
from common.topics import Topic
from schemas import codec


@dataclass(frozen=True)
class Sent:
    """One acknowledged send: the bytes the broker would hold, and the record they encode."""

    topic: Topic
    key: str
    payload: bytes
    timeout: float | None = None
    schema: str | None = None
    record: Mapping[str, Any] | None = None  # as handed to `send` (None for `send_raw`)

    def decoded(self) -> dict[str, Any]:
        return codec.decode(self.payload, expect=self.schema or self.topic.schema)


class FakeProducer:
    """Records what was sent, Avro-encoded like the real one.

    Failure switches: `fail_next = n` fails the next n sends; `down = True` fails every send
    until it is set back; after `close()` every send fails, as with the real producer.
    `attempts` counts every call of `send`/`send_raw`, even one whose record did not fit."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.fail_next = 0
        self.down = False
        self.closed = False
        self.attempts = 0
        self._changed: asyncio.Condition | None = None

    def send(
        self,
        topic: Topic,
        key: str,
        record: Mapping[str, Any],
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, None]:
        self.attempts += 1
        payload = codec.encode(schema or topic.schema, record)  # a schema mismatch fails here
        return self._deliver(Sent(topic, key, payload, timeout, schema, dict(record)))

    def send_raw(
        self, topic: Topic, key: bytes | None, payload: bytes, *, timeout: float | None = None
    ) -> Coroutine[Any, Any, None]:
        self.attempts += 1
        return self._deliver(Sent(topic, (key or b"").decode(), payload, timeout))

    def close(self, timeout: float = 10.0) -> None:
        self.closed = True

    def on(self, topic: Topic) -> list[dict[str, Any]]:
        """The decoded values sent to `topic`, in order."""
        return [s.decoded() for s in self.sent if s.topic is topic]

    def records(self, topic: Topic) -> list[dict[str, Any]]:
        """The records handed to `send` for `topic`, in order, before encoding (timestamps
        stay as the caller gave them)."""
        return [dict(s.record or s.decoded()) for s in self.sent if s.topic is topic]

    def keyed(self, topic: Topic) -> list[tuple[str, dict[str, Any]]]:
        """(key, decoded value) of each send to `topic`, in order."""
        return [(s.key, s.decoded()) for s in self.sent if s.topic is topic]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait (no polling) until `predicate()` holds after some send."""
        cond = self._condition()
        async with cond:
            await asyncio.wait_for(cond.wait_for(predicate), timeout)

    async def _deliver(self, sent: Sent) -> None:
        await asyncio.sleep(0)  # sleep-ok: yield to the event loop, as a broker round trip would
        if self.closed:
            raise KafkaUnavailable("fake producer is closed")
        if self.down:
            raise KafkaUnavailable("fake broker is down")
        if self.fail_next > 0:
            self.fail_next -= 1
            raise KafkaUnavailable("fake broker is down")
        self.sent.append(sent)
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed


class RecordingSleep:
    """A `common.retry.Clock` (and a stand-in for asyncio.sleep) whose sleeps return at
    once and are remembered in `delays`; its time is the real one."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)

    async def __call__(self, delay: float) -> None:
        await self.sleep(delay)


@dataclass
class FakeClock:
    """`common.retry.Clock` whose sleeps return at once and only advance the recorded time."""

    at: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)

    def monotonic(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.at += seconds
        await asyncio.sleep(0)  # sleep-ok: yield to the event loop


class DateClock:
    """A clock whose `now()` is `read()`, a date the test moves by hand; sleeps return at
    once (the lifecycle service reads the date and never sleeps)."""

    def __init__(self, read: Callable[[], datetime]) -> None:
        self._read = read

    def now(self) -> datetime:
        return self._read()

    def monotonic(self) -> float:
        return self._read().timestamp()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # sleep-ok: yield to the event loop


@dataclass
class ManualClock:
    """`common.retry.Clock` on a time `at` (seconds) that only moves when the test calls
    `advance()`; sleepers wake in time order."""

    at: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    _heap: list[tuple[float, int, asyncio.Future[None]]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _changed: asyncio.Condition | None = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)

    def monotonic(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)  # sleep-ok: yield to the event loop
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.at + seconds, next(self._seq), future))
        await self._notify()
        await future

    def sleeping(self) -> int:
        """Sleepers not woken (or cancelled) yet."""
        return sum(1 for _, _, f in self._heap if not f.done())

    async def wait_sleeping(self, count: int, timeout: float = 5.0) -> None:
        """Wait until `count` tasks sleep on this clock."""
        cond = self._condition()
        async with cond:
            await asyncio.wait_for(cond.wait_for(lambda: self.sleeping() >= count), timeout)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its time and letting it run."""
        target = self.at + seconds
        while self._heap and self._heap[0][0] <= target:
            wake, _, future = heapq.heappop(self._heap)
            self.at = max(self.at, wake)
            if not future.done():
                future.set_result(None)
                await _settle()
        self.at = target
        await _settle()

    async def _notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed


async def _settle(rounds: int = 20) -> None:
    """Let ready tasks run until they block again (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)  # sleep-ok: yield to the event loop
