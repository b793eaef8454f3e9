"""The smallest inputs the fuzz tests found that get a 500, one test each (regressions).

Each is an input a sender can really produce: the Stripe and WhatsApp ones are correctly
signed (so only Stripe/Meta, or someone holding the secret, can send them, and the sender
redelivers for days), the Content-Encoding one needs no secret at all on WhatsApp.
Each must be answered with a defined 2xx/4xx, never 500 "internal".
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from common.settings import Secret, Settings
from devstack import whatsapp_payloads as wa
from ingress.app import create_app
from schemas import codec
from tests.fakes import FakeProducer
from tests.fuzzing import check_http_answer
from tests.ingress.fuzz_fakes import A, two_tenants
from tests.stripe_events import (
    WEBHOOK_SECRET,
    body_of,
    checkout_completed,
    invoice,
    sign,
    subscription,
)

Client = TestClient[Any, Any]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, producer: FakeProducer) -> Client:
    settings = Settings.from_env(
        {}, max_body_bytes=16 * 1024, stripe_webhook_secret=Secret(WEBHOOK_SECRET)
    )
    return await aiohttp_client(create_app(settings, producer=producer, directory=two_tenants()))


async def _whatsapp(client: Client, value: dict[str, Any]) -> tuple[int, str]:
    raw = json.dumps(wa.envelope(A.pnid, value)).encode()  # lone surrogates as escapes
    resp = await client.post(
        "/webhooks/whatsapp", data=raw, headers={wa.SIGNATURE_HEADER: wa.sign(raw, A.app_secret)}
    )
    return resp.status, await resp.text()


async def test_whatsapp_timestamp_in_other_digits_is_not_a_500(client: Client) -> None:
    """`"²".isdigit()` is True but `int("²")` raises (whatsapp_payload._timestamp_ms)."""
    message = {"from": "16505551234", "id": "wamid.T1", "type": "image", "timestamp": "²"}
    status, text = await _whatsapp(client, {"messages": [message]})
    check_http_answer(status, text)


async def test_whatsapp_status_with_a_lone_surrogate_is_not_a_500(client: Client) -> None:
    """`recipient_id` is copied uncleaned into the record, which Avro cannot encode."""
    status_ = {"id": "wamid.S1", "status": "delivered", "recipient_id": "\ud800"}
    status, text = await _whatsapp(client, {"statuses": [status_]})
    check_http_answer(status, text)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhooks/telegram/" + A.bot_id, {"X-Telegram-Bot-Api-Secret-Token": A.bot_secret}),
        ("/webhooks/whatsapp", {wa.SIGNATURE_HEADER: "sha256=" + "0" * 64}),
        ("/webhooks/stripe", {"Stripe-Signature": "t=1,v1=00"}),
    ],
)
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400(
    client: Client, path: str, headers: dict[str, str], encoding: str
) -> None:
    """aiohttp raises RequestPayloadError from request.read(); the middleware made it a 500."""
    resp = await client.post(
        path, data=b'{"update_id": 1}', headers={**headers, "Content-Encoding": encoding}
    )
    text = await resp.text()
    check_http_answer(resp.status, text)
    assert resp.status == 400, text


async def test_a_real_gzip_body_is_read(client: Client, producer: FakeProducer) -> None:
    """The control case: a correctly compressed update is decoded and accepted."""
    from tests.ingress.ingress_fakes import text_update

    body = gzip.compress(wa.encode(text_update(77)))
    resp = await client.post(
        f"/webhooks/telegram/{A.bot_id}",
        data=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": A.bot_secret, "Content-Encoding": "gzip"},
    )
    assert resp.status == 200, await resp.text()
    assert len(producer.sent) == 1


async def test_stripe_period_beyond_the_avro_long_range_is_not_a_500(client: Client) -> None:
    """A signed subscription whose period end * 1000 overflows a long: CodecError → 500."""
    evt = subscription("cus_FUZZ1")
    evt["data"]["object"]["items"]["data"][0]["current_period_end"] = 2**64 - 1
    body = body_of(evt)
    resp = await client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)}
    )
    check_http_answer(resp.status, await resp.text())


async def test_stripe_customer_id_with_a_lone_surrogate_is_not_a_500(client: Client) -> None:
    """tenant_id_for() feeds the id to uuid5, which UTF-8-encodes it: UnicodeEncodeError."""
    body = json.dumps(subscription("cus_\ud800")).encode()  # the surrogate as an escape
    resp = await client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)}
    )
    check_http_answer(resp.status, await resp.text())


@pytest.mark.parametrize("kind", ["checkout", "invoice"])
async def test_stripe_customer_email_with_a_lone_surrogate_is_not_a_500(
    client: Client, producer: FakeProducer, kind: str
) -> None:
    """owner_email went to the Avro encoder uncleaned: UnicodeEncodeError → 500."""
    if kind == "checkout":
        evt = checkout_completed("cus_FUZZ3", email="\ud800@example.com")
    else:
        evt = invoice("cus_FUZZ3", "in_FUZZ3", paid=True)
        evt["data"]["object"]["customer_email"] = "\ud800"
    body = json.dumps(evt).encode()  # the surrogate as an escape
    resp = await client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)}
    )
    check_http_answer(resp.status, await resp.text())
    assert resp.status == 200
    for sent in producer.sent:
        codec.decode(sent.payload, expect="tenant_lifecycle")


async def test_stripe_event_from_after_year_9999_is_not_produced_undecodable(
    client: Client, producer: FakeProducer
) -> None:
    """`created` is trusted as is: occurred_at fits a long, but no consumer can decode it
    (timestamp-millis beyond datetime.max), so the lifecycle service dead-letters it."""
    evt = subscription("cus_FUZZ2")
    evt["created"] = 350_272_336_505  # year 13069
    body = body_of(evt)
    resp = await client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)}
    )
    check_http_answer(resp.status, await resp.text())
    for sent in producer.sent:
        codec.decode(sent.payload, expect="tenant_lifecycle")


async def test_whatsapp_status_from_after_year_9999_is_not_produced_undecodable(
    client: Client, producer: FakeProducer
) -> None:
    """`_timestamp_ms` takes up to 12 digits of seconds (year 33658): undecodable status."""
    status_ = {
        "id": "wamid.S2",
        "status": "read",
        "recipient_id": "16505551234",
        "timestamp": "999999999999",
    }
    status, text = await _whatsapp(client, {"statuses": [status_]})
    check_http_answer(status, text)
    for sent in producer.sent:
        codec.decode(sent.payload, expect="channel_status")
