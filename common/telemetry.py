"""Logging set-up and the one registry of metric names.

Every metric the project exports is defined here, named by Prometheus conventions
(`_total`, `_seconds`, base units) with low-cardinality labels only: channel, plan,
outcome, reason, stage, topic. Tenant ids are never labels.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


#: Libraries that repeat one line many times a second while a server is away.
CHATTY_LIBRARIES = ("aiokafka", "faust", "mode")


def setup_logging(level: str = "INFO") -> None:
    """Plain line logs on stderr; messages never carry secrets (they are `Secret`s)."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    for noisy in ("aiokafka", "faust.transport", "mode", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    quiet = QuietRepeats()
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)


class QuietRepeats(logging.Filter):
    """Passes the first of a repeated library log line, then one per `every_s` seconds
    saying how many were held back. While the broker is down, aiokafka logs the same
    failed connect thousands of times a second; one line per half minute tells as much.

    Lines are the same when logger, level and message template (before its arguments)
    are; only loggers under `libraries` are thinned, the project's own never are."""

    def __init__(
        self,
        every_s: float = 30.0,
        *,
        libraries: tuple[str, ...] = CHATTY_LIBRARIES,
        clock: Callable[[], float] = time.monotonic,
        remember: int = 512,
    ) -> None:
        super().__init__()
        self._every_s = every_s
        self._prefixes = tuple(p + "." for p in libraries)
        self._libraries = frozenset(libraries)
        self._clock = clock
        self._remember = remember
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [passed at, held]

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name not in self._libraries and not name.startswith(self._prefixes):
            return True
        key = (name, record.levelno, str(record.msg))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self._every_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} [{int(seen[1])} more like this held back]"
        if seen is None and len(self._seen) >= self._remember:
            self._seen.clear()
        self._seen[key] = [now, 0]
        return True


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on `host`:`port` (0 means: do not serve)."""
    if port:
        start_http_server(port, addr=host)


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# ingress
INGRESS_REQUESTS = Counter(
    "ingress_requests_total", "Webhook requests by channel and outcome", ["channel", "outcome"]
)
INGRESS_REJECTIONS = Counter(
    "ingress_rejections_total",
    "Webhook requests refused, by channel and reason",
    ["channel", "reason"],
)
INGRESS_DUPLICATES = Counter(
    "ingress_duplicates_total", "Updates seen again and acknowledged without producing", ["channel"]
)
# kafka
KAFKA_PRODUCE_SECONDS = Histogram(
    "kafka_produce_seconds", "Time from produce to broker ack", ["topic"], buckets=LATENCY_BUCKETS
)
KAFKA_PRODUCE_ERRORS = Counter(
    "kafka_produce_errors_total", "Produce attempts the broker did not acknowledge", ["topic"]
)
CONSUMER_LAG = Gauge(
    "kafka_consumer_lag_messages", "High watermark minus position", ["group", "topic", "partition"]
)
DEAD_LETTERS = Counter(
    "dead_letters_total", "Events sent to a dead-letter topic", ["stage", "reason"]
)
EVENTS_PROCESSED = Counter(
    "stage_events_total", "Events a stage finished, by outcome", ["stage", "outcome"]
)
# metering
QUOTA_DECISIONS = Counter(
    "quota_decisions_total", "Metering decisions by plan and decision", ["plan", "decision"]
)
# bridge
GATEWAY_SECONDS = Histogram(
    "gateway_request_seconds",
    "OpenClaw gateway request latency",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
GATEWAY_ERRORS = Counter("gateway_errors_total", "Gateway failures by kind", ["kind"])
# senders
CHANNEL_SENDS = Counter(
    "channel_sends_total", "Outbound sends to a channel API by outcome", ["channel", "outcome"]
)
SEND_PACING_SECONDS = Histogram(
    "send_pacing_wait_seconds",
    "Time an outbound message waited for its chat's and bot's rate limits",
    ["channel"],
    buckets=LATENCY_BUCKETS,
)
TYPING_ACTIONS = Counter(
    "typing_actions_total",
    "Typing indicators sent while an agent works, by channel and outcome",
    ["channel", "outcome"],
)
DELIVERY_RECORDS = Counter(
    "delivery_records_total",
    "Delivery results written to outbound_deliveries, by channel and outcome",
    ["channel", "outcome"],
)
CHANNEL_STATUSES = Counter(
    "channel_statuses_total",
    "Provider message statuses recorded (accepted, sent, delivered, read, failed, received)",
    ["channel", "status"],
)
# postgres
PG_WRITE_SECONDS = Histogram(
    "postgres_write_seconds", "PostgreSQL write latency", ["table"], buckets=LATENCY_BUCKETS
)
# overage queue
HELD_DEPTH = Gauge(
    "overage_held_messages",
    "Held messages not released yet (PostgreSQL held_messages, all tenants)",
)
# billing lifecycle and provisioning
LIFECYCLE_DECISIONS = Counter(
    "lifecycle_decisions_total",
    "Tenant statuses the lifecycle decided (a change or a plan change), by status",
    ["status"],
)
PROVISIONER_ACTIONS = Counter(
    "provisioner_actions_total",
    "Gateway reconciliations by result (serving, stopped, disabled, deleted, error)",
    ["result"],
)
GATEWAY_TOOL_POLICY = Gauge(
    "gateway_tool_policy_ok",
    "1 when every probed tool was refused by the gateway's live policy, 0 when one was reachable",
    ["unit"],
)
