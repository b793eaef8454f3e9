"""common.kafka topic creation on the real broker: idempotent, partitions and config as asked."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from common.kafka import create_topics, ensure_topics
from common.settings import Settings
from common.topics import Topic
from devstack.probes import eventually

pytestmark = pytest.mark.integration


def test_ensure_topics_created_every_topic_once(settings: Settings) -> None:
    # the fixture ran ensure_topics already: a second call creates nothing
    assert ensure_topics(settings) == []
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = admin.list_topics(timeout=15).topics
    for topic in Topic:
        assert len(topics[settings.topic(topic.value)].partitions) == settings.topic_partitions


async def test_create_topics_applies_partitions_and_config(settings: Settings) -> None:
    name = settings.topic("changelog-probe")
    wanted = {name: 2}
    assert create_topics(settings, wanted, config={"cleanup.policy": "compact"}) == [name]
    assert create_topics(settings, wanted, config={"cleanup.policy": "compact"}) == []
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})

    async def partitions_shown() -> dict[int, Any]:  # the metadata catches up
        shown: dict[int, Any] = admin.list_topics(name, timeout=15).topics[name].partitions
        return shown

    partitions = await eventually(partitions_shown, timeout=30, what="the new topic's metadata")
    assert len(partitions) == 2
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"
