"""Session-scoped real servers for the integration suite.

One Kafka broker, one PostgreSQL and one OpenClaw gateway (stub LLM on loopback) per
test session, started by devstack; each test gets its own topic prefix and tenants, so
tests never see each other's events. `make test` runs this suite inside a loopback-only
network namespace after `make fetch` downloaded everything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.kafka import ensure_topics
from common.settings import Settings
from control.migrate import migrate
from devstack import Stack
from devstack._proc import free_port
from devstack.stack import fetched

GATEWAY_AGENTS = ("tenant-a", "tenant-b")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = [name for name, ok in fetched().items() if not ok]
    if missing:
        pytest.fail(f"not fetched: {missing}; run `make fetch` (or `make test`, which does)")
    with Stack(agents=GATEWAY_AGENTS, durable_postgres=False) as s:
        assert s.postgres is not None
        migrate(s.postgres.dsn)
        yield s


@pytest.fixture
def settings(stack: Stack, tmp_path: Path) -> Settings:
    """Settings for one test: its own topics and consumer groups."""
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
