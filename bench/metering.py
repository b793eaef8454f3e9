"""Metering phase: events/s through the streams worker vs a raw consume->produce loop.

The source is the ingress phase's messages.inbound (topped up with synthetic events over the
same 1,000 tenants to `EVENTS`). The streams worker runs as deployed (`openclaw-saas run
streams`: metering and session-sync in one Faust worker, so session-sync also writes the
session events metering emits); the rate counts its metering outputs (messages.admitted +
messages.held) from the first one on, for up to `window_s`. The baseline is `bench.raw loop`
over the same topic: consume, produce each record to another topic, commit per batch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException

from bench import events
from bench.report import Figure
from bench.world import Rate, World, create_topic, end_offsets, measure_rate
from common.settings import Settings
from common.topics import Topic

EVENTS = 50_000


@dataclass(frozen=True)
class MeteringPhase:
    project: Rate
    raw_per_s: float
    events: int

    def figures(self) -> list[Figure]:
        note = (
            f"{self.project.count:,} events in {self.project.seconds:.1f}s"
            f" (source {self.events:,} events, 1,000 tenants)"
        )
        return [
            Figure(
                "metering_events_per_s",
                "events/s",
                self.project.per_s,
                self.raw_per_s,
                ">= 20000 events/s",
                note,
            )
        ]


def run(world: World, settings: Settings, *, window_s: float) -> MeteringPhase:
    inbound = settings.topic(Topic.INBOUND.value)
    have = _when_led(lambda: end_offsets(settings.kafka_bootstrap, [inbound]))
    if have < EVENTS:
        tenants = world.tenants
        events.produce(
            settings,
            Topic.INBOUND,
            (events.inbound(tenants[n % len(tenants)], 10**10 + n) for n in range(EVENTS - have)),
        )
    total = end_offsets(settings.kafka_bootstrap, [inbound])
    outputs = [settings.topic(Topic.ADMITTED.value), settings.topic(Topic.HELD.value)]
    group = world.services(settings, ["streams"])
    try:
        rate = measure_rate(
            lambda: end_offsets(settings.kafka_bootstrap, outputs),
            total=total,
            window_s=window_s,
            alive=group.check_alive,
        )
    finally:
        group.stop()
    raw = _raw_loop(settings, inbound, total)
    return MeteringPhase(rate, raw, total)


def _when_led(read: Callable[[], int], timeout_s: float = 30.0) -> int:
    """`read()`, retried while the topic, created a moment ago, has no leader yet (when the
    ingress phase did not run first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read()
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _raw_loop(settings: Settings, source: str, total: int) -> float:
    sink = create_topic(settings, "bench.raw-out")
    done = subprocess.run(
        [sys.executable, "-m", "bench.raw", "loop", "--bootstrap", settings.kafka_bootstrap]
        + ["--source", source, "--sink", sink, "--group", f"{settings.topic_prefix}bench-raw"]
        + ["--events", str(total)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = json.loads(done.stdout)
    return float(out["events"]) / float(out["seconds"])
