"""The lifecycle service with fakes: apply, announce once, converge, tick on a fake clock."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from agents_bridge.provision.billing_store import Outcome
from agents_bridge.provision.gateway_config import PlanLimits
from agents_bridge.provision.lifecycle import Decision, Fact, Status
from agents_bridge.provision.provisioner import TenantSpec
from agents_bridge.provision.worker import LifecycleService
from common.consumer import Event
from common.errors import InvalidEvent
from common.settings import Settings
from common.topics import Topic
from devstack.probes import eventually
from ingress.stripe_payload import lifecycle_record
from schemas import codec
from tests.fakes import DateClock, FakeProducer
from tests.stripe_events import T0, checkout_completed, invoice

TENANT = "5b1f7f8e-2f0a-4c1e-9a51-0d8f6f3b2c11"


def _spec(status: Status, plan: str = "business") -> TenantSpec:
    return TenantSpec(
        tenant_id=TENANT,
        agent_id="t-5b1f7f8e2f0a4c1e",
        status=status,
        plan_id=plan,
        mode="dedicated",
        limits=PlanLimits(1536, 1.0),
        display_name="Acme",
    )


class FakeStore:
    def __init__(self) -> None:
        self.applied: list[tuple[str, Fact, datetime]] = []
        self.next: list[Outcome] = []
        self.due_ids: list[str] = []
        self.current: TenantSpec | None = None

    def apply(self, tenant_id: str, fact: Fact, now: datetime) -> Outcome:
        self.applied.append((tenant_id, fact, now))
        return self._decided(self.next.pop(0))

    def recheck(self, tenant_id: str, now: datetime) -> Outcome:
        return self._decided(self.next.pop(0))

    def spec(self, tenant_id: str, now: datetime) -> TenantSpec | None:
        return self.current

    def _decided(self, outcome: Outcome) -> Outcome:
        self.current = outcome.spec  # what the store holds from now on
        return outcome

    def due(self, now: datetime) -> list[str]:
        return list(self.due_ids)


class FakeProvisioner:
    def __init__(self) -> None:
        self.specs: list[TenantSpec] = []
        self.fail = False

    def reconcile(self, spec: TenantSpec) -> str:
        if self.fail:
            raise RuntimeError("engine away")
        self.specs.append(spec)
        return "serving"


def _event(record: dict[str, object]) -> Event:
    raw = codec.encode(Topic.LIFECYCLE.schema, record)
    return Event(Topic.LIFECYCLE, 0, 0, TENANT.encode(), raw, codec.decode(raw))


def _outcome(before: Status | None, status: Status, *, duplicate: bool = False) -> Outcome:
    return Outcome(TENANT, before, Decision(status, "test"), "business", _spec(status), duplicate)


@pytest.fixture
def parts() -> tuple[LifecycleService, FakeStore, FakeProvisioner, FakeProducer, list[datetime]]:
    store, prov, producer = FakeStore(), FakeProvisioner(), FakeProducer()
    now = [datetime.fromtimestamp(T0, UTC)]
    service = LifecycleService(
        Settings.from_env({}),
        store=store,
        provisioner=prov,
        producer=producer,
        clock=DateClock(lambda: now[0]),
    )
    return service, store, prov, producer, now


async def test_a_checkout_is_applied_announced_once_and_provisioned(
    parts: tuple[LifecycleService, FakeStore, FakeProvisioner, FakeProducer, list[datetime]],
) -> None:
    service, store, prov, producer, now = parts
    record = lifecycle_record(checkout_completed("cus_1"))
    assert record is not None
    store.next = [_outcome(None, "active"), _outcome("active", "active", duplicate=True)]
    await service.handle(_event(record))
    await service.handle(_event(record))  # redelivered: converge again, announce nothing
    assert [a[2] for a in store.applied] == [now[0], now[0]]
    assert [s.status for s in prov.specs] == ["active", "active"]
    [sent] = producer.sent
    decision = sent.decoded()
    assert (decision["kind"], decision["billing_event"], decision["subscription_status"]) == (
        "created",
        "decision",
        "active",
    )
    # our own announcement, consumed back, is not a fact
    await service.handle(_event(decision))
    assert len(store.applied) == 2


async def test_payment_failure_announces_the_owner_notice_with_the_deadline(
    parts: tuple[LifecycleService, FakeStore, FakeProvisioner, FakeProducer, list[datetime]],
) -> None:
    service, store, _prov, producer, now = parts
    record = lifecycle_record(invoice("cus_1", "in_1", paid=False))
    assert record is not None
    grace_until = int((now[0] + timedelta(days=7)).timestamp() * 1000)
    store.next = [
        Outcome(
            TENANT,
            "active",
            Decision("grace", "payment failed", T0 * 1000, grace_until, None, grace_until),
            "business",
            _spec("grace"),
        )
    ]
    await service.handle(_event(record))
    notice = producer.sent[0].decoded()
    assert notice["kind"] == "payment_failed"
    assert notice["owner_email"] == "owner@example.com"
    assert int(notice["period_end"].timestamp() * 1000) == grace_until


async def test_tick_rechecks_due_tenants_and_a_failing_engine_is_retried(
    parts: tuple[LifecycleService, FakeStore, FakeProvisioner, FakeProducer, list[datetime]],
) -> None:
    service, store, prov, producer, now = parts
    store.due_ids = [TENANT]
    store.next = [_outcome("grace", "suspended")]
    now[0] += timedelta(days=8)
    assert await service.tick() == 1
    assert prov.specs[-1].status == "suspended"
    assert producer.sent[-1].decoded()["kind"] == "suspended"
    prov.fail = True
    store.next = [_outcome("suspended", "deleted")]
    with pytest.raises(RuntimeError):  # the worker retries the event: nothing is acknowledged
        await service.tick()


async def test_a_record_that_is_not_a_fact_is_dead_lettered(
    parts: tuple[LifecycleService, FakeStore, FakeProvisioner, FakeProducer, list[datetime]],
) -> None:
    service, *_ = parts
    event = Event(Topic.LIFECYCLE, 0, 0, None, b"", {"billing_event": "invoice.paid"})
    with pytest.raises(InvalidEvent):
        await service.handle(event)


class SlowProvisioner(FakeProvisioner):
    """Blocks each reconcile until released; records how many ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.running = 0
        self.most = 0
        self._count = threading.Lock()

    def reconcile(self, spec: TenantSpec) -> str:
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        self.started.release()
        try:
            assert self.release.wait(10)
            return super().reconcile(spec)
        finally:
            with self._count:
                self.running -= 1


async def test_the_ticker_and_the_consumer_converge_one_at_a_time_to_the_newest_spec() -> None:
    """The payment failure (grace) is still being provisioned when the clock suspends the
    tenant: the two must not run at once, and the last one applies what the store holds."""
    store, prov, producer = FakeStore(), SlowProvisioner(), FakeProducer()
    now = datetime.fromtimestamp(T0, UTC)
    service = LifecycleService(
        Settings.from_env({}),
        store=store,
        provisioner=prov,
        producer=producer,
        clock=DateClock(lambda: now),
    )
    record = lifecycle_record(invoice("cus_1", "in_1", paid=False))
    assert record is not None
    store.next = [_outcome("active", "grace"), _outcome("grace", "suspended")]
    store.due_ids = [TENANT]
    consumer = asyncio.create_task(service.handle(_event(record)))
    assert await asyncio.to_thread(prov.started.acquire, True, 10)  # grace is provisioning
    ticker = asyncio.create_task(service.tick())  # and the clock moves on meanwhile

    async def rechecked() -> bool:
        return not store.next

    await eventually(rechecked, timeout=10, what="the ticker's recheck")
    # a second reconcile starting now would overlap the first: give it the chance
    overlapped = await asyncio.to_thread(prov.started.acquire, True, 0.5)
    prov.release.set()
    await asyncio.wait_for(asyncio.gather(consumer, ticker), 10)
    assert not overlapped and prov.most == 1
    assert [s.status for s in prov.specs][-1] == "suspended"


async def test_each_tick_rechecks_the_gateway_policies_first_and_survives_a_failure() -> None:
    store, prov, producer = FakeStore(), FakeProvisioner(), FakeProducer()
    rechecks: list[str] = []

    def recheck() -> None:
        rechecks.append("ran")
        if len(rechecks) == 1:
            raise RuntimeError("engine away")

    service = LifecycleService(
        Settings.from_env({}), store=store, provisioner=prov, producer=producer, recheck=recheck
    )
    store.due_ids = [TENANT]
    store.next = [_outcome("grace", "suspended"), _outcome("suspended", "suspended")]
    assert await service.tick() == 1  # a failed recheck does not stop the due tenants
    assert await service.tick() == 1
    assert rechecks == ["ran", "ran"]
    assert [s.status for s in prov.specs] == ["suspended", "suspended"]
