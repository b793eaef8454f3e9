"""stripe_payload.py: verified Stripe event → TenantLifecycle record, or why not."""

from __future__ import annotations

import json

import pytest

from ingress.stripe_payload import HANDLED_TYPES, Unusable, id_of, lifecycle_record, tenant_id_for
from schemas import codec
from tests.stripe_events import T0, checkout_completed, event, invoice, subscription


def test_translation_of_each_handled_type() -> None:
    sub = lifecycle_record(subscription("cus_T", plan="enterprise", status="past_due"))
    assert sub is not None
    assert (sub["kind"], sub["stripe_price_id"], sub["subscription_status"]) == (
        "plan_changed",
        "price_enterprise_monthly",
        "past_due",
    )
    assert sub["period_end"] - sub["period_start"] == 30 * 24 * 3600 * 1000
    gone = lifecycle_record(subscription("cus_T", deleted=True))
    assert gone is not None and gone["kind"] == "deleted"
    failed = lifecycle_record(invoice("cus_T", "in_9", paid=False))
    assert failed is not None
    assert (failed["kind"], failed["stripe_object_id"], failed["stripe_subscription_id"]) == (
        "payment_failed",
        "in_9",
        "sub_cus_T",
    )
    paid = lifecycle_record(invoice("cus_T", "in_9", paid=True))
    assert paid is not None and paid["kind"] == "reactivated"
    unpaid_checkout = checkout_completed("cus_T")
    unpaid_checkout["data"]["object"]["status"] = "open"
    assert lifecycle_record(unpaid_checkout) is None
    # every customer maps to one stable tenant
    assert tenant_id_for("cus_T") == sub["tenant_id"] == failed["tenant_id"]
    assert tenant_id_for("cus_T") != tenant_id_for("cus_U")


def test_a_checkout_becomes_a_created_record_the_schema_accepts() -> None:
    evt = checkout_completed("cus_C", email=" Owner@Example.COM ", metadata={"persona": "terse"})
    record = lifecycle_record(evt)
    assert record is not None
    assert (record["kind"], record["plan_id"], record["owner_email"]) == (
        "created",
        "business",
        "owner@example.com",
    )
    assert record["occurred_at"] == T0 * 1000
    assert json.loads(record["settings_json"]) == {"display_name": "Acme cus_C", "persona": "terse"}
    decoded = codec.decode(codec.encode("tenant_lifecycle", record))
    assert decoded["event_id"] == evt["id"] and decoded["tenant_id"] == tenant_id_for("cus_C")


def test_checkout_credentials_travel_only_sealed() -> None:
    evt = checkout_completed("cus_S", telegram_bot_token=" 123:secret ")
    unsealed = lifecycle_record(evt)
    assert unsealed is not None and unsealed["sealed_credentials"] is None
    sealed = lifecycle_record(evt, seal=lambda text: b"sealed:" + text.encode())
    assert sealed is not None
    assert sealed["sealed_credentials"] == b'sealed:{"telegram_bot_token": "123:secret"}'


def test_unhandled_types_translate_to_nothing() -> None:
    assert "charge.refunded" not in HANDLED_TYPES
    assert lifecycle_record(event("charge.refunded", {"customer": "cus_X"}, T0)) is None


@pytest.mark.parametrize(
    ("obj", "created", "reason"),
    [
        ({}, T0, "no data.object"),
        ({"id": "in_1"}, T0, "no customer"),
        ({"id": "in_1", "customer": "cus with spaces"}, T0, "no customer"),
        ({"id": "in_1", "customer": "cus_X"}, None, "no usable created"),
    ],
)
def test_a_handled_event_without_what_it_needs_is_unusable(
    obj: dict[str, object], created: int | None, reason: str
) -> None:
    evt = event("invoice.paid", obj, T0)
    evt["created"] = created
    with pytest.raises(Unusable, match=reason):
        lifecycle_record(evt)


def test_ids_may_be_expanded_objects_and_must_be_short_ascii() -> None:
    assert id_of("cus_A1") == "cus_A1"
    assert id_of({"id": "sub_A1", "object": "subscription"}) == "sub_A1"
    assert id_of("x" * 256) is None
    assert id_of("cus_é") is None
    assert id_of(7) is None
