"""PostgreSQL from usage.records: the `usage_records` ledger and the `usage_logs` totals.

The same stream a billing consumer sums is summed here, and the same way: one row per
`usage_id` (`msg:<event_id>` for an admitted message, `tok:<event_id>` for the tokens of its
reply). The transaction that inserts a usage id is the only one that adds to `usage_logs`,
so redelivery and full replays change nothing. `usage_logs.period` is the UTC date of the
subscription period's start the record carries (the period metering counted the message
in, for tokens the period of the message they answer).

`apply_batch` stores many records in one transaction with the same result: one insert of
the first record of each usage id (ON CONFLICT DO NOTHING ... RETURNING), then one upsert
of `usage_logs` with the sums of what that insert added.

Errors: `IntegrityError`/`DataError` (tenant deleted, bad value) become `InvalidEvent`;
anything else propagates and is retried. A batch fails as a whole (nothing committed).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
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

    async def apply_batch(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Store UsageRecords in one transaction; how many this call inserted."""
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


_INSERT_BATCH = """
INSERT INTO usage_records (usage_id, tenant_id, kind, plan_id, period_start, period_end,
                           channel, messages, input_tokens, output_tokens, recorded_at)
SELECT DISTINCT ON (tenant_id, usage_id)
       usage_id, tenant_id, kind, plan_id, period_start, period_end, channel, messages,
       input_tokens, output_tokens, recorded_at
FROM unnest(%(ord)s::int[], %(usage_id)s::text[], %(tenant_id)s::uuid[], %(kind)s::text[],
            %(plan_id)s::text[], %(period_start)s::timestamptz[], %(period_end)s::timestamptz[],
            %(channel)s::text[], %(messages)s::bigint[], %(input_tokens)s::bigint[],
            %(output_tokens)s::bigint[], %(recorded_at)s::timestamptz[])
  AS b(ord, usage_id, tenant_id, kind, plan_id, period_start, period_end, channel, messages,
       input_tokens, output_tokens, recorded_at)
ORDER BY tenant_id, usage_id, ord
ON CONFLICT (tenant_id, usage_id) DO NOTHING
RETURNING tenant_id::text, usage_id
"""
_ADD_BATCH = """
INSERT INTO usage_logs (tenant_id, period, message_count, token_count)
SELECT * FROM unnest(%(tenant_id)s::uuid[], %(period)s::date[], %(messages)s::int[],
                     %(tokens)s::bigint[])
ORDER BY 1, 2
ON CONFLICT (tenant_id, period) DO UPDATE
SET message_count = usage_logs.message_count + EXCLUDED.message_count,
    token_count = usage_logs.token_count + EXCLUDED.token_count
"""
_COLUMNS = (
    "usage_id",
    "tenant_id",
    "kind",
    "plan_id",
    "channel",
    "messages",
    "input_tokens",
    "output_tokens",
)


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

    async def apply_batch(self, records: Sequence[Mapping[str, Any]]) -> int:
        if not records:
            return 0
        params: dict[str, list[Any]] = {c: [r[c] for r in records] for c in _COLUMNS}
        params["ord"] = list(range(len(records)))
        for column in ("period_start", "period_end", "recorded_at"):
            params[column] = [_at(r[column]) for r in records]
        try:
            with PG_WRITE_SECONDS.labels("usage_records_batch").time():
                async with self._pool.connection() as conn, conn.transaction():
                    cur = await conn.execute(_INSERT_BATCH, params)
                    inserted = {(str(t), str(u)) for t, u in await cur.fetchall()}
                    sums = usage_sums(records, inserted)
                    if sums:
                        keys = sorted(sums)
                        await conn.execute(
                            _ADD_BATCH,
                            {
                                "tenant_id": [k[0] for k in keys],
                                "period": [k[1] for k in keys],
                                "messages": [sums[k][0] for k in keys],
                                "tokens": [sums[k][1] for k in keys],
                            },
                        )
                    return len(inserted)
        except (psycopg.IntegrityError, psycopg.DataError) as err:
            state = err.sqlstate or type(err).__name__
            raise InvalidEvent(f"rejected by PostgreSQL: {state}: {err}") from err


def _uuid(value: Any) -> str:
    """A tenant id as PostgreSQL prints a uuid (what RETURNING gives back)."""
    return str(uuid.UUID(str(value)))


def usage_sums(
    records: Sequence[Mapping[str, Any]], inserted: set[tuple[str, str]]
) -> dict[tuple[str, date], tuple[int, int]]:
    """(messages, tokens) the inserted records add to `usage_logs`, per tenant and period:
    each inserted usage id once (its first record), none that adds nothing."""
    out: dict[tuple[str, date], tuple[int, int]] = {}
    counted: set[tuple[str, str]] = set()
    for record in records:
        key = (_uuid(record["tenant_id"]), str(record["usage_id"]))
        if key not in inserted or key in counted:
            continue
        counted.add(key)
        messages = int(record["messages"])
        tokens = int(record["input_tokens"]) + int(record["output_tokens"])
        if not (messages or tokens):
            continue
        at = (key[0], period_of(record))
        have = out.get(at, (0, 0))
        out[at] = (have[0] + messages, have[1] + tokens)
    return out
