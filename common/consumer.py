"""A Kafka consumer loop that commits only after the side effect.

`KafkaWorker` polls with confluent-kafka, hands each event to an async handler and
commits, per partition, the highest offset below which every event is finished.
Events of one *lane* (for example one conversation) run one at a time and in order;
different lanes run concurrently up to `max_in_flight`, so one slow tenant does not stall
the others. When the handler raises, `common.failure` decides (the same policy as the
Faust agents'): the event is dead-lettered (`dead_letter`, then it counts as done) or
retried with capped exponential backoff, holding its lane (and so its offset) until it
succeeds; nothing is acknowledged silently. A stage whose dead-letter breaker trips stops:
`run()` drains, commits and raises `DlqBreakerTripped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from common.breaker import DlqBreaker, DlqBreakerTripped
from common.errors import InvalidEvent
from common.failure import BACKOFF, StageFailures, breaker_for
from common.kafka import EventSink
from common.settings import Settings
from common.telemetry import CONSUMER_LAG, DEAD_LETTERS
from common.timeconv import now_ms
from common.topics import Topic
from schemas import codec

log = logging.getLogger(__name__)
#: Longest wait for the first record of a fetch (also how often `stop()` is noticed).
FETCH_WAIT_S = 0.2
#: Most records taken per fetch.
FETCH_BATCH = 500

Handler = Callable[["Event"], Awaitable[None]]
LaneOf = Callable[["Event"], str]


@dataclass
class Event:
    """One consumed record: decoded value plus where it came from."""

    topic: Topic
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    value: dict[str, Any] = field(default_factory=dict)
    #: Why the record could not be decoded (or its lane found); such an event is
    #: dead-lettered without reaching the handler.
    error: str | None = None


@dataclass
class _Partition:
    in_flight: set[int] = field(default_factory=set)
    high: int = -1  # highest offset handed out
    committed: int = -1  # next offset already committed


class KafkaWorker:
    """Consume `topics` as group `group`, running `handler` per event."""

    def __init__(
        self,
        settings: Settings,
        *,
        stage: str,
        group: str,
        topics: list[Topic],
        handler: Handler,
        producer: EventSink,
        lane_of: LaneOf | None = None,
        max_in_flight: int = 256,
        retry_cap_s: float = 30.0,
        breaker: DlqBreaker | None = None,
        **consumer_config: Any,
    ) -> None:
        self.stage = stage
        self._settings = settings
        self._topics = {settings.topic(t.value): t for t in topics}
        self._handler = handler
        self._producer = producer
        self._lane_of = lane_of or (lambda e: f"{e.partition}")
        self._max_in_flight = max_in_flight
        self._group = settings.group(group)
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": self._group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "partition.assignment.strategy": "cooperative-sticky",
                **consumer_config,
            }
        )
        self._parts: dict[tuple[str, int], _Partition] = defaultdict(_Partition)
        self._lanes: dict[str, asyncio.Queue[Event]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._in_flight = 0
        self._running = 0
        self._paused = False
        self._stopping = asyncio.Event()
        self._failures = StageFailures(
            stage,
            breaker=breaker or breaker_for(settings),
            on_trip=lambda _reason: self._stopping.set(),
            backoff=replace(BACKOFF, cap_s=retry_cap_s),
        )
        self.processed = 0

    @property
    def tripped(self) -> str | None:
        """Why the stage stopped itself (its dead-letter breaker tripped), if it did."""
        return self._failures.tripped

    async def run(self) -> None:
        """Consume until `stop()`; then finish in-flight events, commit and close."""
        loop = asyncio.get_running_loop()
        self._consumer.subscribe(list(self._topics), on_revoke=self._on_revoke)
        last_commit = time.monotonic()
        try:
            while not self._stopping.is_set():
                self._apply_backpressure()
                msgs = await loop.run_in_executor(None, self._fetch)
                for msg in msgs:
                    self._dispatch(msg)
                if time.monotonic() - last_commit > 0.2:
                    self._commit()
                    last_commit = time.monotonic()
            await self._drain()
            self._commit(asynchronous=False)
            if self.tripped:
                raise DlqBreakerTripped(self.tripped)
        finally:
            for task in self._lane_tasks.values():
                task.cancel()
            await loop.run_in_executor(None, self._consumer.close)

    def stop(self) -> None:
        self._stopping.set()

    def _fetch(self) -> list[Message]:
        """Wait up to FETCH_WAIT_S for one record, then take what is already fetched.

        `consume(n, timeout)` alone would wait the whole timeout unless n records are there,
        adding up to that much latency per hop at low rates."""
        first = self._consumer.poll(FETCH_WAIT_S)
        if first is None:
            return []
        return [first, *self._consumer.consume(FETCH_BATCH - 1, 0)]

    # -- dispatch ---------------------------------------------------------------------

    def _dispatch(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("%s: consumer error %s", self.stage, err)
            return
        name = msg.topic() or ""
        topic = self._topics[name]
        event = Event(topic, msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value() or b"")
        part = self._parts[(name, event.partition)]
        part.in_flight.add(event.offset)
        part.high = max(part.high, event.offset)
        self._in_flight += 1
        try:
            event.value = codec.decode(event.raw, expect=topic.schema)
            lane = self._lane_of(event)
        except (codec.CodecError, KeyError, TypeError) as err:
            lane = f"invalid:{event.partition}"
            event.error = str(err)
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = asyncio.Queue()
            self._lane_tasks[lane] = asyncio.create_task(self._run_lane(lane, queue))
        queue.put_nowait(event)

    async def _run_lane(self, lane: str, queue: asyncio.Queue[Event]) -> None:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=30)
            except TimeoutError:
                if queue.empty():  # idle lane: forget it
                    self._lanes.pop(lane, None)
                    self._lane_tasks.pop(lane, None)
                    return
                continue
            if self._stopping.is_set():
                return  # left unfinished: its offset is not committed, it is redelivered
            self._running += 1
            try:
                await self._process(event)
            finally:
                self._running -= 1
            self._finish(event)

    async def _process(self, event: Event) -> None:
        await self._failures.run(
            event, self._handle, dead_letter=self._dead_letter, wait=self._wait_or_stop
        )

    async def _handle(self, event: Event) -> None:
        if event.error is not None:
            raise InvalidEvent(f"undecodable: {event.error}")
        await self._handler(event)

    async def _dead_letter(self, event: Event, reason: str) -> None:
        await dead_letter(self._producer, self.stage, event, reason, pause=self._pause_or_stop)

    async def _pause_or_stop(self, _attempt: int) -> None:
        """A second between dead-letter attempts."""
        await self._wait_or_stop(1.0)

    async def _wait_or_stop(self, seconds: float) -> None:
        """Wait before trying again; a stopping worker gives up (the event stays uncommitted)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise asyncio.CancelledError

    def _finish(self, event: Event) -> None:
        part = self._parts[(self._settings.topic(event.topic.value), event.partition)]
        part.in_flight.discard(event.offset)
        self._in_flight -= 1
        self.processed += 1

    # -- commits and flow control -------------------------------------------------------

    def _commit(self, asynchronous: bool = True) -> None:
        offsets = []
        for (topic, partition), part in self._parts.items():
            nxt = min(part.in_flight) if part.in_flight else part.high + 1
            if nxt > part.committed and nxt > 0:
                offsets.append(TopicPartition(topic, partition, nxt))
                part.committed = nxt
        if offsets:
            try:
                if asynchronous:
                    self._consumer.commit(offsets=offsets, asynchronous=True)
                else:
                    self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as err:  # a later commit covers it
                log.warning("%s: commit failed: %s", self.stage, err)
        self._report_lag()

    def _report_lag(self) -> None:
        with contextlib.suppress(Exception):
            for tp in self._consumer.assignment():
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                position = self._parts[(tp.topic, tp.partition)].high + 1
                if high >= 0 and position > 0:
                    CONSUMER_LAG.labels(self._group, tp.topic, str(tp.partition)).set(
                        max(0, high - position)
                    )

    def _apply_backpressure(self) -> None:
        assignment = self._consumer.assignment()
        if not self._paused and self._in_flight >= self._max_in_flight and assignment:
            self._consumer.pause(assignment)
            self._paused = True
        elif self._paused and self._in_flight < self._max_in_flight // 2:
            self._consumer.resume(assignment)
            self._paused = False

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit what is finished; unfinished events of these partitions will be
        # redelivered to the new owner (handlers are idempotent by event id).
        self._commit(asynchronous=False)
        for tp in partitions:
            self._parts.pop((tp.topic, tp.partition), None)

    async def _drain(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self._running > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


async def dead_letter(
    producer: EventSink,
    stage: str,
    event: Event,
    reason: str,
    *,
    pause: Callable[[int], Awaitable[None]],
) -> None:
    """Count and log `event` as dead, and write it with `reason` to its topic's dead-letter
    topic (`schemas/dead_letter.avsc`), again and again until the broker has it: that write
    is the side effect before the event may be committed. `pause(attempt)` runs between
    attempts (it may raise to give up)."""
    DEAD_LETTERS.labels(stage, reason.split(":", 1)[0][:40]).inc()
    log.error(
        "%s: dead-letter %s[%d]@%d: %s",
        stage,
        event.topic.value,
        event.partition,
        event.offset,
        reason,
    )
    dlq = event.topic.dlq
    if dlq is None:
        return
    record = {
        "stage": stage,
        "source_topic": event.topic.value,
        "source_partition": event.partition,
        "source_offset": event.offset,
        "key": event.key,
        "payload": event.raw,
        "reason": reason,
        "failed_at": now_ms(),
    }
    key = (event.key or b"").decode("utf-8", "replace")
    attempt = 0
    while True:
        try:
            await producer.send(dlq, key, record)
            return
        except Exception as err:
            attempt += 1
            log.warning("%s: dead-letter write failed (%s), retrying", stage, err)
            await pause(attempt)
