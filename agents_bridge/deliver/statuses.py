"""consumes channel.statuses → PostgreSQL `message_statuses` (migration 003), one row per wamid.

Why a consumer and not ingress: the webhook's hot path only produces (and answers Meta
within its budget); this worker, in the delivery process, does the writes. It also
takes the sender's `accepted` records, so the row of a wamid links it to its reply.

Every write is an idempotent, order-independent upsert (see 003_whatsapp.sql): the first
timestamp of each status is kept, `status` only moves up its rank (a late `delivered`
never overwrites `read`), and columns known to one record only (reply id, kind, chunk)
are filled, never overwritten. Redeliveries and replays leave the same row.

A row PostgreSQL can never take (the tenant was deleted: foreign key) → `InvalidEvent`
(channel.statuses.dlq); connection failures propagate and the worker retries.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from common.consumer import Event, KafkaWorker
from common.errors import InvalidEvent
from common.kafka import EventProducer
from common.records import value_of
from common.settings import Settings
from common.telemetry import CHANNEL_STATUSES, PG_WRITE_SECONDS
from common.topics import Topic
from schemas.types import ChannelStatus

STAGE = "status_recorder"
GROUP = "agents_bridge.status_recorder"  # the consumer group (committed offsets): keep the name
LANES = 8
RANK = {"received": 0, "accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}

_UPSERT = """
INSERT INTO message_statuses AS m (channel, message_id, tenant_id, account_id, direction,
    counterpart, kind, reply_event_id, chunk, status, status_rank, {at}, error_code,
    error_title, details)
VALUES (%(channel)s, %(message_id)s, %(tenant_id)s::uuid, %(account_id)s, %(direction)s,
    %(counterpart)s, %(kind)s, %(reply_event_id)s, %(chunk)s, %(status)s, %(rank)s, %(at)s,
    %(error_code)s, %(error_title)s, %(details)s)
ON CONFLICT (channel, message_id) DO UPDATE SET
    kind = COALESCE(m.kind, EXCLUDED.kind),
    reply_event_id = COALESCE(m.reply_event_id, EXCLUDED.reply_event_id),
    chunk = COALESCE(m.chunk, EXCLUDED.chunk),
    {at} = LEAST(m.{at}, EXCLUDED.{at}),
    status = CASE WHEN EXCLUDED.status_rank > m.status_rank THEN EXCLUDED.status
                  ELSE m.status END,
    status_rank = GREATEST(m.status_rank, EXCLUDED.status_rank),
    error_code = COALESCE(m.error_code, EXCLUDED.error_code),
    error_title = COALESCE(m.error_title, EXCLUDED.error_title),
    details = EXCLUDED.details || m.details,
    updated_at = NOW()
"""
_STATEMENTS = {
    status: sql.SQL(_UPSERT).format(at=sql.Identifier(f"{status}_at")) for status in RANK
}


def status_lane(event: Event) -> str:
    """A few lanes by message id: one wamid's records are written one at a time."""
    message_id = value_of(event, ChannelStatus)["message_id"]
    return f"statuses:{zlib.crc32(message_id.encode()) % LANES}"


class StatusRecorder:
    """The `channel.statuses` handler."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle(self, event: Event) -> None:
        record = value_of(event, ChannelStatus)
        status = record["status"]
        statement = _STATEMENTS.get(status)
        if statement is None:
            raise InvalidEvent(f"unknown_status: {status[:40]}")
        params = row_params(record)
        try:
            with PG_WRITE_SECONDS.labels("message_statuses").time():
                async with self._pool.connection() as conn:
                    await conn.execute(statement, params)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
            raise InvalidEvent(f"unstorable: {type(err).__name__}") from None
        CHANNEL_STATUSES.labels(record["channel"], status).inc()


def row_params(record: Mapping[str, Any]) -> dict[str, Any]:
    occurred = record["occurred_at"]
    if not isinstance(occurred, datetime):
        occurred = datetime.fromtimestamp(int(occurred) / 1000, UTC)
    return {
        "channel": record["channel"],
        "message_id": record["message_id"],
        "tenant_id": record["tenant_id"],
        "account_id": record["account_id"],
        "direction": record["direction"],
        "counterpart": record["counterpart"],
        "kind": record.get("kind"),
        "reply_event_id": record.get("reply_event_id"),
        "chunk": record.get("chunk"),
        "status": record["status"],
        "rank": RANK[record["status"]],
        "at": occurred,
        "error_code": record.get("error_code"),
        "error_title": record.get("error_title"),
        "details": Jsonb(dict(record.get("details") or {})),
    }


def build_worker(
    settings: Settings, recorder: StatusRecorder, producer: EventProducer
) -> KafkaWorker:
    """The status consumer; `producer` writes its dead letters."""
    return KafkaWorker(
        settings,
        stage=STAGE,
        group=GROUP,
        topics=[Topic.CHANNEL_STATUSES],
        handler=recorder.handle,
        producer=producer,
        lane_of=status_lane,
    )
