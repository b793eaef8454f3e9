"""One real stack per test session, shared by every suite that needs servers.

Kafka 3.9 (KRaft), PostgreSQL (fsync off) and an OpenClaw gateway with the stub LLM
and the agents the tests address. Started lazily: a run of unit tests alone starts
nothing. `make test` runs inside a loopback-only network namespace after `make fetch`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from devstack.stack import Stack, fetched

GATEWAY_AGENTS = ("main", "tenant-a", "tenant-b")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a service's `main` calls `setup_logging`, which binds the root
    handler to the stderr of that moment: pytest's capture file, closed after the test.
    Put the root logger back, so later log lines (e.g. from a server thread) have a live
    stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
