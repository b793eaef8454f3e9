"""PostgreSQL writes of session-sync, idempotent by event id: `apply` writes one SessionEvent
in its own transaction, `apply_batch` many in one transaction (set-based: the rows are
COPYed into a temporary table, then a handful of statements insert and update from it).

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
from collections.abc import Sequence
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

    async def apply_batch(self, rows: Sequence[SessionRow]) -> Increments:
        """All rows in one transaction, as if applied one by one in order; the sum."""
        ...


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

# One per connection, emptied at every commit.
_BATCH_TABLE = """
CREATE TEMPORARY TABLE IF NOT EXISTS session_batch (
  ord           INT NOT NULL,
  event_id      TEXT NOT NULL,
  tenant_id     UUID NOT NULL,
  session_id    TEXT NOT NULL,
  channel       TEXT NOT NULL,
  at            TIMESTAMPTZ NOT NULL,
  role          TEXT NOT NULL,
  content       TEXT,
  status        TEXT NOT NULL,
  token_count   INT,
  input_tokens  INT,
  output_tokens INT,
  in_reply_to   TEXT,
  model         TEXT
) ON COMMIT DELETE ROWS
"""
_BATCH_COPY = """
COPY session_batch (ord, event_id, tenant_id, session_id, channel, at, role, content, status,
                    token_count, input_tokens, output_tokens, in_reply_to, model) FROM STDIN
"""
_BATCH_SESSIONS = """
INSERT INTO sessions (tenant_id, session_id, channel, started_at, last_message_at, message_count)
SELECT tenant_id, session_id, (array_agg(channel ORDER BY ord))[1], min(at), max(at), 0
FROM session_batch GROUP BY tenant_id, session_id ORDER BY tenant_id, session_id
ON CONFLICT (tenant_id, session_id) DO NOTHING
RETURNING tenant_id::text, session_id
"""
_BATCH_MESSAGES = """
INSERT INTO messages (event_id, tenant_id, session_id, role, content, status, token_count,
                      input_tokens, output_tokens, in_reply_to, created_at, metadata)
SELECT b.event_id, b.tenant_id, b.session_id, b.role, b.content, b.status,
       COALESCE(b.token_count, reply.input_tokens), COALESCE(b.input_tokens, reply.input_tokens),
       b.output_tokens, b.in_reply_to, b.at,
       CASE WHEN b.model <> '' THEN jsonb_build_object('model', b.model) END
FROM (SELECT DISTINCT ON (event_id) * FROM session_batch ORDER BY event_id, ord) AS b
LEFT JOIN messages reply  -- a reply stored earlier: take its prompt tokens now
  ON b.role = 'user' AND reply.event_id = 'reply:' || b.event_id
  AND reply.in_reply_to = b.event_id AND reply.tenant_id = b.tenant_id
ORDER BY b.ord
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
_BATCH_FILL = """
UPDATE messages m
SET input_tokens = COALESCE(m.input_tokens, f.input_tokens),
    output_tokens = COALESCE(m.output_tokens, f.output_tokens),
    token_count = COALESCE(m.token_count, f.token_count),
    status = CASE WHEN f.release AND m.role = 'user' AND m.status = 'held'
                  THEN 'admitted' ELSE m.status END
FROM (SELECT event_id,
             (array_agg(input_tokens ORDER BY ord) FILTER (WHERE input_tokens IS NOT NULL))[1]
               AS input_tokens,
             (array_agg(output_tokens ORDER BY ord) FILTER (WHERE output_tokens IS NOT NULL))[1]
               AS output_tokens,
             (array_agg(token_count ORDER BY ord) FILTER (WHERE token_count IS NOT NULL))[1]
               AS token_count,
             bool_or(role = 'user' AND status = 'admitted') AS release
      FROM session_batch GROUP BY event_id) AS f
WHERE m.event_id = f.event_id
  AND ((m.input_tokens IS NULL AND f.input_tokens IS NOT NULL)
    OR (m.output_tokens IS NULL AND f.output_tokens IS NOT NULL)
    OR (f.release AND m.role = 'user' AND m.status = 'held'))
"""
_BATCH_PROMPT_TOKENS = """
UPDATE messages m
SET input_tokens = r.input_tokens, token_count = COALESCE(m.token_count, r.input_tokens)
FROM (SELECT DISTINCT ON (in_reply_to, tenant_id) in_reply_to, tenant_id, input_tokens
      FROM session_batch
      WHERE role = 'assistant' AND in_reply_to <> '' AND input_tokens IS NOT NULL
      ORDER BY in_reply_to, tenant_id, ord) AS r
WHERE m.event_id = r.in_reply_to AND m.tenant_id = r.tenant_id AND m.input_tokens IS NULL
"""
# the sessions already there: widened to the batch's times; every session that got a
# message: its count recomputed
_BATCH_TOUCH_SESSIONS = """
UPDATE sessions s
SET started_at = LEAST(s.started_at, b.first_at),
    last_message_at = GREATEST(s.last_message_at, b.last_at),
    message_count = CASE WHEN b.got_messages
                         THEN (SELECT count(*) FROM messages m
                               WHERE m.tenant_id = s.tenant_id AND m.session_id = s.session_id)
                         ELSE s.message_count END
FROM (SELECT tenant_id, session_id, min(at) AS first_at, max(at) AS last_at,
             bool_or(event_id = ANY(%(inserted)s::text[])) AS got_messages
      FROM session_batch GROUP BY tenant_id, session_id) AS b
WHERE s.tenant_id = b.tenant_id AND s.session_id = b.session_id
  AND (b.got_messages OR (s.started_at, s.last_message_at) IS DISTINCT FROM
       (LEAST(s.started_at, b.first_at), GREATEST(s.last_message_at, b.last_at)))
"""
_BATCH_STATS = """
INSERT INTO session_stats (tenant_id, period, channel, session_count, message_count)
SELECT * FROM unnest(%(tenant_id)s::uuid[], %(period)s::date[], %(channel)s::text[],
                     %(sessions)s::int[], %(messages)s::int[])
ORDER BY 1, 2, 3
ON CONFLICT (tenant_id, period, channel) DO UPDATE
SET session_count = session_stats.session_count + EXCLUDED.session_count,
    message_count = session_stats.message_count + EXCLUDED.message_count
"""


async def write_batch(conn: psycopg.AsyncConnection[Any], rows: Sequence[SessionRow]) -> Increments:
    """All writes for `rows` (in order), inside the caller's transaction.

    The statements that need no answer from the one before are sent together (psycopg
    pipeline mode: one round trip instead of one each); COPY cannot be pipelined."""
    await conn.execute(_BATCH_TABLE)
    async with conn.cursor() as cur, cur.copy(_BATCH_COPY) as copy:
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
        sessions = await conn.execute(_BATCH_SESSIONS)
        messages = await conn.execute(_BATCH_MESSAGES)
        created = {(str(t), str(s)) for t, s in await sessions.fetchall()}
        inserted = {str(r[0]) for r in await messages.fetchall()}
    totals = batch_increments(rows, inserted=inserted, created=created)
    async with conn.pipeline():
        await conn.execute(_BATCH_FILL)
        await conn.execute(_BATCH_PROMPT_TOKENS)
        await conn.execute(_BATCH_TOUCH_SESSIONS, {"inserted": sorted(inserted)})
        if totals:
            keys = sorted(totals)
            await conn.execute(
                _BATCH_STATS,
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
