"""Bare confluent-kafka baselines, each in its own process (so its CPU is its own).

- `loop`: consume a topic and produce every record to another, committing per batch, until
  `--events` were consumed; prints {"events", "seconds", "cpu_s"} (seconds from the first
  record consumed to the last one acknowledged);
- `relay`: the same loop until SIGTERM (the middle hop of `pingpong`);
- `pingpong`: produce `--rate` records a second to topic A for `--duration` s and consume
  topic B (fed by a `relay` A -> B and another B -> C...); prints the latency from each
  record's broker acknowledgement to its consumption at the end, plus CPU.

Producers use the project's `producer_config` (idempotent, acks=all, lz4, linger 2 ms) and
consumers the defaults of `common.consumer.KafkaWorker`: the same librdkafka, nothing else.

    python -m bench.raw loop --bootstrap B --source T --sink T2 --events N
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import sys
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from common.kafka import producer_config
from common.settings import Settings


def _consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    consumer.subscribe([topic])
    return consumer


def _producer(bootstrap: str) -> Producer:
    return Producer(producer_config(Settings.from_env({}, kafka_bootstrap=bootstrap)))


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _available(consumer: Consumer) -> list[Message]:
    """Whatever is fetched already (at least one record, or none after 0.1 s)."""
    first = consumer.poll(0.1)
    return [] if first is None else [first, *consumer.consume(500, 0)]


def loop(bootstrap: str, source: str, sink: str, events: int | None, group: str) -> dict[str, Any]:
    consumer = _consumer(bootstrap, group, source)
    producer = _producer(bootstrap)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    seen, started, cpu0 = 0, 0.0, 0.0
    while not stopping and (events is None or seen < events):
        # A bounded loop takes batches; the relay (a latency floor) takes what is there now.
        batch = consumer.consume(500, 0.2) if events is not None else _available(consumer)
        for msg in batch:
            if msg.error() is not None:
                continue
            if not seen:
                started, cpu0 = time.monotonic(), _cpu()
            producer.produce(sink, value=msg.value(), key=msg.key())
            seen += 1
        producer.poll(0)
        if batch:
            consumer.commit(asynchronous=True)
    producer.flush(30)
    elapsed = time.monotonic() - started
    result = {"events": seen, "seconds": elapsed, "cpu_s": _cpu() - cpu0}
    consumer.close()
    return result


def pingpong(
    bootstrap: str, first: str, last: str, rate: float, duration: float, group: str
) -> dict[str, Any]:
    """Latencies (ms) from the ack of a produce to `first` to its arrival from `last`."""
    consumer = _consumer(bootstrap, group, last)
    producer = _producer(bootstrap)
    acked: dict[int, int] = {}
    arrived: dict[int, int] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            acked[struct.unpack(">q", msg.value() or b"")[0]] = time.monotonic_ns()

    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)  # joined before the first send
    producer.produce(first, value=struct.pack(">q", -1))  # warm-up: every hop has joined
    while time.monotonic() < deadline + 60:
        producer.poll(0)
        msg = consumer.poll(0.1)
        if msg is not None and msg.error() is None and msg.value() == struct.pack(">q", -1):
            break
    acked.clear()
    count = int(rate * duration)
    cpu0, start = _cpu(), time.monotonic()
    sent = 0
    drain_until = start + duration + 10
    while len(arrived) < count and time.monotonic() < drain_until:
        while sent < count and time.monotonic() >= start + sent / rate:
            producer.produce(
                first, value=struct.pack(">q", sent), key=str(sent % 1000), on_delivery=on_delivery
            )
            sent += 1
        producer.poll(0)
        msg = consumer.poll(0.001)
        if msg is not None and msg.error() is None:
            arrived[struct.unpack(">q", msg.value() or b"")[0]] = time.monotonic_ns()
    latencies = [(arrived[n] - acked[n]) / 1e6 for n in arrived if n in acked]
    result = {"sent": sent, "arrived": len(arrived), "latencies_ms": latencies}
    result["cpu_s"] = _cpu() - cpu0
    consumer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("loop", "relay", "pingpong"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True, help="topic consumed (pingpong: first hop)")
    parser.add_argument("--sink", required=True, help="topic produced (pingpong: last hop)")
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    if args.mode == "pingpong":
        out = pingpong(args.bootstrap, args.source, args.sink, args.rate, args.duration, args.group)
    else:
        events = args.events if args.mode == "loop" else None
        out = loop(args.bootstrap, args.source, args.sink, events, args.group)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
