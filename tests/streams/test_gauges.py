"""The stream worker's gauges: consumer lag from committed offsets, overage queue depth."""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from psycopg import sql

from common.settings import Settings
from common.telemetry import CONSUMER_LAG, HELD_DEPTH
from common.topics import Topic
from devstack import Stack
from streams.app import create_app
from streams.gauges import GaugeReporter, GroupLag, HeldDepth, source_topics
from streams.topics import source_topic


class FakeProbe:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.reports = 0
        self.closed = False
        self.reported = threading.Event()

    def report(self) -> None:
        self.reports += 1
        self.reported.set()
        if self.fail:
            raise RuntimeError("broker away")

    def close(self) -> None:
        self.closed = True


def test_reporter_survives_a_failing_probe_and_closes_every_probe() -> None:
    broken, fine = FakeProbe(fail=True), FakeProbe()
    reporter = GaugeReporter([broken, fine], interval_s=60)
    reporter.start()
    assert fine.reported.wait(10)
    reporter.stop()
    assert not reporter.is_alive()
    assert (broken.reports, fine.reports) == (1, 1)
    assert broken.closed and fine.closed


def test_source_topics_are_what_the_agents_consume() -> None:
    settings = Settings.from_env({}, topic_prefix="p.", streams_store="memory://")
    app = create_app(settings)

    async def agent(stream: object) -> None:
        return None

    app.agent(source_topic(app, settings, Topic.INBOUND), name="a")(agent)
    app.agent(source_topic(app, settings, Topic.SESSION_EVENTS), name="b")(agent)
    assert source_topics(app) == ["p.messages.inbound", "p.session.events"]


@pytest.fixture
def kafka_settings(stack: Stack) -> Settings:
    assert stack.kafka is not None
    return Settings.from_env({}, kafka_bootstrap=stack.kafka.bootstrap)


@pytest.mark.integration
def test_lag_is_end_minus_committed_or_minus_start(kafka_settings: Settings) -> None:
    bootstrap = kafka_settings.kafka_bootstrap
    topic, group = f"gauges-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for _ in range(5):
        producer.produce(topic, value=b"x", partition=0)
    producer.produce(topic, value=b"y", partition=1)
    assert producer.flush(30) == 0
    committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    committer.close()

    probe = GroupLag(kafka_settings, group, [topic, "no-such-topic"])
    try:
        assert probe.measure() == {(topic, 0): 3, (topic, 1): 1}
        probe.report()
    finally:
        probe.close()
    assert CONSUMER_LAG.labels(group, topic, "0")._value.get() == 3


@pytest.fixture
def held_dsn(database_url: str) -> Iterator[str]:
    schema = f"test_gauges_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        table = sql.Identifier(schema, "held_messages")
        admin.execute(sql.SQL("CREATE TABLE {} (released_at TIMESTAMPTZ)").format(table))
        admin.execute(
            sql.SQL("INSERT INTO {} VALUES (NULL), (NULL), (NULL), (NOW())").format(table)
        )
        try:
            options = urllib.parse.quote(f"-c search_path={schema}")
            sep = "&" if "?" in database_url else "?"
            yield f"{database_url}{sep}options={options}"
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.integration
def test_held_depth_counts_messages_not_released(held_dsn: str) -> None:
    probe = HeldDepth(Settings.from_env({}, database_url=held_dsn))
    try:
        probe.report()
    finally:
        probe.close()
    assert HELD_DEPTH._value.get() == 3
