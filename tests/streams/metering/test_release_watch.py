"""The release watch: a request per tenant whose allowance changed, and at start-up for
every tenant with held messages."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from common.directory import Tenant
from common.topics import Topic
from devstack.probes import eventually
from streams.metering.release_watch import ReleaseWatch, allowance, changed
from tests.fakes import FakeProducer
from tests.streams.streams_fakes import OTHER, PERIOD_END, TENANT, tenant


class Directory:
    def __init__(self, *tenants: Tenant) -> None:
        self.version = 1
        self._tenants = list(tenants)

    def tenants(self) -> list[Tenant]:
        return list(self._tenants)

    def swap(self, *tenants: Tenant) -> None:
        self._tenants = list(tenants)
        self.version += 1


class Watch(ReleaseWatch):
    """With the queue query answered from a list instead of PostgreSQL."""

    def __init__(self, directory: Directory, producer: FakeProducer, pending: list[str]) -> None:
        super().__init__(directory, producer, pool=None, poll_s=0.01)  # type: ignore[arg-type]
        self.pending = pending

    async def _query(self, sql: str) -> list[Any]:
        return [(t,) for t in self.pending]


def test_only_a_changed_allowance_counts() -> None:
    a, b = tenant(), tenant(OTHER)
    before = {t.tenant_id: allowance(t) for t in (a, b)}
    assert changed(before, [a, b]) == []
    assert changed(before, [replace(a, msg_limit=10_000), b]) == [TENANT]
    assert changed(before, [a, replace(b, period_start=PERIOD_END)]) == [OTHER]
    assert changed(before, [replace(a, gateway_url="http://elsewhere")]) == []  # not allowance
    assert changed({}, [a]) == []  # a new tenant has nothing held
    assert changed(before, [replace(a, status="suspended"), b]) == [TENANT]  # and back later


async def test_requests_at_start_up_and_on_changes() -> None:
    directory = Directory(tenant(), tenant(OTHER))
    producer = FakeProducer()
    watch = Watch(directory, producer, pending=[OTHER])
    task = asyncio.create_task(watch.run())

    def asked() -> list[tuple[str, str]]:
        return [(r["tenant_id"], r["reason"]) for r in producer.on(Topic.RELEASES)]

    async def probe(n: int) -> list[tuple[str, str]] | None:
        return asked() if len(asked()) >= n else None

    try:
        assert await eventually(lambda: probe(1), timeout=5, what="start-up") == [
            (OTHER, "startup")
        ]
        directory.swap(tenant(), tenant(OTHER))  # reloaded, nothing changed
        later = PERIOD_END + timedelta(days=30)
        directory.swap(tenant(period_start=PERIOD_END, period_end=later), tenant(OTHER))
        got = await eventually(lambda: probe(2), timeout=5, what="the change")
        assert got == [(OTHER, "startup"), (TENANT, "allowance_changed")]
        assert all(s.key == s.decoded()["tenant_id"] for s in producer.sent)
    finally:
        task.cancel()
