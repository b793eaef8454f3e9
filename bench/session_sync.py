"""Session-sync phase: rows/s written to PostgreSQL by the streams worker vs a raw COPY.

`EVENTS` session events (message_in, 1,000 tenants, 5 conversations each) are produced to
session.events first; the streams worker then writes them (one transaction per batch of
what the stream has buffered, up to 1,000 events: sessions, messages, session_stats) and
the rate counts `messages` rows from the first one on, for up to `window_s`. The baseline
COPYs the same message rows in one transaction into `bench_copy`, a table made `LIKE
messages INCLUDING ALL` (same columns, defaults, indexes and checks; no foreign keys), on
the same durable PostgreSQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from bench import events
from bench.report import Figure
from bench.world import Rate, World, measure_rate
from common.settings import Settings
from common.topics import Topic

EVENTS = 20_000
_COPY = (
    "COPY bench_copy (event_id, tenant_id, session_id, role, content, status, created_at)"
    " FROM STDIN"
)


@dataclass(frozen=True)
class SessionSyncPhase:
    project: Rate
    copy_per_s: float

    def figures(self) -> list[Figure]:
        note = (
            f"{self.project.count:,} events in {self.project.seconds:.1f}s;"
            " one transaction per batch (3 tables) vs one COPY into a table like messages"
        )
        return [
            Figure(
                "session_sync_rows_per_s",
                "rows/s",
                self.project.per_s,
                self.copy_per_s,
                ">= 0.5x baseline",
                note,
            )
        ]


def _count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM messages").fetchone()
    return int(row[0]) if row else 0


def run(world: World, settings: Settings, *, window_s: float) -> SessionSyncPhase:
    tenants = world.tenants
    records = [events.session_in(tenants[n % len(tenants)], n) for n in range(EVENTS)]
    events.produce(settings, Topic.SESSION_EVENTS, records)
    before = _count(settings.database_url)
    group = world.services(settings, ["streams"])
    try:
        rate = measure_rate(
            lambda: _count(settings.database_url) - before,
            total=EVENTS,
            window_s=window_s,
            alive=group.check_alive,
        )
    finally:
        group.stop()
    return SessionSyncPhase(rate, _copy(settings.database_url, records))


def _copy(database_url: str, records: list[dict[str, object]]) -> float:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (LIKE messages INCLUDING ALL)")
        try:
            started = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY) as copy:
                for r in records:
                    copy.write_row(
                        (
                            r["event_id"],
                            r["tenant_id"],
                            f"{r['channel']}:{r['conversation_id']}",
                            r["role"],
                            r["text"],
                            r["status"],
                            datetime.fromtimestamp(int(str(r["occurred_at"])) / 1000, UTC),
                        )
                    )
            elapsed = time.perf_counter() - started
        finally:
            conn.execute("DROP TABLE bench_copy")
    return len(records) / elapsed
