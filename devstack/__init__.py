"""Fetch, start and stop the real servers behind ``make run``, the tests and ``make bench``.

- :mod:`devstack.kafka`: :func:`ensure_kafka_jars`, :class:`KafkaBroker` (KRaft, loopback).
- :mod:`devstack.postgres`: :func:`find_pg_bindir`, :class:`PostgresServer`.
- :mod:`devstack.openclaw`: :func:`ensure_openclaw`, :class:`OpenClawGateway`, :class:`LlmProvider`.
- :mod:`devstack.stub_llm`: :class:`StubLLM`, an OpenAI-compatible SSE stub.
- :mod:`devstack.netns`: loopback-only network namespace helpers.
- :mod:`devstack.stack`: :class:`Stack`, all three together (pytest session fixtures).
- :mod:`devstack.probes`: :func:`eventually` and reading a running pipeline back (topics,
  rows, group lag), for the integration tests, ``chaos/`` and the benchmarks.

CLI: ``python -m devstack {fetch,up,netns} --help``. Downloads are cached in
``$OPENCLAW_SAAS_CACHE`` (default ``~/.cache/openclaw-saas``).
"""

from devstack._proc import StartupError, cache_dir
from devstack.kafka import KafkaBroker, ensure_kafka_jars
from devstack.netns import in_loopback_netns, reexec_in_loopback_netns
from devstack.openclaw import LlmProvider, OpenClawGateway, ensure_openclaw
from devstack.postgres import PostgresServer, find_pg_bindir
from devstack.stack import Stack, fetched
from devstack.stub_llm import StubBehaviour, StubLLM

__all__ = [
    "KafkaBroker",
    "LlmProvider",
    "OpenClawGateway",
    "PostgresServer",
    "Stack",
    "StartupError",
    "StubBehaviour",
    "StubLLM",
    "cache_dir",
    "ensure_kafka_jars",
    "ensure_openclaw",
    "fetched",
    "find_pg_bindir",
    "in_loopback_netns",
    "reexec_in_loopback_netns",
]
