"""The lifecycle state machine: statuses from facts and a clock the test controls; any order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agents_bridge.provision.lifecycle import (
    Fact,
    Facts,
    Policy,
    advance,
    announcement,
    decide,
    failing_since,
    merge,
)
from ingress.stripe_payload import lifecycle_record
from tests.stripe_events import DAY, T0, checkout_completed, invoice, subscription

POLICY = Policy(grace=timedelta(days=7), delete_after=timedelta(days=30))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: int = T0) -> None:
        self.now = datetime.fromtimestamp(start, UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def fact(evt: dict[str, Any]) -> Fact:
    record = lifecycle_record(evt)
    assert record is not None
    return Fact.from_record(record)


def fold(events: list[dict[str, Any]]) -> Facts:
    facts = Facts()
    for evt in events:
        facts = merge(facts, fact(evt))
    return facts


def test_checkout_makes_an_active_tenant_with_the_bought_plan() -> None:
    facts = fold([checkout_completed("cus_1", plan="business")])
    assert decide(facts, Clock()(), POLICY).status == "active"
    assert (facts.plan_id, facts.owner_email, facts.subscription_id) == (
        "business",
        "owner@example.com",
        "sub_cus_1",
    )


def test_subscription_before_checkout_waits_then_both_orders_agree() -> None:
    events = [
        checkout_completed("cus_2", plan="individual", created=T0),
        subscription("cus_2", plan="business", created=T0 + 60),
    ]
    early = fold(events[1:])
    assert decide(early, Clock()(), POLICY).status == "pending"
    assert fold(events) == fold(list(reversed(events)))
    assert fold(events).price_id == "price_business_monthly"  # the newer object wins


def test_an_older_plan_arriving_late_does_not_undo_an_upgrade() -> None:
    upgrade = subscription("cus_3", plan="enterprise", created=T0 + 100)
    stale = subscription("cus_3", plan="business", created=T0 + 50)
    facts = fold([checkout_completed("cus_3"), upgrade, stale])
    assert facts.price_id == "price_enterprise_monthly"


def test_payment_failure_grace_then_suspension_then_deletion_on_the_clock() -> None:
    clock = Clock(T0 + 10)
    facts = fold([checkout_completed("cus_4"), invoice("cus_4", "in_1", paid=False, created=T0)])
    d = decide(facts, clock(), POLICY)
    assert (d.status, d.next_check_ms) == ("grace", (T0 + 7 * DAY) * 1000)
    clock.advance(days=7)
    d = decide(facts, clock(), POLICY)
    assert (d.status, d.next_check_ms) == ("suspended", (T0 + 30 * DAY) * 1000)
    clock.advance(days=23)
    facts, d = advance(facts, clock(), POLICY)
    assert d.status == "deleted"
    # final: a late payment cannot bring a deleted tenant back
    facts = merge(facts, fact(invoice("cus_4", "in_1", paid=True, created=T0 + DAY)))
    assert decide(facts, clock(), POLICY).status == "deleted"


def test_paying_during_grace_or_suspension_restores() -> None:
    clock = Clock(T0 + 8 * DAY)
    base = [checkout_completed("cus_5"), invoice("cus_5", "in_1", paid=False, created=T0)]
    assert decide(fold(base), clock(), POLICY).status == "suspended"
    paid = fold([*base, invoice("cus_5", "in_1", paid=True, created=T0 + 8 * DAY)])
    assert decide(paid, clock(), POLICY).status == "active"
    # the paid event may come first: same result
    paid_first = fold([invoice("cus_5", "in_1", paid=True, created=T0 + 8 * DAY), *base])
    assert decide(paid_first, clock(), POLICY).status == "active"


def test_a_later_paid_invoice_clears_an_older_failure_but_not_a_newer_one() -> None:
    facts = fold(
        [
            checkout_completed("cus_6"),
            invoice("cus_6", "in_old", paid=False, created=T0),
            invoice("cus_6", "in_new", paid=True, created=T0 + DAY),
        ]
    )
    assert failing_since(facts) is None
    facts = merge(facts, fact(invoice("cus_6", "in_next", paid=False, created=T0 + 31 * DAY)))
    assert failing_since(facts) == (T0 + 31 * DAY) * 1000


def test_deletion_and_canceled_status_deprovision() -> None:
    clock = Clock()
    gone = fold([checkout_completed("cus_7"), subscription("cus_7", deleted=True, created=T0 + 5)])
    assert decide(gone, clock(), POLICY).status == "deleted"
    canceled = fold([checkout_completed("cus_8"), subscription("cus_8", status="canceled")])
    assert decide(canceled, clock(), POLICY).status == "deleted"
    # an update arriving after the deletion does not revive it
    late = merge(gone, fact(subscription("cus_7", plan="enterprise", created=T0 + 1)))
    assert decide(late, clock(), POLICY).status == "deleted"


def test_repeats_are_idempotent_and_json_round_trips() -> None:
    events = [
        checkout_completed("cus_9", metadata={"persona": "kind"}),
        subscription("cus_9", plan="enterprise", created=T0 + 3),
        invoice("cus_9", "in_1", paid=False, created=T0 + 4),
    ]
    once = fold(events)
    assert fold(events + events) == once
    assert Facts.from_json(once.to_json()) == once
    assert once.settings["persona"] == "kind"


def test_announcements() -> None:
    assert announcement(None, "active", False) == "created"
    assert announcement("active", "active", True) == "plan_changed"
    assert announcement("active", "active", False) is None
    assert announcement("active", "grace", False) == "payment_failed"
    assert announcement("grace", "suspended", False) == "suspended"
    assert announcement("suspended", "active", False) == "reactivated"
    assert announcement("suspended", "deleted", False) == "deleted"


_STORY = [
    checkout_completed("cus_p", plan="individual", created=T0),
    subscription("cus_p", plan="individual", created=T0 + 1),
    subscription("cus_p", plan="business", created=T0 + 2 * DAY),
    invoice("cus_p", "in_a", paid=False, created=T0 + 30 * DAY),
    invoice("cus_p", "in_a", paid=True, created=T0 + 32 * DAY),
    invoice("cus_p", "in_b", paid=False, created=T0 + 60 * DAY),
]


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(len(_STORY))), dupes=st.lists(st.integers(0, 5), max_size=4))
def test_any_order_with_duplicates_converges(order: list[int], dupes: list[int]) -> None:
    events = [_STORY[i] for i in order] + [_STORY[i] for i in dupes]
    facts = fold(events)
    assert facts == fold(_STORY)
    clock = Clock(T0 + 61 * DAY)
    d = decide(facts, clock(), POLICY)
    assert (d.status, facts.price_id) == ("grace", "price_business_monthly")


def test_every_pair_order_of_failure_and_payment_agrees() -> None:
    events = [
        checkout_completed("cus_q"),
        invoice("cus_q", "in_1", paid=False, created=T0 + DAY),
        invoice("cus_q", "in_1", paid=True, created=T0 + 2 * DAY),
    ]
    results = [fold(list(p)) for p in itertools.permutations(events)]
    assert all(r == results[0] for r in results)
