"""One real stack per test session, shared by every suite that needs servers.

Kafka 3.9 (KRaft), PostgreSQL (fsync off) and an OpenClaw gateway with the stub LLM
and the agents the tests address. Started lazily: a run of unit tests alone starts
nothing. `make test` runs inside a loopback-only network namespace after `make fetch`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import Stack, fetched

GATEWAY_AGENTS = ("main", "tenant-a", "tenant-b")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    missing = [name for name, ok in fetched().items() if not ok]
    if missing:
        pytest.fail(f"not fetched: {missing}; run `make fetch` (or `make test`, which does)")
    with Stack(agents=GATEWAY_AGENTS, durable_postgres=False) as s:
        yield s


@pytest.fixture(scope="session")
def database_url(stack: Stack) -> str:
    assert stack.postgres is not None
    return stack.postgres.dsn
