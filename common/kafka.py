"""Kafka plumbing shared by every process: the no-loss producer and topic creation.

`EventProducer.send()` returns only once the broker has the event durably
(`enable.idempotence`, so `acks=all`); callers acknowledge upstream only after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Iterable, Mapping
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
    """What a stage needs of a producer: `EventProducer` is one, test fakes are others.

    `send` starts the send at once and returns what to await for the acknowledgement (an
    `async def` satisfies it too), so a batch of sends needs no task per record."""

    def send(
        self,
        topic: Topic,
        key: str,
        record: Mapping[str, Any],
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> Awaitable[None]: ...


class RawEventSink(EventSink, Protocol):
    """An `EventSink` that also produces bytes already encoded (replays, dead letters)."""

    def send_raw(
        self, topic: Topic, key: bytes | None, payload: bytes, *, timeout: float | None = None
    ) -> Awaitable[None]: ...


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


class _Pending:
    """One produced record until its delivery report: the future `send` returned."""

    __slots__ = ("future", "topic", "started", "timer")

    def __init__(self, future: asyncio.Future[None], topic: str) -> None:
        self.future = future
        self.topic = topic
        self.started = time.perf_counter()
        self.timer: asyncio.TimerHandle | None = None


class EventProducer:
    """An asyncio face on confluent-kafka's Producer; one per process.

    A background thread serves delivery reports; the reports of one poll are handed to the
    event loop together (one wake-up, not one per record), which resolves the futures that
    `send()` returned.
    """

    def __init__(self, settings: Settings, **config: Any) -> None:
        self._settings = settings
        conf = producer_config(settings, **config)
        self._producer = Producer(conf)
        # librdkafka fails a delivery itself after this long: no timer needed beyond it
        self._delivery_timeout_s = int(conf["message.timeout.ms"]) / 1000
        self._names = {t: settings.topic(t.value) for t in Topic}
        self._reports: list[tuple[_Pending, KafkaError | None]] = []  # of the current poll
        self._closed = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        """Pass the delivery reports of the last poll to their event loops, in one call each."""
        reports, self._reports = self._reports, []
        if not reports:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, KafkaError | None]]] = {}
        for report in reports:
            by_loop.setdefault(report[0].future.get_loop(), []).append(report)
        for loop, batch in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits these
                loop.call_soon_threadsafe(_settle_all, batch)

    def send(
        self,
        topic: Topic,
        key: str,
        record: Mapping[str, Any],
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> asyncio.Future[None]:
        """Encode `record` with the topic's schema and start sending it; the returned future
        resolves once the broker acknowledged it.

        Raises `codec.CodecError` at once for a record that does not fit its schema; the
        future fails with `KafkaUnavailable` when the broker did not acknowledge within
        `timeout` (or librdkafka's `message.timeout.ms`).
        """
        payload = codec.encode(schema or topic.schema, record)
        return self.send_raw(topic, key.encode(), payload, timeout=timeout)

    def send_raw(
        self, topic: Topic, key: bytes | None, payload: bytes, *, timeout: float | None = None
    ) -> asyncio.Future[None]:
        """Start producing already-encoded bytes; the future resolves on the broker's ack."""
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future(), topic.value)

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            self._reports.append((pending, err))  # in the thread that polls

        try:
            self._producer.produce(
                self._names[topic], value=payload, key=key, on_delivery=on_delivery
            )
        except BufferError:
            _settle(pending, KafkaUnavailable("producer queue full"))
            return pending.future
        except (KafkaException, RuntimeError) as err:  # RuntimeError: the producer is closed
            _settle(pending, KafkaUnavailable(str(err)))
            return pending.future
        if timeout is not None and timeout < self._delivery_timeout_s:
            pending.timer = loop.call_later(timeout, _expire, pending, timeout)
        return pending.future

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop the delivery thread and
        release the librdkafka handle (its connections). Later sends fail at once.

        What the broker has not acknowledged by then is purged: its sends fail with
        `KafkaUnavailable` (never acknowledged upstream, so the sender retries)."""
        if self._closed:
            return
        self._closed = True
        remaining = self._producer.flush(timeout)
        if remaining:
            log.warning("producer closed with %d undelivered events (failed)", remaining)
            self._producer.purge()
            self._producer.flush(0)  # serves the purged messages' delivery reports
        self._stop.set()
        self._poller.join(timeout=2)
        self._hand_over()
        self._producer.close()


def _settle_all(reports: list[tuple[_Pending, KafkaError | None]]) -> None:
    for pending, err in reports:
        _settle(pending, None if err is None else KafkaUnavailable(str(err)))


def _expire(pending: _Pending, timeout: float) -> None:
    _settle(pending, KafkaUnavailable(f"no broker acknowledgement within {timeout}s"))


def _settle(pending: _Pending, error: BaseException | None) -> None:
    if pending.timer is not None:
        pending.timer.cancel()
        pending.timer = None
    fut = pending.future
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
        _seconds(pending.topic).observe(time.perf_counter() - pending.started)
    else:
        KAFKA_PRODUCE_ERRORS.labels(pending.topic).inc()
        fut.set_exception(error)


@functools.cache
def _seconds(topic: str) -> Any:
    return KAFKA_PRODUCE_SECONDS.labels(topic)


def ensure_topics(settings: Settings, topics: Iterable[Topic] = tuple(Topic)) -> list[str]:
    """Create the project's topics if they are missing; returns the names created."""
    return create_topics(
        settings, {settings.topic(t.value): settings.topic_partitions for t in topics}
    )


def create_topics(
    settings: Settings, partitions: Mapping[str, int], *, config: Mapping[str, str] | None = None
) -> list[str]:
    """Create the topics named in `partitions` (name -> partition count) that do not exist
    yet, with the settings' replication and `config`; returns the names created. Blocking."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = set(admin.list_topics(timeout=15).topics)
    min_insync = str(max(1, settings.topic_replication - 1))
    wanted = [
        NewTopic(
            name,
            num_partitions=count,
            replication_factor=settings.topic_replication,
            config={"min.insync.replicas": min_insync, **(config or {})},
        )
        for name, count in partitions.items()
        if name not in existing
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
    _await_metadata(admin, {t.topic: t.num_partitions for t in wanted})
    return created


def _await_metadata(
    admin: AdminClient, partitions: Mapping[str, int], timeout_s: float = 30.0
) -> None:
    """Until the broker's metadata shows every topic with all its partitions.

    The controller accepts a creation before every broker's metadata has the partitions; a
    client that asks at once (Faust checking its changelog topics) then sees 0 partitions
    and fails with PartitionsMismatch. Bounded: after `timeout_s` the caller goes on."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=5).topics
        if all(
            name in topics and len(topics[name].partitions) >= count
            for name, count in partitions.items()
        ):
            return
        time.sleep(0.2)  # sleep-ok: metadata poll under a deadline
    log.warning("topic metadata not complete after %.0fs: %s", timeout_s, sorted(partitions))
