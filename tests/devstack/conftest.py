"""Session fixtures for the devstack integration tests: one real stack for the whole run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import Stack


@pytest.fixture(scope="session")
def ds_stack() -> Iterator[Stack]:
    """Kafka + PostgreSQL (fsync off) + OpenClaw gateway with the stub LLM and two agents."""
    with Stack(agents=["main", "tenant-a"], durable_postgres=False) as stack:
        yield stack
