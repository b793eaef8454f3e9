"""The agent boundary: nothing escapes, nothing is acknowledged silently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from common.breaker import DlqBreakerTripped
from common.consumer import Event
from common.errors import InvalidEvent, RetryableError
from common.topics import Topic
from schemas import codec
from streams.boundary import Boundary, batches
from tests.fakes import FakeProducer, RecordingSleep
from tests.streams.streams_fakes import inbound_event


async def test_any_exception_is_retried_until_the_handler_succeeds() -> None:
    sleep = RecordingSleep()
    boundary = Boundary("stage", FakeProducer(), clock=sleep)
    calls = 0

    async def flaky(_: Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryableError("later", retry_after=5.0)
        if calls < 4:
            raise RuntimeError("boom")

    assert await boundary.process(inbound_event("e0", 0), flaky) == "ok"
    assert calls == 4
    assert sleep.delays[0] == 5.0
    assert len(sleep.delays) == 3


async def test_an_unencodable_output_is_dead_lettered_not_retried() -> None:
    producer = FakeProducer()
    boundary = Boundary("stage", producer, clock=RecordingSleep())

    async def bad_output(_: Event) -> None:
        raise codec.CodecError("record does not match usage_record")

    assert await boundary.process(inbound_event("e0", 0), bad_output) == "dead_letter"
    [dead] = producer.on(Topic.INBOUND_DLQ)
    assert dead["reason"].startswith("unencodable")


async def test_a_topic_without_dead_letter_topic_only_counts() -> None:
    producer = FakeProducer()
    boundary = Boundary("stage", producer, clock=RecordingSleep())
    event = Event(Topic.USAGE_DLQ, 0, 0, b"k", b"")  # only dead-letter topics have none

    async def invalid(_: Event) -> None:
        raise InvalidEvent("nope")

    assert await boundary.process(event, invalid) == "dead_letter"
    assert producer.sent == []


async def test_cancellation_ends_the_retries() -> None:
    started = asyncio.Event()

    class Stuck(RecordingSleep):
        async def sleep(self, delay: float) -> None:
            started.set()
            await asyncio.Event().wait()  # until cancelled

    boundary = Boundary("stage", FakeProducer(), clock=Stuck())

    async def down(_: Event) -> None:
        raise ConnectionError("down")

    task = asyncio.create_task(boundary.process(inbound_event("e0", 0), down))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class FakeStream:
    """A Faust stream stand-in: events arrive in bursts; between bursts the stream waits
    until the test lets the next burst in (or forever)."""

    def __init__(self, bursts: list[list[str]]) -> None:
        self.bursts = bursts
        self.gates = [asyncio.Event() for _ in bursts]
        self.closed = False

    async def events(self) -> AsyncIterator[str]:
        try:
            for gate, burst in zip(self.gates, self.bursts, strict=True):
                await gate.wait()
                for event in burst:
                    yield event
            await asyncio.Event().wait()  # then nothing more: waits forever
        finally:
            self.closed = True


async def test_a_batch_is_what_has_arrived_and_never_waits_for_more() -> None:
    stream = FakeStream([["a"], ["b", "c", "d", "e", "f"], ["g"]])
    taken = batches(stream, max_size=3)
    stream.gates[0].set()
    assert await asyncio.wait_for(anext(taken), 10) == ["a"]  # deadline, not a delay
    stream.gates[1].set()
    first = await asyncio.wait_for(anext(taken), 10)
    rest = [] if first[-1] == "f" else await asyncio.wait_for(anext(taken), 10)
    assert first + rest == ["b", "c", "d", "e", "f"]
    assert all(len(b) <= 3 for b in (first, rest))
    stream.gates[2].set()
    assert await asyncio.wait_for(anext(taken), 10) == ["g"]  # the stream waits: not we
    await taken.aclose()
    await asyncio.sleep(0)  # sleep-ok: let the cancelled reader finish (a deliberate yield)
    assert stream.closed


async def test_a_stream_that_ends_or_fails_ends_the_batches() -> None:
    class Finite:
        async def events(self) -> AsyncIterator[int]:
            for i in range(3):
                yield i

    got = [x async for b in batches(Finite()) for x in b]
    assert got == [0, 1, 2]

    class Broken:
        async def events(self) -> AsyncIterator[int]:
            yield 1
            raise RuntimeError("consumer crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        async for _ in batches(Broken()):
            pass


async def test_an_invalid_usage_record_goes_to_its_dead_letter_topic() -> None:
    producer = FakeProducer()
    boundary = Boundary("stage", producer, clock=RecordingSleep())
    event = Event(Topic.USAGE, 0, 7, b"k", b"raw")

    async def invalid(_: Event) -> None:
        raise InvalidEvent("nope")

    assert await boundary.process(event, invalid) == "dead_letter"
    [dead] = producer.on(Topic.USAGE_DLQ)
    assert (dead["source_offset"], dead["payload"], dead["reason"]) == (7, b"raw", "nope")


async def test_a_stage_that_dead_letters_most_events_trips_and_stops() -> None:
    producer = FakeProducer()
    boundary = Boundary("stage", producer, clock=RecordingSleep())  # DlqBreaker's defaults
    handled: list[int] = []

    async def invalid(event: Event) -> None:
        handled.append(event.offset)
        raise InvalidEvent("schema_drift: column missing")

    for offset in range(50):  # min_events of the default breaker, all dead-lettered
        assert await boundary.process(inbound_event(f"e{offset}", offset), invalid) == (
            "dead_letter"
        )
    with pytest.raises(DlqBreakerTripped, match="schema_drift"):
        await boundary.process(inbound_event("e50", 50), invalid)
    assert handled == list(range(50))  # the event after the trip was not handled
    assert len(producer.on(Topic.INBOUND_DLQ)) == 50
