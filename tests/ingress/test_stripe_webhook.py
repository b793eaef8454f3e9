"""POST /webhooks/stripe: signatures (missing, wrong, stale), dedup, ack (translation:
test_stripe_payload.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from common.secrets import SecretBox
from common.settings import Secret, Settings
from common.topics import Topic
from ingress.app import create_app
from ingress.stripe_payload import tenant_id_for
from tests.fakes import FakeProducer
from tests.ingress.ingress_fakes import MAX_BODY, FakeDirectory
from tests.stripe_events import (
    WEBHOOK_SECRET,
    body_of,
    checkout_completed,
    event,
    invoice,
    sign,
    subscription,
)

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
URL = "/webhooks/stripe"


@pytest.fixture
async def stripe_client(
    aiohttp_client: AiohttpClient, producer: FakeProducer
) -> TestClient[Any, Any]:
    settings = Settings.from_env(
        {}, max_body_bytes=MAX_BODY * 4, stripe_webhook_secret=Secret(WEBHOOK_SECRET)
    )
    app = create_app(settings, producer=producer, directory=FakeDirectory([]))
    return await aiohttp_client(app)


async def _post(
    client: TestClient[Any, Any], body: bytes, signature: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    resp = await client.post(URL, data=body, headers=headers)
    return resp.status, await resp.json()


async def test_signed_checkout_is_produced_keyed_by_tenant(
    stripe_client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    evt = checkout_completed("cus_A1", plan="business", metadata={"persona": "terse"})
    body = body_of(evt)
    status, answer = await _post(stripe_client, body, sign(body))
    assert (status, answer) == (200, {"received": True})
    [sent] = producer.sent
    record = sent.decoded()
    assert sent.topic is Topic.LIFECYCLE
    assert sent.key == record["tenant_id"] == tenant_id_for("cus_A1")
    assert record["kind"] == "created"
    assert record["event_id"] == evt["id"]
    assert record["plan_id"] == "business"
    assert record["owner_email"] == "owner@example.com"
    assert record["stripe_subscription_id"] == "sub_cus_A1"
    assert json.loads(record["settings_json"]) == {
        "display_name": "Acme cus_A1",
        "persona": "terse",
    }
    assert int(record["occurred_at"].timestamp()) == evt["created"]


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        (None, "missing_signature"),
        ("t=1,v1=deadbeef", "bad_signature"),
        ("garbage", "bad_signature"),
    ],
)
async def test_missing_or_malformed_signature_is_400(
    stripe_client: TestClient[Any, Any],
    producer: FakeProducer,
    signature: str | None,
    code: str,
) -> None:
    status, answer = await _post(stripe_client, body_of(checkout_completed("cus_B")), signature)
    assert status == 400
    assert answer["error"]["code"] == code
    assert producer.attempts == 0


async def test_wrong_secret_and_tampered_body_are_400(
    stripe_client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    body = body_of(checkout_completed("cus_C"))
    status, answer = await _post(stripe_client, body, sign(body, secret="whsec_other"))
    assert (status, answer["error"]["code"]) == (400, "bad_signature")
    tampered = body.replace(b"business", b"enterprise")
    status, _ = await _post(stripe_client, tampered, sign(body))
    assert status == 400
    assert producer.attempts == 0


async def test_stale_signature_is_400_fresh_within_tolerance_is_200(
    stripe_client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    body = body_of(checkout_completed("cus_D"))
    now = int(time.time())
    status, answer = await _post(stripe_client, body, sign(body, timestamp=now - 301))
    assert (status, answer["error"]["code"]) == (400, "stale_signature")
    status, _ = await _post(stripe_client, body, sign(body, timestamp=now - 290))
    assert status == 200
    assert len(producer.sent) == 1


async def test_duplicate_event_is_acknowledged_once_produced(
    stripe_client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    body = body_of(invoice("cus_E", "in_1", paid=False))
    for _ in range(3):
        status, _ = await _post(stripe_client, body, sign(body))
        assert status == 200
    assert len(producer.sent) == 1


async def test_broker_down_is_503_and_a_retry_then_succeeds(
    stripe_client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    body = body_of(subscription("cus_F", plan="enterprise"))
    producer.down = True
    status, answer = await _post(stripe_client, body, sign(body))
    assert (status, answer["error"]["code"]) == (503, "kafka_unavailable")
    producer.down = False
    status, _ = await _post(stripe_client, body, sign(body))  # Stripe's redelivery
    assert status == 200
    assert len(producer.sent) == 1


async def test_unhandled_types_are_acknowledged_without_producing(
    stripe_client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    body = body_of(event("customer.created", {"id": "cus_G", "object": "customer"}, 1))
    status, answer = await _post(stripe_client, body, sign(body))
    assert (status, answer["ignored"]) == (200, "customer.created")
    assert producer.attempts == 0


async def test_without_a_configured_secret_nothing_is_accepted(
    aiohttp_client: AiohttpClient, producer: FakeProducer
) -> None:
    app = create_app(Settings.from_env({}), producer=producer, directory=FakeDirectory([]))
    client = await aiohttp_client(app)
    body = body_of(checkout_completed("cus_H"))
    status, answer = await _post(client, body, sign(body))
    assert (status, answer["error"]["code"]) == (503, "not_configured")
    assert producer.attempts == 0


async def test_a_bot_token_bought_with_the_checkout_travels_sealed(
    stripe_client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    token = "123456789:AAE-secret-bot-token-abcdefghijklmnop"
    body = body_of(checkout_completed("cus_S", telegram_bot_token=token))
    status, _ = await _post(stripe_client, body, sign(body))
    assert status == 200
    [sent] = producer.sent
    assert token.encode() not in sent.payload
    sealed = sent.decoded()["sealed_credentials"]
    opened = SecretBox(Settings.from_env({})).open(sealed).value
    assert json.loads(opened) == {"telegram_bot_token": token}
