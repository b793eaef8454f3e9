"""Carries out the timetable of `chaos.plan`: kills, server restarts, gateway modes.

Each fault runs in its own task at its time (a kill during a broker outage is allowed: it
is chaos). The log keeps what happened when, in wall-clock time, for the report and for
the outage window of invariant 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from chaos.gateways import Mode, StubGateways
from chaos.plan import Fault
from control.processes import ServiceGroup
from devstack import Stack


@dataclass(frozen=True)
class Happened:
    fault: Fault
    started: float  # wall clock: the target stopped / its mode changed
    down_from: float  # wall clock: the target is gone (stop returned)
    down_to: float  # wall clock: the target is being started again / back to ok
    ready: float  # wall clock: the target is back

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "fault": self.fault.to_json()}


class Injector:
    def __init__(
        self,
        stack: Stack,
        group: ServiceGroup,
        gateways: StubGateways,
        say: Callable[[str], None],
    ) -> None:
        self.stack = stack
        self.group = group
        self.gateways = gateways
        self.say = say
        self.log: list[Happened] = []
        self.crashes: list[dict[str, Any]] = []  # services that exited on their own
        self._locks: dict[str, asyncio.Lock] = {}
        self._servers_down: dict[str, bool] = {}

    def _lock(self, target: str) -> asyncio.Lock:
        return self._locks.setdefault(target, asyncio.Lock())

    async def run(self, faults: list[Fault], load_started: float) -> None:
        """Every fault at its time after `load_started` (time.monotonic())."""
        await asyncio.gather(*(self._at(f, load_started) for f in faults))

    async def supervise(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        """Like a process manager: restart a service that exited by itself, and note it."""
        while not stop.is_set():
            for name, proc in list(self.group.procs.items()):
                if proc.poll() is None or self._lock(name).locked():
                    continue
                async with self._lock(name):
                    tail = self.group.log_tail(name)
                    down = [k for k, t in self._servers_down.items() if t]
                    self.crashes.append(
                        {
                            "service": name,
                            "code": proc.returncode,
                            "at": time.time(),
                            "servers_down": down,  # a start-up without them may fail
                            "log": tail,
                        }
                    )
                    self.say(f"{name} exited by itself with {proc.returncode}; restarting it")
                    await asyncio.to_thread(self.group.start_one, name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def _at(self, fault: Fault, load_started: float) -> None:
        if (wait := load_started + fault.at_s - time.monotonic()) > 0:
            await asyncio.sleep(wait)  # the timetable's clock
        async with self._lock(fault.target):
            started = time.time()
            if fault.kind == "kill":
                down_from, down_to = await self._kill(fault)
            elif fault.kind in ("kafka", "postgres"):
                down_from, down_to = await self._server(fault)
            else:
                down_from, down_to = await self._gateway(fault)
            self.log.append(Happened(fault, started, down_from, down_to, time.time()))
        self.say(f"{fault.kind} {fault.target}: back after {time.time() - started:.1f}s")

    async def _kill(self, fault: Fault) -> tuple[float, float]:
        self.say(f"SIGKILL {fault.target}")
        proc = self.group.procs[fault.target]
        self.group.signal(fault.target, signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        down_from = time.time()
        await asyncio.sleep(fault.down_s)  # the timetable's down time
        down_to = time.time()
        await asyncio.to_thread(self.group.start_one, fault.target)
        return down_from, down_to

    async def _server(self, fault: Fault) -> tuple[float, float]:
        server = self.stack.kafka if fault.kind == "kafka" else self.stack.postgres
        assert server is not None
        self.say(f"stopping {fault.target} for {fault.down_s:.0f}s")
        self._servers_down[fault.target] = True
        await asyncio.to_thread(server.stop)
        down_from = time.time()
        await asyncio.sleep(fault.down_s)  # the timetable's down time
        down_to = time.time()
        await asyncio.to_thread(server.restart)
        self._servers_down[fault.target] = False
        return down_from, down_to

    async def _gateway(self, fault: Fault) -> tuple[float, float]:
        mode: Mode = "hang" if fault.kind == "hang" else "fail"
        self.say(f"gateway {fault.target}: {mode} for {fault.down_s:.0f}s")
        self.gateways.set_mode(fault.target, mode)
        down_from = time.time()
        await asyncio.sleep(fault.down_s)  # the timetable's fault duration
        down_to = time.time()
        self.gateways.set_mode(fault.target, "ok")
        return down_from, down_to

    def outages(self, kind: str) -> list[tuple[float, float]]:
        return [(h.down_from, h.down_to) for h in self.log if h.fault.kind == kind]
