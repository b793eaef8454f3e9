"""PostgreSQL from usage.records: the `usage_records` ledger and the `usage_logs` totals.

The same stream a billing consumer sums is summed here, and the same way: one row per
`usage_id` (`msg:<event_id>` for an admitted message, `tok:<event_id>` for the tokens of its
reply). The transaction that inserts a usage id is the only one that adds to `usage_logs`,
so redelivery and full replays change nothing. `usage_logs.period` is the UTC date of the
subscription period's start the record carries (the period metering counted the message
in, for tokens the period of the message they answer).

Errors: `IntegrityError`/`DataError` (tenant deleted, bad value) become `InvalidEvent`;
anything else propagates and is retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from common.errors import InvalidEvent
from common.telemetry import PG_WRITE_SECONDS


class UsageStore(Protocol):
    async def apply(self, record: Mapping[str, Any]) -> bool:
        """Store one UsageRecord; True when this call inserted it (counted it)."""
        ...


def _at(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def period_of(record: Mapping[str, Any]) -> date:
    """`usage_logs.period`: the UTC date the record's subscription period starts."""
    return _at(record["period_start"]).astimezone(UTC).date()


_INSERT = """
INSERT INTO usage_records (usage_id, tenant_id, kind, plan_id, period_start, period_end,
                           channel, messages, input_tokens, output_tokens, recorded_at)
VALUES (%(usage_id)s, %(tenant_id)s, %(kind)s, %(plan_id)s, %(period_start)s, %(period_end)s,
        %(channel)s, %(messages)s, %(input_tokens)s, %(output_tokens)s, %(recorded_at)s)
ON CONFLICT (tenant_id, usage_id) DO NOTHING
RETURNING usage_id
"""
_ADD = """
INSERT INTO usage_logs (tenant_id, period, message_count, token_count)
VALUES (%(tenant_id)s, %(period)s, %(messages)s, %(tokens)s)
ON CONFLICT (tenant_id, period) DO UPDATE
SET message_count = usage_logs.message_count + EXCLUDED.message_count,
    token_count = usage_logs.token_count + EXCLUDED.token_count
"""


class PgUsageStore:
    """`UsageStore` on a psycopg pool: one committed transaction per record."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def apply(self, record: Mapping[str, Any]) -> bool:
        params = {
            **record,
            "period_start": _at(record["period_start"]),
            "period_end": _at(record["period_end"]),
            "recorded_at": _at(record["recorded_at"]),
            "period": period_of(record),
            "tokens": int(record["input_tokens"]) + int(record["output_tokens"]),
        }
        try:
            with PG_WRITE_SECONDS.labels("usage_records").time():
                async with self._pool.connection() as conn, conn.transaction():
                    inserted = await (await conn.execute(_INSERT, params)).fetchone()
                    if inserted is None:
                        return False
                    if record["messages"] or params["tokens"]:
                        await conn.execute(_ADD, params)
                    return True
        except (psycopg.IntegrityError, psycopg.DataError) as err:
            state = err.sqlstate or type(err).__name__
            raise InvalidEvent(f"rejected by PostgreSQL: {state}: {err}") from err
