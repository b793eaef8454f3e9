"""Usage sink handlers with a fake store: a batch in one call, failures one by one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from common.consumer import Event
from common.errors import InvalidEvent
from common.topics import Topic
from schemas import codec
from streams.boundary import Boundary
from streams.usage.agent import UsageSink
from tests.fakes import FakeProducer, RecordingSleep
from tests.streams.streams_fakes import TENANT


class FakeUsage:
    def __init__(self) -> None:
        self.stored: dict[str, Mapping[str, Any]] = {}
        self.batches: list[int] = []
        self.batch_failures: list[Exception] = []
        self.refused: set[str] = set()
        self.failures: list[Exception] = []

    async def apply(self, record: Mapping[str, Any]) -> bool:
        if self.failures:
            raise self.failures.pop(0)
        if record["usage_id"] in self.refused:
            raise InvalidEvent("rejected by PostgreSQL: 23503: fk")
        new = record["usage_id"] not in self.stored
        self.stored.setdefault(record["usage_id"], record)
        return new

    async def apply_batch(self, records: Sequence[Mapping[str, Any]]) -> int:
        self.batches.append(len(records))
        if self.batch_failures:
            raise self.batch_failures.pop(0)
        return sum([await self.apply(r) for r in records])


def usage_event(offset: int, usage_id: str) -> Event:
    record = {
        "usage_id": usage_id,
        "kind": "message",
        "tenant_id": TENANT,
        "plan_id": "individual",
        "period_start": 0,
        "period_end": 0,
        "channel": "telegram",
        "messages": 1,
        "input_tokens": 0,
        "output_tokens": 0,
        "recorded_at": 0,
    }
    return Event(Topic.USAGE, 0, offset, TENANT.encode(), codec.encode("usage_record", record))


def rig() -> tuple[FakeUsage, UsageSink, Boundary, RecordingSleep]:
    store, sleep = FakeUsage(), RecordingSleep()
    return store, UsageSink(store), Boundary("usage-sink", FakeProducer(), clock=sleep), sleep


async def test_a_batch_is_one_store_call_and_an_undecodable_record_is_set_aside() -> None:
    store, sink, guard, _ = rig()
    events = [usage_event(i, f"msg:e{i}") for i in range(4)]
    events[1].raw = b"junk"
    await sink.handle_batch(events, guard)
    assert store.batches == [3]
    assert sorted(store.stored) == ["msg:e0", "msg:e2", "msg:e3"]


async def test_a_failed_batch_is_stored_again_one_record_at_a_time() -> None:
    store, sink, guard, sleep = rig()
    store.batch_failures = [psycopg.OperationalError("gone")]
    store.failures = [psycopg.OperationalError("still gone")]
    store.refused = {"msg:e2"}
    await sink.handle_batch([usage_event(i, f"msg:e{i}") for i in range(4)], guard)
    assert sorted(store.stored) == ["msg:e0", "msg:e1", "msg:e3"]
    assert len(sleep.delays) == 1  # the first record retried once; msg:e2 refused alone
