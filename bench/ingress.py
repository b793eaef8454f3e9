"""Ingress phase: webhook requests/s and latency with a durable Kafka ack, vs a bare handler.

`wrk` (one thread, its own process) posts Telegram updates round robin over the 1,000
tenants at saturation with `CONNECTIONS` connections, first to the real ingress (verify the
secret, normalise, Avro, produce with acks=all, 200 after the broker's ack), then to
`bench.bare`, an aiohttp handler that answers 200 doing nothing. Each run is preceded by a
short warm-up. The updates produced here feed the metering phase.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.load import WrkResult, run_wrk, wrk_script
from bench.report import Figure, cpu_seconds
from bench.world import World, wait_http
from common.settings import Settings
from devstack._proc import free_port

CONNECTIONS = 32


@dataclass(frozen=True)
class IngressRun:
    result: WrkResult
    cpu_ms_per_request: float


@dataclass(frozen=True)
class IngressPhase:
    project: IngressRun
    bare: IngressRun

    def figures(self) -> list[Figure]:
        p, b = self.project.result, self.bare.result
        note = (
            f"wrk -t1 -c{CONNECTIONS}, at saturation; {p.requests:,} requests;"
            f" server CPU-ms/request {self.project.cpu_ms_per_request:.2f}"
            f" (bare {self.bare.cpu_ms_per_request:.2f})"
        )
        if p.errors or b.errors:
            note += f"; errors: ingress {p.errors}, bare {b.errors}"
        return [
            Figure("ingress_rps", "requests/s", p.rps, b.rps, ">= 0.5x baseline", note),
            Figure("ingress_p50_ms", "ms", p.p50_ms, b.p50_ms, "report"),
            Figure("ingress_p99_ms", "ms", p.p99_ms, b.p99_ms, "report"),
        ]


def _measure(world: World, url: str, pid: int, seconds: float, first_id: int) -> IngressRun:
    script = wrk_script(world.state_dir / "wrk.lua", [(t.bot_id, t.secret) for t in world.tenants])
    run_wrk(url, script, seconds=2, connections=CONNECTIONS, first_id=first_id)  # warm-up
    cpu = cpu_seconds(pid)
    result = run_wrk(
        url, script, seconds=seconds, connections=CONNECTIONS, first_id=first_id + 10**8
    )
    used = cpu_seconds(pid) - cpu
    return IngressRun(result, used * 1000 / max(1, result.requests))


def run(world: World, settings: Settings, *, seconds: float) -> IngressPhase:
    group = world.services(settings, ["ingress"])
    try:
        url = f"http://127.0.0.1:{settings.ingress_port}"
        project = _measure(world, url, group.procs["ingress"].pid, seconds, 10**9)
    finally:
        group.stop()
    port = free_port()
    bare_proc = world.start_helper("bare", "bench.bare", "--port", str(port))
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        bare = _measure(world, f"http://127.0.0.1:{port}", bare_proc.pid, seconds, 3 * 10**9)
    finally:
        world.stop_helper(bare_proc)
    return IngressPhase(project, bare)
