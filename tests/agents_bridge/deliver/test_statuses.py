"""channel.statuses → message_statuses: any order, any number of times, the same row.

The SQL runs against the session PostgreSQL, in a schema of its own with the migrations.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from agents_bridge.deliver.statuses import StatusRecorder, status_lane
from common.consumer import Event
from common.errors import InvalidEvent
from common.topics import Topic
from tests.agents_bridge.bridge_fakes import encoded_event
from tests.pg_schemas import migrated_schema

TENANT = "0b7c2f5e-8a51-4a8e-9d0e-3f1c2b4a5d6e"
PNID, USER, WAMID = "106540352242922", "16505551234", "wamid.OUT1"


def status(name: str, at: int, wamid: str = WAMID, **extra: Any) -> Event:
    record: dict[str, Any] = {
        "event_id": f"whatsapp:{wamid}:{name}",
        "tenant_id": TENANT,
        "channel": "whatsapp",
        "account_id": PNID,
        "message_id": wamid,
        "direction": "out",
        "status": name,
        "counterpart": USER,
        "kind": None,
        "reply_event_id": None,
        "chunk": None,
        "error_code": None,
        "error_title": None,
        "details": {},
        "occurred_at": 1_795_000_000_000 + at * 1000,
    }
    record.update(extra)
    return encoded_event(Topic.CHANNEL_STATUSES, record)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    with migrated_schema(database_url, "test_statuses", [(TENANT, "acme")]) as url:
        pg: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url, min_size=1, max_size=2, open=False, kwargs={"row_factory": dict_row}
        )
        await pg.open(wait=True, timeout=30)
        try:
            yield pg
        finally:
            await pg.close()


async def row(pool: AsyncConnectionPool[Any], wamid: str = WAMID) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM message_statuses WHERE message_id = %s", (wamid,))
        found = await cur.fetchone()
    assert found is not None
    return dict(found)


async def test_statuses_in_order(pool: AsyncConnectionPool[Any]) -> None:
    recorder = StatusRecorder(pool)
    accepted = status("accepted", 0, kind="text", reply_event_id="reply:x", chunk=0)
    for event in (accepted, status("sent", 1), status("delivered", 2), status("read", 3)):
        await recorder.handle(event)
    r = await row(pool)
    assert (r["status"], r["kind"], r["reply_event_id"], r["chunk"]) == (
        "read",
        "text",
        "reply:x",
        0,
    )
    assert r["direction"] == "out" and str(r["tenant_id"]) == TENANT
    assert all(r[f"{s}_at"] is not None for s in ("accepted", "sent", "delivered", "read"))
    assert r["failed_at"] is None


async def test_out_of_order_and_redelivered(pool: AsyncConnectionPool[Any]) -> None:
    recorder = StatusRecorder(pool)
    read, delivered = status("read", 3), status("delivered", 2)
    await recorder.handle(read)
    await recorder.handle(delivered)  # late: must not overwrite read
    await recorder.handle(read)  # Meta redelivers
    await recorder.handle(status("accepted", 0, kind="template", reply_event_id="reply:y", chunk=0))
    r = await row(pool)
    assert (r["status"], r["status_rank"]) == ("read", 3)
    assert (r["kind"], r["reply_event_id"]) == ("template", "reply:y")
    assert r["delivered_at"] < r["read_at"]


async def test_failed_keeps_its_error(pool: AsyncConnectionPool[Any]) -> None:
    recorder = StatusRecorder(pool)
    await recorder.handle(status("sent", 1))
    await recorder.handle(
        status("failed", 2, error_code="131047", error_title="Re-engagement message")
    )
    r = await row(pool)
    assert (r["status"], r["error_code"]) == ("failed", "131047")


async def test_unsupported_inbound_is_recorded(pool: AsyncConnectionPool[Any]) -> None:
    event = status("received", 0, wamid="wamid.IMG", direction="in", kind="image")
    await StatusRecorder(pool).handle(event)
    r = await row(pool, "wamid.IMG")
    assert (r["direction"], r["status"], r["kind"]) == ("in", "received", "image")
    assert r["received_at"] is not None


async def test_unknown_tenant_is_dead_lettered(pool: AsyncConnectionPool[Any]) -> None:
    event = status("sent", 1, tenant_id=str(uuid.uuid4()))
    with pytest.raises(InvalidEvent, match="unstorable"):
        await StatusRecorder(pool).handle(event)


def test_one_message_keeps_one_lane() -> None:
    assert status_lane(status("sent", 1)) == status_lane(status("read", 3))
