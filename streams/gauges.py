"""Gauges of the stream worker, measured every few seconds from outside the Faust consumer.

- `kafka_consumer_lag_messages{group, topic, partition}`: end offset minus the group's
  committed offset (from the partition's start while nothing is committed), the way
  `kafka-consumer-groups` reports it, for every topic an agent of the app consumes. Faust's
  consumer (aiokafka) keeps its positions to itself; the confluent-kafka workers export the
  same series from their own positions.
- `overage_held_messages`: rows of the overage queue (PostgreSQL `held_messages`, see
  `streams.metering.held_store`) not released yet, all tenants.

A small confluent-kafka client reads committed offsets without joining the group (no
`subscribe`). Everything runs in one thread, so a slow broker or database never blocks the
worker's event loop; a failed round is logged and tried again at the next.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import faust
import psycopg
from confluent_kafka import Consumer, TopicPartition

from common.settings import Settings
from common.telemetry import CONSUMER_LAG, HELD_DEPTH

log = logging.getLogger(__name__)

INTERVAL_S = 5.0
_PENDING_HELD = "SELECT count(*) FROM held_messages WHERE released_at IS NULL"


class Probe(Protocol):
    def report(self) -> None: ...

    def close(self) -> None: ...


class GroupLag:
    """Lag per partition of one consumer group on some topics (physical names)."""

    def __init__(self, settings: Settings, group: str, topics: Sequence[str]) -> None:
        self.group = group
        self._topics = list(topics)
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "client.id": "openclaw-saas-lag",
            }
        )

    def measure(self, timeout: float = 5.0) -> dict[tuple[str, int], int]:
        """{(topic, partition): lag} for every partition of the topics that exist."""
        metadata = self._consumer.list_topics(timeout=timeout)
        wanted = [
            TopicPartition(name, partition)
            for name in self._topics
            if name in metadata.topics
            for partition in metadata.topics[name].partitions
        ]
        lags = {}
        for tp in self._consumer.committed(wanted, timeout=timeout) if wanted else []:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout
            )
            start = tp.offset if tp.offset >= 0 else low
            lags[(tp.topic, tp.partition)] = max(0, high - start)
        return lags

    def report(self) -> None:
        for (topic, partition), lag in self.measure().items():
            CONSUMER_LAG.labels(self.group, topic, str(partition)).set(lag)

    def close(self) -> None:
        self._consumer.close()


class HeldDepth:
    """Count of held messages not yet released (one indexed query per round)."""

    def __init__(self, settings: Settings) -> None:
        self._dsn = settings.database_url
        self._conn: psycopg.Connection[Any] | None = None

    def report(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            row = self._conn.execute(_PENDING_HELD).fetchone()
        except psycopg.errors.UndefinedTable:
            return  # migrations not applied yet
        except psycopg.Error:
            self.close()
            raise
        HELD_DEPTH.set(int(row[0]) if row else 0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class GaugeReporter(threading.Thread):
    """Calls every probe's `report` every `interval_s` until `stop()`."""

    def __init__(self, probes: Sequence[Probe], interval_s: float = INTERVAL_S) -> None:
        super().__init__(name="gauge-reporter", daemon=True)
        self._probes = list(probes)
        self._interval = interval_s
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while True:
                for probe in self._probes:
                    try:
                        probe.report()
                    except Exception as err:  # broker or database away: next round
                        log.warning("%s not measured: %s", type(probe).__name__, err)
                if self._stopping.wait(self._interval):
                    return
        finally:
            for probe in self._probes:
                with contextlib.suppress(Exception):
                    probe.close()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.join(timeout)


def source_topics(app: faust.App) -> list[str]:
    """The physical names of the topics the app's agents consume."""
    return sorted({name for agent in app.agents.values() for name in agent.channel.topics})


@contextlib.asynccontextmanager
async def gauge_reporting(settings: Settings, app: faust.App) -> AsyncIterator[None]:
    """Report the gauges while inside the block, if metrics are served at all."""
    if not settings.metrics_port:
        yield
        return
    reporter = GaugeReporter(
        [GroupLag(settings, app.conf.id, source_topics(app)), HeldDepth(settings)]
    )
    reporter.start()
    try:
        yield
    finally:
        reporter.stop()
