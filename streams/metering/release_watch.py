"""Release requests when a tenant's allowance changes: upgrades and new periods.

Metering releases held messages when the tenant's next message arrives, but a tenant whose
users wait for an answer may send nothing more. So this task, in every stream worker,
follows the tenant directory (which follows PostgreSQL by LISTEN/NOTIFY) and, whenever a
tenant's allowance changes (plan, limit, period start or status: an upgrade, a renewal, an
operator edit, a suspended tenant back in service), puts a request on quota.releases, keyed
by tenant so it reaches the worker that owns the tenant's meter. At start-up it asks for
every tenant with held messages (the allowance may have changed while no worker was running).

Requests are cheap and idempotent: a tenant with nothing held or no room changes nothing,
so several workers asking for the same tenant do no harm.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool

from common.directory import Tenant
from common.kafka import EventSink
from common.timeconv import now_ms
from common.topics import Topic

log = logging.getLogger(__name__)

Allowance = tuple[str | None, int | None, datetime | None, str]


class Directory(Protocol):
    version: int

    def tenants(self) -> list[Tenant]: ...


def allowance(tenant: Tenant) -> Allowance:
    return (tenant.plan_id, tenant.msg_limit, tenant.period_start, tenant.status)


def changed(before: dict[str, Allowance], tenants: Iterable[Tenant]) -> list[str]:
    """Tenants whose allowance differs from `before` (new tenants are not changes)."""
    return [
        t.tenant_id
        for t in tenants
        if t.tenant_id in before and before[t.tenant_id] != allowance(t)
    ]


def request(tenant_id: str, reason: str) -> dict[str, Any]:
    return {
        "request_id": uuid.uuid4().hex,
        "tenant_id": tenant_id,
        "reason": reason,
        "requested_at": now_ms(),
    }


_PENDING = "SELECT DISTINCT tenant_id::text FROM held_messages WHERE released_at IS NULL"


class ReleaseWatch:
    def __init__(
        self,
        directory: Directory,
        producer: EventSink,
        pool: AsyncConnectionPool[Any],
        *,
        poll_s: float = 0.5,
    ) -> None:
        self._directory = directory
        self._producer = producer
        self._pool = pool
        self._poll_s = poll_s

    async def ask(self, tenant_ids: Iterable[str], reason: str) -> None:
        for tenant_id in tenant_ids:
            await self._producer.send(Topic.RELEASES, tenant_id, request(tenant_id, reason))
            log.info("release requested for tenant %s (%s)", tenant_id, reason)

    async def _query(self, sql: str) -> list[Any]:
        async with self._pool.connection() as conn:
            return list(await (await conn.execute(sql)).fetchall())

    async def run(self) -> None:
        """Until cancelled; PostgreSQL and broker failures are logged and retried."""
        while True:
            try:
                await self.ask([str(r[0]) for r in await self._query(_PENDING)], "startup")
                break
            except Exception as err:  # keep watching: the next attempt may work
                log.warning("release watch: start-up requests failed (%s), retrying", err)
                await asyncio.sleep(2.0)
        version = self._directory.version
        before = {t.tenant_id: allowance(t) for t in self._directory.tenants()}
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                if self._directory.version != version:
                    tenants = self._directory.tenants()
                    await self.ask(changed(before, tenants), "allowance_changed")
                    version = self._directory.version
                    before = {t.tenant_id: allowance(t) for t in tenants}
            except Exception as err:
                log.warning("release watch: %s (%s), retrying", type(err).__name__, err)
