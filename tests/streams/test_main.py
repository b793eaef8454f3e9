"""Wiring and lifecycle of the stream worker, without a broker."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import faust
import pytest

from common.breaker import DlqBreakerTripped
from common.settings import Settings
from streams.alerts import agent as alert_mail
from streams.alerts.mailer import AlertMailer
from streams.main import StopOnTrip, build_app, changelog_topics, serve
from streams.metering import agent as metering
from streams.sessions import agent as session_sync
from streams.sessions.store import Increments, SessionRow
from streams.usage import agent as usage_sink
from tests.fakes import FakeProducer
from tests.streams.streams_fakes import FakeDirectory, FakeHeldQueue


class NoStore:
    async def apply(self, row: SessionRow) -> Increments:
        raise AssertionError("no events expected")

    async def apply_batch(self, rows: Sequence[SessionRow]) -> Increments:
        raise AssertionError("no events expected")


class NoUsage:
    async def apply(self, record: Mapping[str, Any]) -> bool:
        raise AssertionError("no events expected")

    async def apply_batch(self, records: Sequence[Mapping[str, Any]]) -> int:
        raise AssertionError("no events expected")


class NoLedger:
    async def owner_to_mail(self, alert: Mapping[str, Any]) -> str | None:
        raise AssertionError("no events expected")

    async def mark_emailed(self, alert_id: str, to: str) -> None:
        raise AssertionError("no events expected")


class NoMailer:
    async def send(self, message: EmailMessage) -> None:
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


def app_of(s: Settings, on_trip: StopOnTrip | None = None) -> faust.App:
    return build_app(
        s,
        tenants=FakeDirectory(),
        producer=FakeProducer(),
        store=NoStore(),
        held=FakeHeldQueue(),
        usage=NoUsage(),
        mailer=AlertMailer(s, NoLedger(), NoMailer()),
        on_trip=on_trip,
    )


def test_every_agent_and_the_table_are_registered(tmp_path: Path) -> None:
    app = app_of(settings(tmp_path))
    assert set(app.agents) == {
        metering.STAGE,
        metering.RELEASE_STAGE,
        session_sync.STAGE,
        usage_sink.STAGE,
        alert_mail.STAGE,
    }
    topics = {t for agent in app.agents.values() for t in agent.channel.topics}
    assert topics == {
        "t.messages.inbound",
        "t.quota.releases",
        "t.session.events",
        "t.usage.records",
        "t.quota.alerts",
    }
    assert changelog_topics(app) == [("t.openclaw-saas.streams-meter_state-changelog", 3)]


async def test_an_unreachable_broker_makes_serve_fail_fast(tmp_path: Path) -> None:
    s = settings(tmp_path, f"127.0.0.1:{closed_port()}")
    app = app_of(s)
    stop = asyncio.Event()
    with pytest.raises(RuntimeError, match="Unable to bootstrap"):  # aiokafka's error
        await asyncio.wait_for(serve(app, stop, grace_s=5), timeout=30)


async def test_a_stage_whose_breaker_trips_stops_the_worker(tmp_path: Path) -> None:
    s = Settings(
        **{**vars(settings(tmp_path)), "dlq_breaker_window": 10, "dlq_breaker_min_events": 5}
    )
    stop = asyncio.Event()
    trips = StopOnTrip(stop)
    agent = app_of(s, trips).agents[session_sync.STAGE]
    async with agent.test_context() as test_agent:
        for _ in range(10):  # undecodable: every one is dead-lettered
            await test_agent.put(b"not avro", key=b"k", partition=0, wait=False)
        await asyncio.wait_for(stop.wait(), timeout=10)  # deadline, not a delay
    with pytest.raises(DlqBreakerTripped, match="session-sync stopped: 100% of the last 5"):
        trips.raise_if_tripped()
