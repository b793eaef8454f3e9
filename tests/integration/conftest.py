"""Session-scoped real servers for the integration suite.

One Kafka broker, one PostgreSQL and one OpenClaw gateway (stub LLM on loopback) per
test session, started by devstack; each test gets its own topic prefix and tenants, so
tests never see each other's events. `make test` runs this suite inside a loopback-only
network namespace after `make fetch` downloaded everything.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from common.kafka import ensure_topics
from common.settings import Settings
from control.migrate import migrate
from devstack import Stack
from devstack._proc import free_port


@pytest.fixture(scope="session")
def migrated(stack: Stack, database_url: str) -> Stack:
    migrate(database_url)
    return stack


@pytest.fixture
def settings(migrated: Stack, tmp_path: Path) -> Settings:
    """Settings for one test: its own topics and consumer groups."""
    stack = migrated
    assert stack.kafka is not None and stack.postgres is not None
    s = Settings.from_env(
        {},
        kafka_bootstrap=stack.kafka.bootstrap,
        database_url=stack.postgres.dsn,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        topic_partitions=3,
        ingress_port=free_port(),
        streams_data_dir=str(tmp_path / "streams"),
        gateway_timeout_s=60.0,
        directory_refresh_s=5.0,
    )
    ensure_topics(s)
    return s
