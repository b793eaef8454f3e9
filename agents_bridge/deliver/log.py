"""What happened to each outbound message: one `outbound_deliveries` row per chunk.

A reply (`messages.outbound` event) can go out as several channel messages (Telegram
splits at 4096 characters); each is a *chunk*, numbered from 0. The delivery worker
writes a row after every send: `sent` with the provider's message id, or `failed` with
the reason the reply was dead-lettered. Rows are keyed by `(event_id, chunk)`, so a
replayed reply leaves the same rows; a `failed` row is replaced by a later attempt's
result, a `sent` row is never overwritten.

`sent(event_id)` lets a delivery process that did not send the first chunks itself (after
a crash or a partition move) skip what already went out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from common.telemetry import DELIVERY_RECORDS, PG_WRITE_SECONDS

log = logging.getLogger(__name__)

SENT = "sent"
FAILED = "failed"

_UPSERT = """
INSERT INTO outbound_deliveries AS d (event_id, chunk, chunks, tenant_id, channel,
    conversation_id, status, provider_message_id, error)
VALUES (%s, %s, %s, %s::uuid, %s, %s, %s, %s, %s)
ON CONFLICT (event_id, chunk) DO UPDATE
SET chunks = EXCLUDED.chunks, status = EXCLUDED.status,
    provider_message_id = EXCLUDED.provider_message_id, error = EXCLUDED.error,
    updated_at = NOW()
WHERE d.status = 'failed'
"""
_SENT = """
SELECT chunk, provider_message_id FROM outbound_deliveries
WHERE event_id = %s AND status <> 'failed'
"""


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one chunk of one reply."""

    event_id: str
    tenant_id: str
    channel: str
    conversation_id: str
    chunk: int
    chunks: int
    status: str  # SENT or FAILED
    provider_message_id: str | None = None
    error: str | None = None


def result_of(
    reply: Mapping[str, Any],
    channel: str,
    chunk: int,
    chunks: int,
    status: str,
    *,
    message_id: str | None = None,
    error: str | None = None,
) -> DeliveryResult:
    """The row for `chunk` of the reply `reply` (a messages.outbound record)."""
    return DeliveryResult(
        event_id=reply["event_id"],
        tenant_id=reply["tenant_id"],
        channel=channel,
        conversation_id=reply["conversation_id"],
        chunk=chunk,
        chunks=chunks,
        status=status,
        provider_message_id=message_id or None,
        error=error,
    )


class DeliveryLog(Protocol):
    """Where delivery results go; `PgDeliveryLog` in production, a fake in unit tests."""

    async def record(self, result: DeliveryResult) -> None: ...

    async def sent(self, event_id: str) -> dict[int, str]: ...


async def record_quietly(deliveries: DeliveryLog | None, result: DeliveryResult) -> None:
    """Best effort: for rows whose loss changes nothing that matters (a failure, whose reason
    the dead letter carries too; a mail already out, which a retry would only send again)."""
    if deliveries is None:
        return
    try:
        await deliveries.record(result)
    except Exception as err:
        log.warning(
            "%s: could not record %s of %s: %s",
            result.channel,
            result.status,
            result.event_id,
            type(err).__name__,
        )


class PgDeliveryLog:
    """`outbound_deliveries` in PostgreSQL (migration 005).

    Connection failures raise (the caller retries the event, the chunk is not re-sent);
    a row PostgreSQL can never take (a tenant id that is not a tenant) is logged and
    skipped, so it cannot wedge a conversation.
    """

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def record(self, result: DeliveryResult) -> None:
        params = (
            result.event_id,
            result.chunk,
            result.chunks,
            result.tenant_id,
            result.channel,
            result.conversation_id,
            result.status,
            result.provider_message_id,
            (result.error or "")[:1000] or None,
        )
        try:
            with PG_WRITE_SECONDS.labels("outbound_deliveries").time():
                async with self._pool.connection() as conn:
                    await conn.execute(_UPSERT, params)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
            DELIVERY_RECORDS.labels(result.channel, "skipped").inc()
            log.error(
                "delivery result of %s chunk %d not recordable: %s",
                result.event_id,
                result.chunk,
                type(err).__name__,
            )
        except Exception:
            DELIVERY_RECORDS.labels(result.channel, "error").inc()
            raise
        else:
            DELIVERY_RECORDS.labels(result.channel, "ok").inc()

    async def sent(self, event_id: str) -> dict[int, str]:
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_SENT, (event_id,))).fetchall()
        return {int(chunk): str(message_id or "") for chunk, message_id in rows}
