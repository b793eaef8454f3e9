"""PostgreSQL connection pool factory (psycopg 3)."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from common.settings import Settings


async def open_pool(
    settings: Settings, *, min_size: int = 1, max_size: int = 8
) -> AsyncConnectionPool:
    """An opened async pool; close it with `await pool.close()`."""
    pool: AsyncConnectionPool = AsyncConnectionPool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": False},
    )
    await pool.open(wait=True, timeout=30)
    return pool


async def connect(
    settings: Settings, *, autocommit: bool = True
) -> AsyncConnection[dict[str, object]]:
    """One connection with dict rows (CLI, LISTEN)."""
    return await AsyncConnection.connect(
        settings.database_url, autocommit=autocommit, row_factory=dict_row
    )
