"""What a chaos run does and when: the sizes, the faults and their seeded timetable.

The load runs for `messages / rate` seconds (T). The timetable, in fractions of T:

    0.00-0.10  warm-up, no fault
    0.10-0.25  p99 baseline window (no fault)
    0.25-0.40  one tenant's gateway hangs (the p99 comparison window; no other fault)
    0.42-0.57  another tenant's gateway answers 500
    0.42-0.92  every worker kind SIGKILLed `kills_per_kind` times at random moments and
               restarted; the Kafka broker stopped once (in 0.45-0.60) and PostgreSQL once
               (in 0.70-0.80), each for a while, then started again

All random choices come from one `random.Random(seed)`, so a seed replays the same plan.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

#: The worker kinds, as `control.processes.ServiceGroup` names them: both ingresses, the
#: streams worker (metering and session-sync), the bridge (forwarder) and the senders.
WORKERS = ("ingress", "smtp", "streams", "forwarder", "delivery")
CHANNELS = ("telegram", "whatsapp", "email")

FaultKind = Literal["kill", "kafka", "postgres", "hang", "fail"]


@dataclass(frozen=True)
class Plan:
    messages: int = 20_000
    tenants: int = 200
    rate: float = 25.0  # messages offered per second (open loop), below saturation
    seed: int = 0
    kills_per_kind: int = 2
    restart_kafka: bool = True
    restart_postgres: bool = True
    kafka_down_s: float = 40.0  # longer than SMTP's 30 s broker wait, so mail sees 451
    postgres_down_s: float = 15.0
    gateway_faults: bool = True  # one tenant hangs, another answers 500
    gateway_timeout_s: float = 5.0
    gateway_attempts: int = 2
    p99_tolerance: float = 0.20
    p99_min_samples: int = 100  # fewer in a window: the p99 is not judged (reported)
    drain_timeout_s: float = 900.0
    log_level: str = "WARNING"  # of the services (INFO: a line or more per message)

    @property
    def duration_s(self) -> float:
        return self.messages / self.rate

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the load started
    kind: FaultKind
    target: str  # worker name, "broker", "postgres" or a gateway name
    down_s: float  # how long the target stays down / in its mode

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Windows:
    """The p99 comparison windows (seconds after the load started)."""

    baseline: tuple[float, float]
    hang: tuple[float, float]


def windows(plan: Plan) -> Windows:
    t = plan.duration_s
    return Windows(baseline=(0.10 * t, 0.25 * t), hang=(0.25 * t, 0.40 * t))


def timetable(plan: Plan, rng: random.Random, hung: str, failing: str) -> list[Fault]:
    """Every fault of the run, in time order."""
    t = plan.duration_s
    faults: list[Fault] = []
    if plan.gateway_faults:
        w = windows(plan)
        faults.append(Fault(w.hang[0], "hang", hung, w.hang[1] - w.hang[0]))
        faults.append(Fault(0.42 * t, "fail", failing, 0.15 * t))
    for worker in WORKERS:
        for _ in range(plan.kills_per_kind):
            faults.append(Fault(rng.uniform(0.42, 0.92) * t, "kill", worker, rng.uniform(0.2, 3)))
    if plan.restart_kafka:
        faults.append(Fault(rng.uniform(0.45, 0.60) * t, "kafka", "broker", plan.kafka_down_s))
    if plan.restart_postgres:
        at = rng.uniform(0.70, 0.80) * t
        faults.append(Fault(at, "postgres", "postgres", plan.postgres_down_s))
    return sorted(faults, key=lambda f: f.at_s)
