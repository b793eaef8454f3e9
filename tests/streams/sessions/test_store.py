"""Session rows and counters: the pure parts always, the SQL against
the session PostgreSQL (each test gets its own schema with the migrations applied)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from common.errors import InvalidEvent
from schemas import codec
from streams.sessions.store import Increments, PgSessionsStore, SessionRow, increments
from tests.streams.streams_fakes import OTHER, TENANT, reply_record, session_record


def row(record: dict[str, Any]) -> SessionRow:
    # through the codec, as the agent sees it (timestamps come back as datetimes)
    return SessionRow.from_record(codec.decode(codec.encode("session_event", record)))


def test_row_from_a_session_event() -> None:
    r = row(reply_record("e0", 120, 30))
    assert r.session_id == "telegram:4242"
    assert r.token_count == 150
    assert r.occurred_at.tzinfo is not None
    assert r.period == date(2026, 11, 1)
    assert row(session_record("e0")).token_count is None
    assert row(session_record("e0", input_tokens=7)).token_count == 7


def test_nul_characters_are_replaced() -> None:
    assert row(session_record("e0", text="a\x00b")).text == "a\ufffdb"


def test_period_is_the_utc_month() -> None:
    late = int(datetime(2026, 11, 30, 23, 59, tzinfo=UTC).timestamp() * 1000)
    assert row(session_record("e0", occurred_at=late)).period == date(2026, 11, 1)


@pytest.mark.parametrize(
    ("record", "flags", "expected"),
    [
        (session_record("e0"), (True, True), Increments(1, 1)),
        (session_record("e0"), (True, False), Increments(0, 1)),
        (session_record("e0", status="held"), (True, False), Increments(0, 1)),
        (reply_record("e0", 100, 20), (True, False), Increments(0, 1)),
        (session_record("e0"), (False, False), Increments()),
        (reply_record("e0", 100, 20), (False, False), Increments()),
    ],
)
def test_increments(record: dict[str, Any], flags: tuple[bool, bool], expected: Increments) -> None:
    inserted, created = flags
    got = increments(row(record), inserted=inserted, session_created=created)
    assert got == expected
    assert bool(got) == (expected != Increments())


# -- PostgreSQL ----------------------------------------------------------------------

needs_db = pytest.mark.integration


async def snapshot(pool: AsyncConnectionPool[Any]) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "sessions": "SELECT * FROM sessions ORDER BY tenant_id, session_id",
        "messages": "SELECT * FROM messages ORDER BY event_id",
        "session_stats": "SELECT * FROM session_stats ORDER BY tenant_id, period, channel",
    }
    async with pool.connection() as conn:
        return {name: await (await conn.execute(q)).fetchall() for name, q in queries.items()}


def conversation() -> list[dict[str, Any]]:
    """Two sessions; a reply with tokens; a held message later released."""
    later = session_record("e0")["occurred_at"] + 60_000
    return [
        session_record("e0"),
        reply_record("e0", 120, 30),
        session_record("e1", occurred_at=later),
        session_record("e2", conversation_id="77", status="held", occurred_at=later + 1),
        session_record("e9", OTHER),
        session_record("e2", conversation_id="77", occurred_at=later + 1),  # released
    ]


@needs_db
async def test_a_conversation_lands_in_every_table(pool: AsyncConnectionPool[Any]) -> None:
    store = PgSessionsStore(pool)
    for record in conversation():
        await store.apply(row(record))
    async with pool.connection() as conn:
        sessions = await (
            await conn.execute(
                "SELECT session_id, message_count, started_at < last_message_at FROM sessions"
                " WHERE tenant_id = %s ORDER BY session_id",
                (TENANT,),
            )
        ).fetchall()
        messages = {
            r[0]: r[1:]
            for r in await (
                await conn.execute(
                    "SELECT event_id, role, status, input_tokens, output_tokens, token_count,"
                    " in_reply_to, metadata FROM messages WHERE tenant_id = %s",
                    (TENANT,),
                )
            ).fetchall()
        }
        stats = await (
            await conn.execute(
                "SELECT channel, session_count, message_count FROM session_stats"
                " WHERE tenant_id = %s",
                (TENANT,),
            )
        ).fetchall()
    assert sessions == [("telegram:4242", 3, True), ("telegram:77", 1, False)]
    assert messages["e0"] == ("user", "admitted", 120, None, 120, None, None)
    assert messages["reply:e0"] == (
        "assistant",
        "replied",
        120,
        30,
        150,
        "e0",
        {"model": "stub-model"},
    )
    assert messages["e2"][:2] == ("user", "admitted")
    assert stats == [("telegram", 2, 4)]


@needs_db
async def test_replaying_everything_leaves_identical_rows(pool: AsyncConnectionPool[Any]) -> None:
    store = PgSessionsStore(pool)
    for record in conversation():
        await store.apply(row(record))
    first = await snapshot(pool)
    for _ in range(2):
        for record in conversation():
            assert not await store.apply(row(record))
    assert await snapshot(pool) == first


@needs_db
async def test_a_reply_stored_before_its_question_still_lends_its_prompt_tokens(
    pool: AsyncConnectionPool[Any],
) -> None:
    store = PgSessionsStore(pool)
    await store.apply(row(reply_record("e0", 120, 30)))
    await store.apply(row(session_record("e0")))
    first = await snapshot(pool)
    user = next(m for m in first["messages"] if m[1] == "e0")
    assert (user[7], user[8], user[9]) == (120, 120, None)  # token_count, input, output
    assert [s[6] for s in first["sessions"]] == [2]  # message_count
    for record in (session_record("e0"), reply_record("e0", 120, 30)):
        await store.apply(row(record))
    assert await snapshot(pool) == first


@needs_db
async def test_a_deleted_tenant_is_an_invalid_event(pool: AsyncConnectionPool[Any]) -> None:
    store = PgSessionsStore(pool)
    with pytest.raises(InvalidEvent, match="23503"):  # foreign_key_violation
        await store.apply(row(session_record("e0", str(uuid.uuid4()))))
    with pytest.raises(InvalidEvent, match="22P02"):  # invalid_text_representation
        await store.apply(row(session_record("e0", "not-a-uuid")))
    assert (await snapshot(pool))["messages"] == []


# -- batches: the same rows as one event at a time ------------------------------------

_TABLES = {
    "sessions": "SELECT tenant_id, session_id, channel, started_at, last_message_at,"
    " message_count, metadata FROM sessions ORDER BY tenant_id, session_id",
    "messages": "SELECT event_id, tenant_id, session_id, role, content, status, token_count,"
    " input_tokens, output_tokens, in_reply_to, created_at, metadata FROM messages"
    " ORDER BY event_id",
    "session_stats": "SELECT * FROM session_stats ORDER BY tenant_id, period, channel",
}


async def contents(pool: AsyncConnectionPool[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every table without its generated ids."""
    async with pool.connection() as conn:
        return {name: await (await conn.execute(q)).fetchall() for name, q in _TABLES.items()}


async def wipe(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM session_stats")
        await conn.execute("DELETE FROM messages")
        await conn.execute("DELETE FROM sessions")


def script(seed: int, n: int = 40) -> list[dict[str, Any]]:
    """Events in a random order: questions (some held, later released), replies (some
    before their question), replays, two tenants, two months."""
    rng = random.Random(seed)
    base = session_record("q0")["occurred_at"]
    out: list[dict[str, Any]] = []
    for _ in range(n):
        q = f"q{rng.randrange(12)}"
        tenant_id = OTHER if q in ("q10", "q11") else TENANT
        conversation_id = str(int(q[1:]) % 3)
        at = base + int(q[1:]) * 60_000 + (40 * 86_400_000 if q == "q9" else 0)
        kind = rng.random()
        if kind < 0.45:
            status = "held" if int(q[1:]) % 4 == 1 and rng.random() < 0.6 else "admitted"
            out.append(
                session_record(
                    q, tenant_id, conversation_id=conversation_id, status=status, occurred_at=at
                )
            )
        elif kind < 0.8:
            out.append(
                reply_record(
                    q,
                    100 + int(q[1:]),
                    20,
                    tenant_id=tenant_id,
                    conversation_id=conversation_id,
                    occurred_at=at + 1500,
                )
            )
        elif out:
            out.append(rng.choice(out))  # a replay
    return out


def chunks(records: list[dict[str, Any]], seed: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    out: list[list[dict[str, Any]]] = []
    i = 0
    while i < len(records):
        size = rng.choice((1, 2, 3, 7, 40))
        out.append(records[i : i + size])
        i += size
    return out


@needs_db
async def test_batches_leave_exactly_the_rows_of_one_event_at_a_time(
    pool: AsyncConnectionPool[Any],
) -> None:
    store = PgSessionsStore(pool)
    scripts = [conversation(), conversation() + conversation()]
    scripts += [[reply_record("e0", 120, 30), session_record("e0")]]
    scripts += [script(seed) for seed in range(8)]
    for n, records in enumerate(scripts):
        one = Increments()
        for record in records:
            d = await store.apply(row(record))
            one = Increments(
                one.stats_sessions + d.stats_sessions, one.stats_messages + d.stats_messages
            )
        expected = await contents(pool)
        await wipe(pool)
        many = Increments()
        for part in chunks(records, n):
            d = await store.apply_batch([row(r) for r in part])
            many = Increments(
                many.stats_sessions + d.stats_sessions, many.stats_messages + d.stats_messages
            )
        assert await contents(pool) == expected, f"script {n}"
        assert many == one
        assert await store.apply_batch([row(r) for r in records]) == Increments()  # a replay
        assert await contents(pool) == expected
        await wipe(pool)


@needs_db
async def test_a_batch_with_a_refused_row_commits_nothing(pool: AsyncConnectionPool[Any]) -> None:
    store = PgSessionsStore(pool)
    with pytest.raises(InvalidEvent, match="23503"):
        await store.apply_batch(
            [row(session_record("e0")), row(session_record("e1", str(uuid.uuid4())))]
        )
    assert (await snapshot(pool))["messages"] == []
    assert await store.apply_batch([row(session_record("e0"))]) == Increments(1, 1)
