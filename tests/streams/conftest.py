"""Fixtures of the streams tests that need PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.streams.streams_fakes import OTHER, TENANT

MIGRATIONS = Path(__file__).resolve().parents[2] / "control" / "migrations"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A pool on a schema of its own: the migrations applied, tenants TENANT and OTHER
    inserted; dropped afterwards."""
    schema = f"test_streams_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            await admin.execute(f'SET search_path TO "{schema}", public')
            for migration in sorted(MIGRATIONS.glob("*.sql")):
                await admin.execute(migration.read_text())
            for tenant_id, agent in ((TENANT, "acme"), (OTHER, "other")):
                await admin.execute(
                    "INSERT INTO tenants (id, agent_id) VALUES (%s, %s)", (tenant_id, agent)
                )
            pg: AsyncConnectionPool[Any] = AsyncConnectionPool(
                database_url,
                min_size=1,
                max_size=2,
                open=False,
                kwargs={"autocommit": False, "options": f"-c search_path={schema},public"},
            )
            await pg.open(wait=True, timeout=30)
            try:
                yield pg
            finally:
                await pg.close()
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
