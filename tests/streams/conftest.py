"""Fixtures of the streams tests that need PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from tests.pg_schemas import migrated_schema
from tests.streams.streams_fakes import OTHER, TENANT


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A pool on a schema of its own: the migrations applied, tenants TENANT and OTHER
    inserted; dropped afterwards."""
    tenants = [(TENANT, "acme"), (OTHER, "other")]
    with migrated_schema(database_url, "test_streams", tenants) as url:
        pg: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url, min_size=1, max_size=2, open=False, kwargs={"autocommit": False}
        )
        await pg.open(wait=True, timeout=30)
        try:
            yield pg
        finally:
            await pg.close()
