"""The usage ledger against PostgreSQL (each test gets its own schema with the migrations
applied)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from common.errors import InvalidEvent
from schemas import codec
from streams.usage.store import PgUsageStore
from tests.streams.streams_fakes import TENANT

pytestmark = pytest.mark.integration
START_MS = 1_795_000_000_000


def usage(usage_id: str, kind: str = "message", **changes: Any) -> dict[str, Any]:
    record = {
        "usage_id": usage_id,
        "kind": kind,
        "tenant_id": TENANT,
        "plan_id": "individual",
        "period_start": START_MS,
        "period_end": START_MS + 30 * 86_400_000,
        "channel": "telegram",
        "messages": 1 if kind == "message" else 0,
        "input_tokens": 0 if kind == "message" else 11,
        "output_tokens": 0 if kind == "message" else 7,
        "recorded_at": START_MS + 1000,
        **changes,
    }
    return codec.decode(codec.encode("usage_record", record))  # as the agent sees it


async def usage_logs(pool: AsyncConnectionPool[Any]) -> list[tuple[Any, ...]]:
    """(period, message_count, token_count) of every usage_logs row, by period."""
    async with pool.connection() as conn:
        rows: list[tuple[Any, ...]] = await (
            await conn.execute(
                "SELECT period, message_count, token_count FROM usage_logs ORDER BY period"
            )
        ).fetchall()
    return rows


async def test_usage_logs_sum_each_usage_id_once_per_period(
    pool: AsyncConnectionPool[Any],
) -> None:
    store = PgUsageStore(pool)
    later = START_MS + 30 * 86_400_000
    records = [
        usage("msg:e1"),
        usage("tok:e1", "tokens"),
        usage("msg:e2"),
        usage("msg:e3", period_start=later, period_end=later + 30 * 86_400_000),
    ]
    assert [await store.apply(r) for r in records] == [True] * 4
    assert [await store.apply(r) for r in records + records] == [False] * 8  # replays
    logs = await usage_logs(pool)
    first = datetime.fromtimestamp(START_MS / 1000, UTC).date()
    assert logs == [(first, 2, 18), (date(2026, 12, 18), 1, 0)]
    assert first == date(2026, 11, 18)


async def test_a_batch_of_usage_records_sums_like_one_at_a_time(
    pool: AsyncConnectionPool[Any],
) -> None:
    store = PgUsageStore(pool)
    later = START_MS + 30 * 86_400_000
    records = [
        usage("msg:e1"),
        usage("tok:e1", "tokens"),
        usage("msg:e1"),  # published twice: once
        usage("msg:e2", recorded_at=START_MS + 5),
        usage("tok:e0", "tokens", input_tokens=0, output_tokens=0),  # adds nothing
        usage("msg:e3", period_start=later, period_end=later + 30 * 86_400_000),
    ]
    assert await store.apply(records[0]) is True  # already stored before the batch
    assert await store.apply_batch(records) == 4
    assert await store.apply_batch(records) == 0  # a replay
    logs = await usage_logs(pool)
    async with pool.connection() as conn:
        ids = await (await conn.execute("SELECT usage_id FROM usage_records ORDER BY 1")).fetchall()
    first = datetime.fromtimestamp(START_MS / 1000, UTC).date()
    assert logs == [(first, 2, 18), (date(2026, 12, 18), 1, 0)]
    assert [i[0] for i in ids] == ["msg:e1", "msg:e2", "msg:e3", "tok:e0", "tok:e1"]
    with pytest.raises(InvalidEvent):
        await store.apply_batch([usage("msg:x", tenant_id="not-a-uuid")])
