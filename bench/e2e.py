"""End-to-end phase: latency added between "webhook accepted" and "gateway request received",
and CPU per message, at a fixed offered load over the 1,000 tenants.

All four services run; `bench.load fixed` (its own process) posts `rate` updates a second
round robin over the tenants, each in a new conversation, and stamps when each 200 came
back; `bench.stub` (the tenants' gateway and Telegram API) stamps when each message's gateway
request arrived. Both stamps are CLOCK_MONOTONIC, one clock for the machine. A warm-up of
50 messages comes first. CPU: user + system time of the four service processes from the
start of the load until every reply was delivered (Telegram sendMessage at the stub); the
note says how much of it the same processes burn idle over the same time (measured for
`IDLE_S` before the load).

Baseline: the same offered rate through two bare confluent-kafka hops (produce, relay,
relay, consume: `bench.raw pingpong` + two `bench.raw relay` processes), the minimum the
pipeline's two hops in front of the gateway (messages.inbound, messages.admitted) cost;
for CPU, that plus the bare aiohttp handler's CPU per request.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from bench.report import Figure, cpu_seconds, percentile
from bench.world import World, create_topic
from common.settings import Settings

SERVICES = ("ingress", "streams", "forwarder", "delivery")
#: Offered load (messages/s): under what every stage sustains on the 2-core machine, so the
#: figure is the latency the pipeline adds, not a backlog.
RATE = 20.0
IDLE_S = 5.0


@dataclass
class E2EPhase:
    rate: float
    accepted: int
    latencies_ms: list[float]
    cpu_ms_per_message: float
    raw_latencies_ms: list[float]
    raw_cpu_ms_per_message: float
    details: dict[str, Any] = field(default_factory=dict)

    def figures(self, bare_cpu_ms: float) -> list[Figure]:
        lost = self.accepted - len(self.latencies_ms)
        note = f"{self.rate:.0f} msg/s offered, {self.accepted:,} accepted"
        note += f", {lost} not at the gateway in time" if lost else ""
        replied = int(self.details.get("replied", self.accepted))
        note += f", only {replied} replies delivered in time" if replied < self.accepted else ""
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in self.details.get("cpu_ms", {}).items())
        idle_ms = float(self.details.get("idle_ms", 0.0))
        return [
            Figure(
                "e2e_added_p50_ms",
                "ms",
                percentile(self.latencies_ms, 50),
                percentile(self.raw_latencies_ms, 50),
                "<= 10 ms",
                note,
            ),
            Figure(
                "e2e_added_p99_ms",
                "ms",
                percentile(self.latencies_ms, 99),
                percentile(self.raw_latencies_ms, 99),
                "<= 50 ms",
            ),
            Figure(
                "cpu_ms_per_message",
                "CPU-ms/message",
                self.cpu_ms_per_message,
                self.raw_cpu_ms_per_message + bare_cpu_ms,
                "<= 1 CPU-ms",
                f"per process: {cpu}; of the total, {idle_ms:.2f} is what the idle services"
                " burn over the same time"
                if cpu
                else "",
            ),
        ]


def _stub_stats(world: World) -> dict[str, Any]:
    with urllib.request.urlopen(f"{world.stub_url}/_stats", timeout=10) as resp:  # noqa: S310
        stats: dict[str, Any] = json.load(resp)
    return stats


def _load(world: World, url: str, *, rate: float, duration: float, first: int) -> dict[int, int]:
    """Run the fixed-rate load process; {n: answered_ns} of the updates answered 200."""
    tenants = world.state_dir / "tenants.json"
    tenants.write_text(json.dumps([[t.bot_id, t.secret] for t in world.tenants]))
    out = world.state_dir / f"load-{first}.json"
    subprocess.run(
        [sys.executable, "-m", "bench.load", "fixed", "--url", url, "--tenants", str(tenants)]
        + ["--rate", str(rate), "--duration", str(duration), "--first", str(first)]
        + ["--out", str(out)],
        check=True,
        timeout=duration + 120,
    )
    sends = json.loads(out.read_text())
    return {int(n): answered for n, (_sent, answered, status) in sends.items() if status == 200}


def _wait(predicate: Any, timeout: float, alive: Any) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        alive()
        time.sleep(0.2)


def run(world: World, settings: Settings, *, rate: float, duration: float) -> E2EPhase:
    group = world.services(settings, SERVICES)
    url = f"http://127.0.0.1:{settings.ingress_port}"
    try:
        warm = _load(world, url, rate=25, duration=2, first=1)
        _wait(
            lambda: set(map(str, warm)) <= set(_stub_stats(world)["gateway"]),
            120,
            group.check_alive,
        )
        pids = {name: proc.pid for name, proc in group.procs.items()}
        idle0, idle_started = sum(map(cpu_seconds, pids.values())), time.monotonic()
        time.sleep(IDLE_S)  # what the services burn doing nothing (polling, timers)
        idle = (sum(map(cpu_seconds, pids.values())) - idle0) / (time.monotonic() - idle_started)
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        load_started = time.monotonic()
        sends0 = _stub_stats(world)["sends"]
        accepted = _load(world, url, rate=rate, duration=duration, first=10**6)
        _wait(lambda: _stub_stats(world)["sends"] - sends0 >= len(accepted), 90, group.check_alive)
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        window = time.monotonic() - load_started
        stats = _stub_stats(world)
        arrived, replied = stats["gateway"], stats["sends"] - sends0
    finally:
        group.stop()
    latencies = [(arrived[str(n)] - at) / 1e6 for n, at in accepted.items() if str(n) in arrived]
    count = max(1, len(accepted))
    raw_latencies, raw_cpu = _raw_two_hops(world, settings, rate=rate, duration=duration)
    return E2EPhase(
        rate=rate,
        accepted=len(accepted),
        latencies_ms=latencies,
        cpu_ms_per_message=sum(cpu.values()) * 1000 / count,
        raw_latencies_ms=raw_latencies,
        raw_cpu_ms_per_message=raw_cpu,
        details={
            "cpu_ms": {k: v * 1000 / count for k, v in cpu.items()},
            "replied": replied,
            "idle_ms": idle * window * 1000 / count,
        },
    )


def _raw_two_hops(
    world: World, settings: Settings, *, rate: float, duration: float
) -> tuple[list[float], float]:
    """Latencies (ms) and CPU-ms per message of produce -> relay -> relay -> consume."""
    hops = [create_topic(settings, f"bench.hop-{name}") for name in "abc"]
    boot = settings.kafka_bootstrap
    relays = [
        world.start_helper(
            f"relay-{i}",
            "bench.raw",
            "relay",
            *("--bootstrap", boot, "--source", hops[i], "--sink", hops[i + 1]),
            *("--group", f"{settings.topic_prefix}bench-relay-{i}"),
        )
        for i in range(2)
    ]
    try:
        cpu0 = sum(cpu_seconds(p.pid) for p in relays)
        done = subprocess.run(
            [sys.executable, "-m", "bench.raw", "pingpong", "--bootstrap", boot]
            + ["--source", hops[0], "--sink", hops[2], "--group", f"{settings.topic_prefix}pp"]
            + ["--rate", str(rate), "--duration", str(duration)],
            capture_output=True,
            text=True,
            timeout=duration + 120,
            check=True,
        )
        relay_cpu = sum(cpu_seconds(p.pid) for p in relays) - cpu0
    finally:
        for proc in relays:
            world.stop_helper(proc)
    out = json.loads(done.stdout)
    latencies = [float(v) for v in out["latencies_ms"]]
    cpu_ms = (relay_cpu + float(out["cpu_s"])) * 1000 / max(1, int(out["arrived"]))
    return latencies, cpu_ms
