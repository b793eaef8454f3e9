"""The provisioner's store tests run on the session's real PostgreSQL, migrated."""

from __future__ import annotations

import pytest

from common.settings import Settings
from control.migrate import migrate


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> str:
    migrate(database_url)
    return database_url


@pytest.fixture
def settings(migrated_database: str) -> Settings:
    """Settings on the migrated database (the stores need nothing else)."""
    return Settings.from_env({}, database_url=migrated_database)
