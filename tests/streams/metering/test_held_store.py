"""The overage queue against PostgreSQL (each test gets its own schema with the migrations
applied)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from common.errors import InvalidEvent
from streams.metering.held_store import PgHeldQueue
from tests.streams.streams_fakes import OTHER, TENANT

pytestmark = pytest.mark.integration
START_MS = 1_795_000_000_000


async def test_the_queue_keeps_first_insertion_order(pool: AsyncConnectionPool[Any]) -> None:
    queue = PgHeldQueue(pool)
    for event_id in ("e1", "e2", "e1", "e3"):  # e1 again: a replayed hold
        await queue.put(TENANT, event_id, "telegram:1", START_MS, event_id.encode())
    await queue.put(OTHER, "x1", "telegram:2", START_MS, b"x1")
    rows = await queue.after(TENANT, 0, 10)
    assert [(r.event_id, r.payload) for r in rows] == [(b, b.encode()) for b in ("e1", "e2", "e3")]
    seqs = [r.seq for r in rows]
    assert seqs == sorted(seqs)
    assert [r.event_id for r in await queue.after(TENANT, seqs[0], 1)] == ["e2"]
    assert [r.event_id for r in await queue.between(TENANT, seqs[0], seqs[2])] == ["e2", "e3"]
    await queue.mark_released(TENANT, 0, seqs[1])
    async with pool.connection() as conn:
        pending = await (
            await conn.execute(
                "SELECT event_id FROM held_messages WHERE released_at IS NULL ORDER BY seq"
            )
        ).fetchall()
    assert [r[0] for r in pending] == ["e3", "x1"]


async def test_a_hold_for_a_deleted_tenant_is_invalid(pool: AsyncConnectionPool[Any]) -> None:
    with pytest.raises(InvalidEvent, match="23503"):
        await PgHeldQueue(pool).put(str(uuid.uuid4()), "e1", "telegram:1", START_MS, b"")
