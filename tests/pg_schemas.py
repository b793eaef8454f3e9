"""A PostgreSQL schema of a test's own: the migrations applied, some tenants, dropped after."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg

MIGRATIONS = Path(__file__).resolve().parents[1] / "control" / "migrations"


@contextlib.contextmanager
def migrated_schema(
    database_url: str, prefix: str, tenants: Sequence[tuple[str | None, str]] = ()
) -> Iterator[str]:
    """A new schema named `<prefix>_<random>` with every migration applied and `tenants`
    ((id or None for a generated one, agent_id)) inserted. Yields a conninfo whose
    search_path is that schema (then public); the schema is dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            admin.execute(f'SET search_path TO "{schema}", public')
            for migration in sorted(MIGRATIONS.glob("*.sql")):
                admin.execute(migration.read_text().encode())
            for tenant_id, agent_id in tenants:
                if tenant_id is None:
                    admin.execute("INSERT INTO tenants (agent_id) VALUES (%s)", (agent_id,))
                else:
                    admin.execute(
                        "INSERT INTO tenants (id, agent_id) VALUES (%s, %s)", (tenant_id, agent_id)
                    )
            yield psycopg.conninfo.make_conninfo(
                database_url, options=f"-c search_path={schema},public"
            )
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
