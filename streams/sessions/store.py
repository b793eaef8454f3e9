"""PostgreSQL writes of session-sync, idempotent by event id: `apply` writes one SessionEvent
in its own transaction, `apply_batch` many in one transaction (set-based: the rows are
COPYed into a temporary table, then a handful of statements insert and update from it).
The statements themselves are in `streams.sessions.sql`.

Replaying session.events from offset 0 leaves identical rows, because every write either
keeps what is there or is derived from what is there:

- `sessions`: inserted once per (tenant_id, session_id = "<channel>:<conversation_id>");
  `started_at` only moves earlier, `last_message_at` only later, and `message_count` is
  recomputed as the number of the session's `messages` rows;
- `messages`: inserted once per `event_id` (`ON CONFLICT DO NOTHING RETURNING id` tells
  whether this event inserted it); a later event for the same id only fills token counts
  that are still missing, and turns a `held` user message `admitted` (release from hold).
  A reply's `input_tokens` are copied onto the user message it answers, whichever of the
  two arrives first (replies are `reply:<event_id>`, see the SessionEvent schema);
- `session_stats`: incremented only in the transaction that inserted the message row, so a
  replay adds nothing.

`session_stats.period` is the first day of the UTC calendar month of `occurred_at`: the
subscription period is not part of a SessionEvent. (`usage_logs`, per subscription period,
is kept from usage.records by `streams.usage.store`, the stream billing sums.)

A batch leaves exactly the rows the same events applied one by one in order would leave:
sessions are inserted or widened once per session (earliest start, latest message); a
message is inserted from the first occurrence of its event id, later occurrences (and
rows already there) only fill missing token counts and turn `held` into `admitted`; the
prompt tokens of replies are copied after the inserts, so a question and its reply in the
same batch meet in either order; message counts are recounted for the sessions that got
rows; and `session_stats` adds what the inserts added (a session counts when the event that
created it inserted its message).

Errors: `psycopg.IntegrityError` / `psycopg.DataError` (the tenant was deleted, a value
PostgreSQL refuses) become `InvalidEvent`; everything else (`OperationalError`, pool
timeouts) propagates and is retried by the agent. A batch fails as a whole (nothing of it
is committed); the agent then applies its events one by one, so one refused row is
dead-lettered alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from common.errors import InvalidEvent
from common.telemetry import PG_WRITE_SECONDS
from streams.sessions import sql


@dataclass(frozen=True)
class SessionRow:
    """One SessionEvent as the tables need it."""

    event_id: str
    tenant_id: str
    channel: str
    conversation_id: str
    role: str
    text: str
    status: str
    in_reply_to: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None
    occurred_at: datetime

    @property
    def session_id(self) -> str:
        return f"{self.channel}:{self.conversation_id}"

    @property
    def token_count(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    @property
    def period(self) -> date:
        """First day of the UTC month of `occurred_at`."""
        at = self.occurred_at.astimezone(UTC)
        return date(at.year, at.month, 1)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SessionRow:
        occurred = record["occurred_at"]
        if not isinstance(occurred, datetime):
            occurred = datetime.fromtimestamp(int(occurred) / 1000, UTC)
        return cls(
            event_id=record["event_id"],
            tenant_id=record["tenant_id"],
            channel=record["channel"],
            conversation_id=record["conversation_id"],
            role=record["role"],
            text=record["text"].replace("\x00", "\ufffd"),  # PostgreSQL text has no NUL
            status=record["status"],
            in_reply_to=record.get("in_reply_to"),
            input_tokens=record.get("input_tokens"),
            output_tokens=record.get("output_tokens"),
            model=record.get("model"),
            occurred_at=occurred,
        )


@dataclass(frozen=True)
class Increments:
    """What one event adds to the counters (all zero for a replay)."""

    stats_sessions: int = 0
    stats_messages: int = 0

    def __bool__(self) -> bool:
        return bool(self.stats_sessions or self.stats_messages)


def increments(row: SessionRow, *, inserted: bool, session_created: bool) -> Increments:
    """Counter deltas, given what the event changed in `messages` and `sessions`.

    `inserted`: this event created the message row; `session_created`: it created the
    session row.
    """
    if not inserted:
        return Increments()
    return Increments(stats_sessions=1 if session_created else 0, stats_messages=1)


class SessionsStore(Protocol):
    async def apply(self, row: SessionRow) -> Increments: ...

    async def apply_batch(self, rows: Sequence[SessionRow]) -> Increments:
        """All rows in one transaction, as if applied one by one in order; the sum."""
        ...


async def write_event(conn: psycopg.AsyncConnection[Any], row: SessionRow) -> Increments:
    """All writes for one event, inside the caller's transaction."""
    params: dict[str, Any] = {
        "event_id": row.event_id,
        "tenant_id": row.tenant_id,
        "session_id": row.session_id,
        "channel": row.channel,
        "at": row.occurred_at,
        "role": row.role,
        "text": row.text,
        "status": row.status,
        "token_count": row.token_count,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "in_reply_to": row.in_reply_to,
        "metadata": Jsonb({"model": row.model}) if row.model else None,
        "period": row.period,
    }
    created = await (await conn.execute(sql.NEW_SESSION, params)).fetchone() is not None
    if not created:
        await conn.execute(sql.TOUCH_SESSION, params)
    inserted = await (await conn.execute(sql.NEW_MESSAGE, params)).fetchone() is not None
    if not inserted:
        await conn.execute(sql.FILL_TOKENS, params)
        if row.role == "user" and row.status == "admitted":
            await conn.execute(sql.RELEASE, params)
    if row.role == "assistant" and row.in_reply_to and row.input_tokens is not None:
        await conn.execute(sql.PROMPT_TOKENS, params)
    if inserted:
        await conn.execute(sql.COUNT_MESSAGES, params)
    delta = increments(row, inserted=inserted, session_created=created)
    if delta.stats_sessions or delta.stats_messages:
        await conn.execute(
            sql.STATS,
            {**params, "sessions": delta.stats_sessions, "messages": delta.stats_messages},
        )
    return delta


class PgSessionsStore:
    """`SessionsStore` on a psycopg pool: one committed transaction per event."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def apply(self, row: SessionRow) -> Increments:
        try:
            with PG_WRITE_SECONDS.labels("messages").time():
                async with self._pool.connection() as conn, conn.transaction():
                    return await write_event(conn, row)
        except (psycopg.IntegrityError, psycopg.DataError) as err:
            state = err.sqlstate or type(err).__name__
            raise InvalidEvent(f"rejected by PostgreSQL: {state}: {err}") from err

    async def apply_batch(self, rows: Sequence[SessionRow]) -> Increments:
        if not rows:
            return Increments()
        try:
            with PG_WRITE_SECONDS.labels("messages_batch").time():
                async with self._pool.connection() as conn, conn.transaction():
                    return await write_batch(conn, rows)
        except (psycopg.IntegrityError, psycopg.DataError) as err:
            state = err.sqlstate or type(err).__name__
            raise InvalidEvent(f"rejected by PostgreSQL: {state}: {err}") from err


# -- a batch in one transaction ---------------------------------------------------------


async def write_batch(conn: psycopg.AsyncConnection[Any], rows: Sequence[SessionRow]) -> Increments:
    """All writes for `rows` (in order), inside the caller's transaction.

    The statements that need no answer from the one before are sent together (psycopg
    pipeline mode: one round trip instead of one each); COPY cannot be pipelined."""
    await conn.execute(sql.BATCH_TABLE)
    async with conn.cursor() as cur, cur.copy(sql.BATCH_COPY) as copy:
        for i, row in enumerate(rows):
            await copy.write_row(
                (
                    i,
                    row.event_id,
                    row.tenant_id,
                    row.session_id,
                    row.channel,
                    row.occurred_at,
                    row.role,
                    row.text,
                    row.status,
                    row.token_count,
                    row.input_tokens,
                    row.output_tokens,
                    row.in_reply_to,
                    row.model,
                )
            )
    async with conn.pipeline():
        sessions = await conn.execute(sql.BATCH_SESSIONS)
        messages = await conn.execute(sql.BATCH_MESSAGES)
        created = {(str(t), str(s)) for t, s in await sessions.fetchall()}
        inserted = {str(r[0]) for r in await messages.fetchall()}
    totals = batch_increments(rows, inserted=inserted, created=created)
    async with conn.pipeline():
        await conn.execute(sql.BATCH_FILL)
        await conn.execute(sql.BATCH_PROMPT_TOKENS)
        await conn.execute(sql.BATCH_TOUCH_SESSIONS, {"inserted": sorted(inserted)})
        if totals:
            keys = sorted(totals)
            await conn.execute(
                sql.BATCH_STATS,
                {
                    "tenant_id": [k[0] for k in keys],
                    "period": [k[1] for k in keys],
                    "channel": [k[2] for k in keys],
                    "sessions": [totals[k].stats_sessions for k in keys],
                    "messages": [totals[k].stats_messages for k in keys],
                },
            )
    return Increments(
        stats_sessions=sum(d.stats_sessions for d in totals.values()),
        stats_messages=sum(d.stats_messages for d in totals.values()),
    )


def batch_increments(
    rows: Sequence[SessionRow], *, inserted: set[str], created: set[tuple[str, str]]
) -> dict[tuple[str, date, str], Increments]:
    """What `rows` add to `session_stats`, per (tenant, period, channel): the row that
    inserted a message counts it (the first one of its event id), and the first row of a
    session created by the batch counts the session if it inserted its message."""
    out: dict[tuple[str, date, str], Increments] = {}
    counted: set[str] = set()
    opened: set[tuple[str, str]] = set()
    for row in rows:
        session = (str(uuid.UUID(row.tenant_id)), row.session_id)  # as RETURNING prints it
        first_of_session = session in created and session not in opened
        opened.add(session)
        if row.event_id not in inserted or row.event_id in counted:
            continue
        counted.add(row.event_id)
        delta = increments(row, inserted=True, session_created=first_of_session)
        key = (row.tenant_id, row.period, row.channel)
        have = out.get(key, Increments())
        out[key] = Increments(
            have.stats_sessions + delta.stats_sessions, have.stats_messages + delta.stats_messages
        )
    return out
