"""One chaos run end to end: set up, load with faults, drain, check. `python -m chaos` and
`tests/chaos/test_chaos_short.py` both call `run()`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos import invariants
from chaos.faults import Injector
from chaos.invariants import Check
from chaos.load import Load
from chaos.plan import WORKERS, Plan, timetable, windows
from chaos.world import ChaosWorld, FarEnd
from common.settings import Settings
from common.topics import Topic
from control.processes import ServiceGroup
from devstack import Stack
from devstack._proc import port_open
from devstack.probes import eventually, group_lag

PRIME = 3  # one message per channel first: the pipeline is up when they are answered
PROGRESS_EVERY_S = 10.0
# Consumer groups that must have nothing left when the pipeline has drained.
GROUPS = (
    ("streams", (Topic.INBOUND, Topic.SESSION_EVENTS, Topic.USAGE)),
    ("agents_bridge.forwarder", (Topic.ADMITTED,)),
    ("agents_bridge.delivery", (Topic.OUTBOUND,)),
)


@dataclass
class Report:
    plan: Plan
    checks: list[Check] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)  # messages that broke (1)
    timings: dict[str, float] = field(default_factory=dict)
    tenants: dict[str, str] = field(default_factory=dict)  # hung / failing gateway
    logs: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seed": self.plan.seed,
            "plan": self.plan.to_json(),
            "invariants": [c.to_json() for c in self.checks],
            "faults": self.faults,
            "unexpected_exits": self.crashes,
            "broken_messages": self.problems[:200],
            "broken_messages_total": len(self.problems),
            "timings_s": self.timings,
            "special_tenants": self.tenants,
            "logs": self.logs,
            "load_average": list(os.getloadavg()),
        }


async def run(stack: Stack, plan: Plan, state_dir: Path, say: Callable[[str], None]) -> Report:
    report = Report(plan)
    clock = time.monotonic()
    rng = random.Random(plan.seed)
    far = FarEnd()
    await far.start()
    world = ChaosWorld(stack, state_dir, far, plan.gateway_timeout_s)
    group: ServiceGroup | None = None
    try:
        settings = await asyncio.to_thread(world.configure, plan.gateway_attempts, plan.log_level)
        say(f"creating {plan.tenants} tenants (Telegram bot, WhatsApp number, email each)")
        tenants = await world.create_tenants(plan.tenants)
        hung, failing = (tenants[i].gateway for i in rng.sample(range(len(tenants)), 2))
        report.tenants = {"hung": hung, "failing": failing}
        faults = timetable(plan, rng, hung, failing)
        say(f"starting {', '.join(WORKERS)} (logs in {state_dir / 'logs'})")
        group = await asyncio.to_thread(world.start_services, WORKERS)
        report.logs = str(group.log_dir)
        await _smtp_ready(group, settings)
        report.timings["setup"] = round(time.monotonic() - clock, 1)
        injector = Injector(stack, group, far.gateways, say)
        url = f"http://127.0.0.1:{settings.ingress_port}"
        give_up = plan.duration_s + plan.drain_timeout_s
        async with Load(tenants, url, settings.smtp_port, give_up_after_s=give_up) as load:
            await _prime(load, far, group)
            say(f"offering {plan.messages} messages at {plan.rate:g}/s, {len(faults)} faults")
            started_wall, started = time.time(), time.monotonic()
            stop = asyncio.Event()
            watch = asyncio.create_task(injector.supervise(stop))
            ticker = asyncio.create_task(_progress(load, far, plan, say))
            try:
                await asyncio.gather(
                    load.run(PRIME, plan.messages - PRIME, plan.rate, lambda _n: None),
                    injector.run(faults, started),
                )
                report.timings["load"] = round(time.monotonic() - started, 1)
                say("load offered; waiting for every message to be acknowledged")
                await asyncio.wait_for(load.settled(), plan.drain_timeout_s)
                drained = time.monotonic()
                say("waiting for the pipeline to drain")
                await _drain(load, far, settings, plan, say)
                report.timings["drain"] = round(time.monotonic() - drained, 1)
            finally:
                stop.set()
                ticker.cancel()
                await asyncio.gather(watch, ticker, return_exceptions=True)
            report.faults = [h.to_json() for h in injector.log]
            report.crashes = injector.crashes
            say("reading the topics and PostgreSQL back")
            ids = [t.tenant_id for t in tenants]
            ev = await asyncio.to_thread(invariants.gather, settings, ids)
            replies = invariants.replies_by_seq(far.replies())
            first, report.problems = invariants.delivered_once(load.offers, ev, replies)
            kafka = injector.outages("kafka")
            report.checks = [
                first,
                invariants.billed_once(ev, ids),
                invariants.refused_while_down(load.offers, ev, kafka, plan.restart_kafka),
                invariants.latency_under_hang(
                    load.offers,
                    replies,
                    windows(plan),
                    started_wall,
                    {hung, failing},
                    plan,
                    injector.log,
                ),  # fmt: skip
            ]
    finally:
        if group is not None:
            await asyncio.to_thread(group.stop)
        await far.stop()
        world.bench.close()
    report.timings["total"] = round(time.monotonic() - clock, 1)
    return report


async def _smtp_ready(group: ServiceGroup, settings: Settings) -> None:
    async def listening() -> bool:
        group.check_alive()
        return port_open(settings.smtp_port)

    await eventually(listening, timeout=120, what="the SMTP server to listen")


async def _prime(load: Load, far: FarEnd, group: ServiceGroup) -> None:
    """One message per channel, answered: every stage is up before the clock starts."""
    for seq in range(PRIME):
        load.send(load.offer(seq))

    async def answered() -> bool:
        group.check_alive()
        got = invariants.replies_by_seq(far.replies())
        return all(seq in got for seq in range(PRIME))

    await eventually(answered, timeout=240, what="the first reply on every channel")


async def _progress(load: Load, far: FarEnd, plan: Plan, say: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)  # a progress line's period
        offered = len(load.offers)
        acked = sum(1 for o in load.offers if o.acked is not None)
        refused = sum(1 for o in load.offers for a in o.attempts if a.outcome != "ack")
        say(
            f"offered {offered}/{plan.messages}, acknowledged {acked}, refusals {refused},"
            f" replies {len(far.replies())}"
        )


async def _drain(
    load: Load, far: FarEnd, settings: Settings, plan: Plan, say: Callable[[str], None]
) -> None:
    """Until every ack has a reply or a dead letter, and no consumer group has lag."""
    acked = {o.seq for o in load.offers if o.acked is not None}
    dead: set[int] = set()
    checked = 0.0

    async def resolved() -> bool:
        nonlocal dead, checked
        open_ = acked - set(invariants.replies_by_seq(far.replies())) - dead
        if open_ and time.monotonic() - checked > 5:  # reading the DLQs costs a second
            checked = time.monotonic()
            dead = set((await asyncio.to_thread(invariants.dead_letters, settings))[0])
            open_ -= dead
            say(f"  {len(open_)} acknowledged messages without a reply or dead letter yet")
        return not open_

    async def no_lag() -> bool:
        lags = await asyncio.to_thread(_lags, settings)
        return all(lag == 0 for lag in lags)

    with contextlib.suppress(AssertionError):  # the checks then say what is missing
        await eventually(resolved, timeout=plan.drain_timeout_s, what="every reply")
    with contextlib.suppress(AssertionError):
        await eventually(no_lag, timeout=120, what="every consumer group to catch up")


def _lags(settings: Settings) -> list[int]:
    return [
        group_lag(settings, settings.group(name), topic)
        for name, topics in GROUPS
        for topic in topics
    ]
