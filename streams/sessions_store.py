"""PostgreSQL writes of session-sync: one transaction per SessionEvent, idempotent by event id.

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
is kept from usage.records by `streams.usage_store`, the stream billing sums.)

Errors: `psycopg.IntegrityError` / `psycopg.DataError` (the tenant was deleted, a value
PostgreSQL refuses) become `InvalidEvent`; everything else (`OperationalError`, pool
timeouts) propagates and is retried by the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from common.errors import InvalidEvent
from common.telemetry import PG_WRITE_SECONDS


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
    def from_record(cls, record: dict[str, Any]) -> SessionRow:
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


_NEW_SESSION = """
INSERT INTO sessions (tenant_id, session_id, channel, started_at, last_message_at, message_count)
VALUES (%(tenant_id)s, %(session_id)s, %(channel)s, %(at)s, %(at)s, 0)
ON CONFLICT (tenant_id, session_id) DO NOTHING
RETURNING id
"""
_TOUCH_SESSION = """
UPDATE sessions
SET started_at = LEAST(started_at, %(at)s), last_message_at = GREATEST(last_message_at, %(at)s)
WHERE tenant_id = %(tenant_id)s AND session_id = %(session_id)s
"""
_NEW_MESSAGE = """
INSERT INTO messages (event_id, tenant_id, session_id, role, content, status, token_count,
                      input_tokens, output_tokens, in_reply_to, created_at, metadata)
SELECT %(event_id)s, %(tenant_id)s::uuid, %(session_id)s, %(role)s, %(text)s, %(status)s,
       COALESCE(%(token_count)s::int, reply.input_tokens),
       COALESCE(%(input_tokens)s::int, reply.input_tokens),
       %(output_tokens)s::int, %(in_reply_to)s, %(at)s::timestamptz, %(metadata)s::jsonb
FROM (SELECT 1) AS one
LEFT JOIN messages reply  -- the reply arrived first: take its prompt tokens now
  ON %(role)s = 'user' AND reply.event_id = 'reply:' || %(event_id)s
  AND reply.in_reply_to = %(event_id)s AND reply.tenant_id = %(tenant_id)s::uuid
ON CONFLICT (event_id) DO NOTHING
RETURNING id
"""
_FILL_TOKENS = """
UPDATE messages
SET input_tokens = COALESCE(input_tokens, %(input_tokens)s),
    output_tokens = COALESCE(output_tokens, %(output_tokens)s),
    token_count = COALESCE(token_count, %(token_count)s)
WHERE event_id = %(event_id)s
  AND ((input_tokens IS NULL AND %(input_tokens)s::bigint IS NOT NULL)
    OR (output_tokens IS NULL AND %(output_tokens)s::bigint IS NOT NULL))
"""
_RELEASE = """
UPDATE messages SET status = 'admitted'
WHERE event_id = %(event_id)s AND role = 'user' AND status = 'held'
RETURNING id
"""
_PROMPT_TOKENS = """
UPDATE messages
SET input_tokens = %(input_tokens)s, token_count = COALESCE(token_count, %(input_tokens)s)
WHERE event_id = %(in_reply_to)s AND tenant_id = %(tenant_id)s AND input_tokens IS NULL
"""
_COUNT_MESSAGES = """
UPDATE sessions
SET message_count = (SELECT count(*) FROM messages m
                     WHERE m.tenant_id = %(tenant_id)s AND m.session_id = %(session_id)s)
WHERE tenant_id = %(tenant_id)s AND session_id = %(session_id)s
"""
_STATS = """
INSERT INTO session_stats (tenant_id, period, channel, session_count, message_count)
VALUES (%(tenant_id)s, %(period)s, %(channel)s, %(sessions)s, %(messages)s)
ON CONFLICT (tenant_id, period, channel) DO UPDATE
SET session_count = session_stats.session_count + EXCLUDED.session_count,
    message_count = session_stats.message_count + EXCLUDED.message_count
"""


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
    created = await (await conn.execute(_NEW_SESSION, params)).fetchone() is not None
    if not created:
        await conn.execute(_TOUCH_SESSION, params)
    inserted = await (await conn.execute(_NEW_MESSAGE, params)).fetchone() is not None
    if not inserted:
        await conn.execute(_FILL_TOKENS, params)
        if row.role == "user" and row.status == "admitted":
            await conn.execute(_RELEASE, params)
    if row.role == "assistant" and row.in_reply_to and row.input_tokens is not None:
        await conn.execute(_PROMPT_TOKENS, params)
    if inserted:
        await conn.execute(_COUNT_MESSAGES, params)
    delta = increments(row, inserted=inserted, session_created=created)
    if delta.stats_sessions or delta.stats_messages:
        await conn.execute(
            _STATS,
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
