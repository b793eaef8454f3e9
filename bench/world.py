"""What every phase shares: the servers, 1,000 tenants, settings per phase, processes."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from common.kafka import ensure_topics
from common.settings import Secret, Settings
from control.migrate import migrate
from control.processes import ServiceGroup
from control.tenants import NewTenant, create_tenant
from devstack import Stack
from devstack._proc import free_port

TENANTS = 1000
PLAN = "business"  # 10,000 messages a month: no bench tenant comes near it


@dataclass(frozen=True)
class BenchTenant:
    tenant_id: str
    bot_id: str
    secret: str


class World:
    """The devstack servers (no OpenClaw gateway: `bench.stub` stands in) and the tenants."""

    def __init__(self, stack: Stack, state_dir: Path) -> None:
        assert stack.kafka is not None and stack.postgres is not None
        self.stack = stack
        self.state_dir = state_dir
        self.kafka_bootstrap = stack.kafka.bootstrap
        self.database_url = stack.postgres.dsn
        self.stub_port = free_port()
        self.stub_url = f"http://127.0.0.1:{self.stub_port}"
        self.tenants: list[BenchTenant] = []
        self._secrets_key = Secret(base64.b64encode(os.urandom(32)).decode())
        self._helpers: list[subprocess.Popen[bytes]] = []

    def settings(self, prefix: str, **overrides: Any) -> Settings:
        """Settings of one phase: its own topics and consumer groups, created here."""
        data_dir = self.state_dir / prefix.strip(".") / "streams"
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        settings = Settings.from_env(
            {},
            secrets_key=self._secrets_key,
            kafka_bootstrap=self.kafka_bootstrap,
            database_url=self.database_url,
            topic_prefix=prefix,
            topic_partitions=4,
            ingress_port=free_port(),
            telegram_api_base=self.stub_url,
            streams_data_dir=str(data_dir),
            log_level="WARNING",
            **overrides,
        )
        ensure_topics(settings)
        return settings

    def prepare(self, count: int = TENANTS) -> None:
        """Migrations, the stub, and `count` tenants whose gateway is the stub."""
        migrate(self.database_url)
        self.start_helper("stub", "bench.stub", "--port", str(self.stub_port))
        wait_http(f"{self.stub_url}/_stats")
        base = self.settings("bench-setup.")

        def one(i: int) -> BenchTenant:
            token = f"{8_000_000_000 + i}:{secrets.token_urlsafe(26)[:35]}"
            out = create_tenant(
                base,
                NewTenant(
                    name=f"bench-{i}",
                    plan=PLAN,
                    owner_email=f"bench-{i}@bench.test",
                    telegram_bot_token=token,
                    gateway_url=self.stub_url,
                    gateway_token=f"bench-gateway-token-{i}",
                ),
            )
            tg = out["telegram"]
            return BenchTenant(out["tenant_id"], tg["bot_id"], tg["secret_token"])

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            self.tenants = list(pool.map(one, range(count)))

    def services(
        self, settings: Settings, names: Sequence[str], metrics: bool = False
    ) -> ServiceGroup:
        """The services as subprocesses (started; ingress ready when it is one of them)."""
        ports = {n: free_port() for n in names if n != "ingress"} if metrics else {}
        group = ServiceGroup(settings, names, self.state_dir / "logs", metrics_ports=ports)
        group.start()
        if "ingress" in names:
            group.wait_http_ready(f"http://127.0.0.1:{settings.ingress_port}/readyz", 90)
        return group

    def start_helper(self, name: str, module: str, *args: str) -> subprocess.Popen[bytes]:
        """A bench helper process (`python -m <module> ...`), stopped by `close()`."""
        log = (self.state_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self._helpers.append(proc)
        return proc

    def stop_helper(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for proc in self._helpers:
            self.stop_helper(proc)


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def end_offsets(bootstrap: str, topics: Sequence[str]) -> int:
    """Sum of the end offsets of every partition of `topics` (records ever produced)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        metadata = consumer.list_topics(timeout=10)
        total = 0
        for name in topics:
            for partition in metadata.topics[name].partitions:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=10
                )
                total += high
        return total
    finally:
        consumer.close()


@dataclass(frozen=True)
class Rate:
    per_s: float
    count: int
    seconds: float


def measure_rate(
    count: Callable[[], int],
    *,
    total: int,
    window_s: float,
    alive: Callable[[], None],
    start_timeout_s: float = 120.0,
) -> Rate:
    """Items per second from the first time `count()` moves until `total` or `window_s`.

    Polls every 0.2 s; `alive()` raises when the process under test died.
    """
    initial = count()
    deadline = time.monotonic() + start_timeout_s
    while (first := count()) == initial:
        alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing processed within {start_timeout_s:.0f}s")
        time.sleep(0.2)
    started = time.monotonic()
    current = first
    while current < total and time.monotonic() - started < window_s:
        alive()
        time.sleep(0.2)
        current = count()
    seconds = time.monotonic() - started
    return Rate((current - first) / seconds, current - first, seconds)


def create_topic(settings: Settings, name: str) -> str:
    """Create a bench-only topic `<prefix><name>`; returns its physical name."""
    physical = settings.topic(name)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    new = NewTopic(physical, num_partitions=settings.topic_partitions, replication_factor=1)
    admin.create_topics([new])[physical].result(30)
    return physical
