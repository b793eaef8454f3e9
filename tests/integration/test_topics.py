"""common.kafka topic creation on the real broker: idempotent, partitions and config as asked."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from common.kafka import create_topics, ensure_topics
from common.settings import Settings
from common.topics import Topic

pytestmark = pytest.mark.integration


def test_ensure_topics_created_every_topic_once(settings: Settings) -> None:
    # the fixture ran ensure_topics already: a second call creates nothing
    assert ensure_topics(settings) == []
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = admin.list_topics(timeout=15).topics
    for topic in Topic:
        assert len(topics[settings.topic(topic.value)].partitions) == settings.topic_partitions


def test_create_topics_applies_partitions_and_config(settings: Settings) -> None:
    name = settings.topic("changelog-probe")
    wanted = {name: 2}
    assert create_topics(settings, wanted, config={"cleanup.policy": "compact"}) == [name]
    assert create_topics(settings, wanted, config={"cleanup.policy": "compact"}) == []
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    deadline = time.monotonic() + 30
    while not (partitions := admin.list_topics(name, timeout=15).topics[name].partitions):
        assert time.monotonic() < deadline, "the new topic never showed in the metadata"
        time.sleep(0.1)  # sleep-ok: deadline poll (the metadata catches up)
    assert len(partitions) == 2
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"
