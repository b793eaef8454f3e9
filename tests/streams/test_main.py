"""Wiring and lifecycle of the stream worker, without a broker."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from common.settings import Settings
from streams.agents import metering, session_sync
from streams.main import build_app, changelog_topics, serve
from streams.sessions_store import Increments, SessionRow
from tests.streams.streams_fakes import FakeDirectory, FakeProducer


class NoStore:
    async def apply(self, row: SessionRow) -> Increments:
        raise AssertionError("no events expected")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(tmp_path: Path, bootstrap: str = "127.0.0.1:9092") -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix="t.",
        topic_partitions=3,
        streams_store="memory://",
        streams_data_dir=str(tmp_path / "state"),
    )


def test_both_agents_and_the_table_are_registered(tmp_path: Path) -> None:
    app = build_app(
        settings(tmp_path), tenants=FakeDirectory(), producer=FakeProducer(), store=NoStore()
    )
    assert set(app.agents) == {metering.STAGE, session_sync.STAGE}
    topics = {t for agent in app.agents.values() for t in agent.channel.topics}
    assert topics == {"t.messages.inbound", "t.session.events"}
    assert changelog_topics(app) == [("t.openclaw-saas.streams-meter_state-changelog", 3)]


async def test_an_unreachable_broker_makes_serve_fail_fast(tmp_path: Path) -> None:
    s = settings(tmp_path, f"127.0.0.1:{closed_port()}")
    app = build_app(s, tenants=FakeDirectory(), producer=FakeProducer(), store=NoStore())
    stop = asyncio.Event()
    with pytest.raises(RuntimeError, match="Unable to bootstrap"):  # aiokafka's error
        await asyncio.wait_for(serve(app, stop, grace_s=5), timeout=30)
