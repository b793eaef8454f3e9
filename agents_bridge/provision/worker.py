"""The provisioner process: `LifecycleService` (the tenants.lifecycle handler and the clock
ticker), its consumer, and `run_provisioner`; the flow is told in `agents_bridge.provision`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import docker

from agents_bridge.provision.billing_store import BillingStore, Outcome
from agents_bridge.provision.channel_setup import TelegramWebhooks
from agents_bridge.provision.lifecycle import Fact, announcement, to_datetime
from agents_bridge.provision.provisioner import Provisioner, TenantSpec
from agents_bridge.provision.units_store import UnitStore
from common.consumer import Event, KafkaWorker
from common.errors import InvalidEvent
from common.kafka import EventProducer, EventSink
from common.records import value_of
from common.retry import Clock, SystemClock
from common.settings import Settings
from common.signals import on_stop_signals
from common.telemetry import (
    LIFECYCLE_DECISIONS,
    PROVISIONER_ACTIONS,
    serve_metrics,
    setup_logging,
)
from common.topics import Topic
from schemas.types import TenantLifecycle

log = logging.getLogger(__name__)
DECISION = "decision"


class Store(Protocol):
    """What the service needs of `BillingStore`."""

    def apply(self, tenant_id: str, fact: Fact, now: datetime) -> Outcome: ...

    def recheck(self, tenant_id: str, now: datetime) -> Outcome: ...

    def due(self, now: datetime) -> list[str]: ...

    def spec(self, tenant_id: str, now: datetime) -> TenantSpec | None: ...


class Reconciler(Protocol):
    """What the service needs of `Provisioner`."""

    def reconcile(self, spec: TenantSpec) -> str: ...


class Channels(Protocol):
    """Channel setup once the gateway serves (`TelegramWebhooks`)."""

    def ensure(self, tenant_id: str) -> int: ...

    def release(self, tenant_id: str) -> int: ...


class LifecycleService:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        provisioner: Reconciler,
        producer: EventSink,
        channels: Channels | None = None,
        clock: Clock | None = None,
        recheck: Callable[[], object] | None = None,
    ) -> None:
        self._settings = settings
        self._recheck = recheck
        self._channels = channels
        self._store = store
        self._provisioner = provisioner
        self._producer = producer
        self._clock = clock or SystemClock()
        self._converging: dict[str, asyncio.Lock] = {}

    async def handle(self, event: Event) -> None:
        """One tenants.lifecycle record (KafkaWorker handler)."""
        value = value_of(event, TenantLifecycle)
        if value.get("billing_event", "") in ("", DECISION):
            return  # our own announcements and operator notes: nothing to apply
        try:
            fact = Fact.from_record(value)
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidEvent(f"bad_fact: {err}") from err
        outcome = await asyncio.to_thread(
            self._store.apply, value["tenant_id"], fact, self._clock.now()
        )
        await self._follow(outcome, value.get("owner_email"))

    async def tick(self) -> int:
        """Re-decide every tenant the clock may have moved; returns how many."""
        if self._recheck is not None:
            try:
                await asyncio.to_thread(self._recheck)
            except Exception as err:  # the engine or PostgreSQL away: the next tick again
                log.warning("gateway policy recheck failed: %s", err)
        now = self._clock.now()
        due = await asyncio.to_thread(self._store.due, now)
        for tenant_id in due:
            outcome = await asyncio.to_thread(self._store.recheck, tenant_id, now)
            await self._follow(outcome, None)
        return len(due)

    async def run_ticker(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as err:  # PostgreSQL or the engine away: next tick retries
                log.warning("lifecycle tick failed: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._settings.lifecycle_tick_s)

    async def _follow(self, outcome: Outcome, owner_email: str | None) -> None:
        status = outcome.decision.status
        # a repeat changes nothing by itself; only the clock may have moved the status
        kind = announcement(outcome.before, status, outcome.plan_changed)
        if kind is not None:
            LIFECYCLE_DECISIONS.labels(status).inc()
            log.info("tenant %s: %s -> %s (%s)", outcome.tenant_id, outcome.before, status, kind)
            await self._announce(outcome, kind, owner_email)
        if outcome.spec is None:
            return
        # One convergence per tenant at a time, to what the store holds NOW: the ticker and
        # the event consumer may decide for the same tenant at once, and an older spec
        # applied last would undo a newer one (restart a suspended tenant's gateway).
        lock = self._converging.setdefault(outcome.tenant_id, asyncio.Lock())
        try:
            async with lock:
                await self._converge(outcome.tenant_id)
        finally:
            if not lock.locked() and self._converging.get(outcome.tenant_id) is lock:
                del self._converging[outcome.tenant_id]

    async def _converge(self, tenant_id: str) -> None:
        spec = await asyncio.to_thread(self._store.spec, tenant_id, self._clock.now())
        if spec is None:
            return
        try:
            result = await asyncio.to_thread(self._provisioner.reconcile, spec)
        except Exception:
            PROVISIONER_ACTIONS.labels("error").inc()
            raise
        PROVISIONER_ACTIONS.labels(result).inc()
        if self._channels is None:
            return
        if result == "serving":
            await asyncio.to_thread(self._channels.ensure, tenant_id)
        elif spec.status == "deleted":
            await asyncio.to_thread(self._channels.release, tenant_id)

    async def _announce(self, outcome: Outcome, kind: str, owner_email: str | None) -> None:
        d = outcome.decision
        now = self._clock.now()
        spec = outcome.spec
        record = {
            "event_id": f"decision:{outcome.tenant_id}:{d.status}:{int(now.timestamp() * 1000)}",
            "tenant_id": outcome.tenant_id,
            "kind": kind,
            "plan_id": spec.plan_id if spec else None,
            "period_start": to_datetime(d.failing_since_ms),
            "period_end": to_datetime(d.grace_until_ms if d.status == "grace" else d.delete_at_ms),
            "occurred_at": now,
            "billing_event": DECISION,
            "stripe_customer_id": None,
            "stripe_subscription_id": None,
            "stripe_object_id": None,
            "subscription_status": d.status,
            "stripe_price_id": None,
            "owner_email": owner_email,
            "display_name": spec.display_name if spec else None,
            "settings_json": None,
            "sealed_credentials": None,
        }
        await self._producer.send(Topic.LIFECYCLE, outcome.tenant_id, record)


def build_worker(settings: Settings, service: LifecycleService, producer: EventSink) -> KafkaWorker:
    return KafkaWorker(
        settings,
        stage="provisioner",
        group="provisioner",
        topics=[Topic.LIFECYCLE],
        handler=service.handle,
        producer=producer,
        lane_of=lambda e: str(e.value.get("tenant_id", e.partition)),
        max_in_flight=32,
    )


async def run_provisioner(settings: Settings, *, clock: Clock | None = None) -> None:
    """Run the lifecycle consumer and the clock ticker until SIGTERM/SIGINT."""
    setup_logging(settings.log_level)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    producer = EventProducer(settings)
    client = docker.DockerClient(base_url=settings.docker_host, timeout=120)
    provisioner = Provisioner(settings, client, UnitStore(settings))
    service = LifecycleService(
        settings,
        store=BillingStore(settings),
        provisioner=provisioner,
        producer=producer,
        channels=TelegramWebhooks(settings),
        clock=clock,
        recheck=provisioner.recheck,
    )
    worker = build_worker(settings, service, producer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        stop.set()
        worker.stop()

    ticker = asyncio.create_task(service.run_ticker(stop), name="lifecycle-ticker")
    try:
        with on_stop_signals(on_signal):
            await worker.run()
    finally:
        stop.set()
        await ticker
        client.close()
        await loop.run_in_executor(None, producer.close)
