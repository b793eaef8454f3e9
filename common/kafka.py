"""Kafka plumbing shared by every process: the no-loss producer and topic creation.

`EventProducer.send()` returns only once the broker has the event durably
(`enable.idempotence`, so `acks=all`); callers acknowledge upstream only after that.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from common.errors import KafkaUnavailable
from common.settings import Settings
from common.telemetry import KAFKA_PRODUCE_ERRORS, KAFKA_PRODUCE_SECONDS
from common.topics import Topic
from schemas import codec

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """What a stage needs of a producer: `EventProducer` is one, test fakes are others."""

    async def send(
        self,
        topic: Topic,
        key: str,
        record: Mapping[str, Any],
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None: ...


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for a producer that loses nothing and never reorders."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,  # implies acks=all, retries, max.in.flight <= 5
        "linger.ms": 2,
        "compression.type": "lz4",
        "message.timeout.ms": 15000,
        "socket.keepalive.enable": True,
        "client.id": "openclaw-saas",
        **extra,
    }


class EventProducer:
    """An asyncio face on confluent-kafka's Producer; one per process.

    A background thread serves delivery reports and resolves the futures that
    `send()` awaits.
    """

    def __init__(self, settings: Settings, **config: Any) -> None:
        self._settings = settings
        self._producer = Producer(producer_config(settings, **config))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(
        self,
        topic: Topic,
        key: str,
        record: Mapping[str, Any],
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Encode `record` with the topic's schema and wait until the broker acknowledged it.

        Raises `codec.CodecError` for a record that does not fit its schema and
        `KafkaUnavailable` when the broker did not acknowledge within `timeout`.
        """
        payload = codec.encode(schema or topic.schema, record)
        await self.send_raw(topic, key.encode(), payload, timeout=timeout)

    async def send_raw(
        self, topic: Topic, key: bytes | None, payload: bytes, *, timeout: float | None = None
    ) -> None:
        """Produce already-encoded bytes and wait for the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        started = time.perf_counter()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                loop.call_soon_threadsafe(_settle, done, None)
            else:
                loop.call_soon_threadsafe(_settle, done, KafkaUnavailable(str(err)))

        name = self._settings.topic(topic.value)
        try:
            self._producer.produce(name, value=payload, key=key, on_delivery=on_delivery)
        except BufferError as err:
            KAFKA_PRODUCE_ERRORS.labels(topic.value).inc()
            raise KafkaUnavailable("producer queue full") from err
        except KafkaException as err:
            KAFKA_PRODUCE_ERRORS.labels(topic.value).inc()
            raise KafkaUnavailable(str(err)) from err
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError as err:
            KAFKA_PRODUCE_ERRORS.labels(topic.value).inc()
            raise KafkaUnavailable(f"no broker acknowledgement within {timeout}s") from err
        except KafkaUnavailable:
            KAFKA_PRODUCE_ERRORS.labels(topic.value).inc()
            raise
        KAFKA_PRODUCE_SECONDS.labels(topic.value).observe(time.perf_counter() - started)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop the delivery thread."""
        remaining = self._producer.flush(timeout)
        if remaining:
            log.warning("producer closed with %d undelivered events", remaining)
        self._stop.set()
        self._poller.join(timeout=2)


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


def ensure_topics(settings: Settings, topics: Iterable[Topic] = tuple(Topic)) -> list[str]:
    """Create the project's topics if they are missing; returns the names created."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = set(admin.list_topics(timeout=15).topics)
    wanted = [
        NewTopic(
            settings.topic(t.value),
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication,
            config={"min.insync.replicas": str(max(1, settings.topic_replication - 1))},
        )
        for t in topics
        if settings.topic(t.value) not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, fut in admin.create_topics(wanted, request_timeout=30).items():
        try:
            fut.result(timeout=30)
            created.append(name)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
