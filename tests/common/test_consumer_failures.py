"""KafkaWorker's handling of a failed event, without a broker (`_process` on one event)."""

from __future__ import annotations

from typing import Any

import pytest

from common import consumer as consumer_module
from common.consumer import Event, KafkaWorker
from common.settings import Settings
from common.topics import Topic
from schemas import codec
from tests.agents_bridge.bridge_fakes import admitted_event
from tests.fakes import FakeProducer


class IdleConsumer:
    """Stands in for confluent_kafka.Consumer (which connects at once): `_process` alone
    never touches it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def calls() -> list[Event]:
    return []


@pytest.fixture
def worker(
    producer: FakeProducer, calls: list[Event], monkeypatch: pytest.MonkeyPatch
) -> KafkaWorker:
    monkeypatch.setattr(consumer_module, "Consumer", IdleConsumer)

    async def send_unencodable(event: Event) -> None:
        calls.append(event)
        if len(calls) > 1:  # retried (the bug): stop the worker so the retry ends at once
            built.stop()
        # what EventProducer.send raises for a record that does not fit its schema
        raise codec.CodecError("record does not match outbound_message")

    built = KafkaWorker(
        Settings(kafka_bootstrap="127.0.0.1:9"),
        stage="test",
        group="failures",
        topics=[Topic.ADMITTED],
        handler=send_unencodable,
        producer=producer,
    )
    return built


async def test_an_output_that_can_never_be_encoded_is_dead_lettered_not_retried(
    worker: KafkaWorker, producer: FakeProducer, calls: list[Event]
) -> None:
    await worker._process(admitted_event(offset=3))
    assert len(calls) == 1
    [dead] = producer.on(Topic.ADMITTED_DLQ)
    assert dead["source_offset"] == 3
    assert dead["reason"].startswith("unencodable: record does not match")
