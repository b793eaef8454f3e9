"""The overage queue in PostgreSQL: `held_messages`, one row per held message, FIFO by `seq`.

Why PostgreSQL and not the messages.held topic: a message may wait a whole billing period
(longer than a topic's retention), a release needs "the next N rows of this tenant" (an
index range, not a scan of a partition), and rows must never be lost.

Metering is the only writer and handles one tenant's events one at a time, so rows are
inserted in decision order and `seq` is the tenant's original order. `put` is idempotent by
(tenant, `event_id`) (a replayed hold keeps its first `seq`). Which rows are released is decided by
the meter state (`released_seq`); `mark_released` only records it here for operators.

Errors: `IntegrityError`/`DataError` (the tenant was deleted) become `InvalidEvent`;
anything else propagates and is retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from common.errors import InvalidEvent
from common.telemetry import PG_WRITE_SECONDS


@dataclass(frozen=True)
class HeldRow:
    seq: int
    event_id: str
    payload: bytes


class HeldQueue(Protocol):
    async def put(
        self,
        tenant_id: str,
        event_id: str,
        conversation: str,
        period_start_ms: int,
        payload: bytes,
    ) -> None: ...

    async def after(self, tenant_id: str, after_seq: int, limit: int) -> list[HeldRow]:
        """The next `limit` rows with seq > `after_seq`, in order."""
        ...

    async def between(self, tenant_id: str, after_seq: int, upto_seq: int) -> list[HeldRow]:
        """The rows with `after_seq` < seq <= `upto_seq`, in order."""
        ...

    async def mark_released(self, tenant_id: str, after_seq: int, upto_seq: int) -> None: ...


_PUT = """
INSERT INTO held_messages (tenant_id, event_id, conversation, period_start, payload)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, event_id) DO NOTHING
"""
_AFTER = """
SELECT seq, event_id, payload FROM held_messages
WHERE tenant_id = %s AND seq > %s ORDER BY seq LIMIT %s
"""
_BETWEEN = """
SELECT seq, event_id, payload FROM held_messages
WHERE tenant_id = %s AND seq > %s AND seq <= %s ORDER BY seq
"""
_MARK = """
UPDATE held_messages SET released_at = NOW()
WHERE tenant_id = %s AND seq > %s AND seq <= %s AND released_at IS NULL
"""


class PgHeldQueue:
    """`HeldQueue` on a psycopg pool."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.IntegrityError, psycopg.DataError) as err:
            state = err.sqlstate or type(err).__name__
            raise InvalidEvent(f"rejected by PostgreSQL: {state}: {err}") from err

    async def put(
        self,
        tenant_id: str,
        event_id: str,
        conversation: str,
        period_start_ms: int,
        payload: bytes,
    ) -> None:
        start = datetime.fromtimestamp(period_start_ms / 1000, UTC)
        with PG_WRITE_SECONDS.labels("held_messages").time():
            async with self._conn() as conn:
                await conn.execute(_PUT, (tenant_id, event_id, conversation, start, payload))

    async def after(self, tenant_id: str, after_seq: int, limit: int) -> list[HeldRow]:
        async with self._conn() as conn:
            rows = await (await conn.execute(_AFTER, (tenant_id, after_seq, limit))).fetchall()
        return [HeldRow(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    async def between(self, tenant_id: str, after_seq: int, upto_seq: int) -> list[HeldRow]:
        async with self._conn() as conn:
            cur = await conn.execute(_BETWEEN, (tenant_id, after_seq, upto_seq))
            rows = await cur.fetchall()
        return [HeldRow(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    async def mark_released(self, tenant_id: str, after_seq: int, upto_seq: int) -> None:
        if upto_seq <= after_seq:
            return
        with PG_WRITE_SECONDS.labels("held_messages").time():
            async with self._conn() as conn:
                await conn.execute(_MARK, (tenant_id, after_seq, upto_seq))
