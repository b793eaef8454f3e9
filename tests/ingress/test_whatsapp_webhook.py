"""GET/POST /webhooks/whatsapp: handshake, signature first, routing, dedup, ack after Kafka."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from common.directory import Binding, Tenant
from common.settings import Secret, Settings
from common.topics import Topic
from devstack import whatsapp_payloads as wa
from ingress.app import create_app
from tests.fakes import FakeProducer
from tests.ingress.ingress_fakes import Metric
from tests.tenants import a_tenant

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
PATH = "/webhooks/whatsapp"
USER = "16505551234"
TENANT_A, PNID_A, SECRET_A, VERIFY_A = "0b7c2f5e-8a51-4a8e-9d0e-3f1c2b4a5d6e", "1001", "sa", "va"
TENANT_B, PNID_B, SECRET_B, VERIFY_B = "5d2e9a10-1f3b-4c6d-8e7f-9a0b1c2d3e4f", "2002", "sb", "vb"


def number(tenant_id: str, pnid: str, secret: str, verify: str) -> Binding:
    return Binding(
        tenant_id=tenant_id,
        channel="whatsapp",
        external_id=pnid,
        secret_hash=hashlib.sha256(verify.encode()).digest(),
        credentials={
            "access_token": Secret("tok"),
            "app_secret": Secret(secret),
            "verify_token": Secret(verify),
        },
        settings={},
    )


def tenant(tenant_id: str, binding: Binding, status: str = "active") -> Tenant:
    return a_tenant(
        tenant_id,
        agent_id=f"agent-{tenant_id[:4]}",
        status=status,
        upgrade_to=None,
        gateway_url=None,
        gateway_token=Secret(""),
        gateway_agent_id=None,
        bindings=(binding,),
    )


class WaDirectory:
    """The lookups of `common.directory.Directory` the WhatsApp routes use."""

    def __init__(self, tenants: list[Tenant], *, loaded: bool = True) -> None:
        self._tenants = tenants
        self.loaded = asyncio.Event()
        if loaded:
            self.loaded.set()

    def by_telegram_bot(self, bot_id: str) -> Tenant | None:
        return None

    def by_binding(self, channel: str, external_id: str) -> tuple[Tenant, Binding] | None:
        for t in self._tenants:
            for b in t.bindings:
                if (b.channel, b.external_id) == (channel, external_id):
                    return t, b
        return None

    def tenants(self) -> list[Tenant]:
        return list(self._tenants)


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def directory() -> WaDirectory:
    return WaDirectory(
        [
            tenant(TENANT_A, number(TENANT_A, PNID_A, SECRET_A, VERIFY_A)),
            tenant(TENANT_B, number(TENANT_B, PNID_B, SECRET_B, VERIFY_B), "suspended"),
        ]
    )


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, producer: FakeProducer, directory: WaDirectory
) -> TestClient[Any, Any]:
    settings = Settings.from_env({}, max_body_bytes=4096, whatsapp_max_body_bytes=64 * 1024)
    return await aiohttp_client(create_app(settings, producer=producer, directory=directory))


async def post(
    client: TestClient[Any, Any],
    payload: dict[str, Any],
    secret: str | None = SECRET_A,
    *,
    signature: str | None = None,
) -> tuple[int, dict[str, Any]]:
    raw = wa.encode(payload)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[wa.SIGNATURE_HEADER] = signature
    elif secret is not None:
        headers[wa.SIGNATURE_HEADER] = wa.sign(raw, secret)
    resp = await client.post(PATH, data=raw, headers=headers)
    return resp.status, await resp.json()


# -- the GET handshake ------------------------------------------------------------------


async def test_handshake_echoes_the_challenge(client: TestClient[Any, Any]) -> None:
    params = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "vb"}
    resp = await client.get(PATH, params=params)
    assert resp.status == 200
    assert await resp.text() == "1158201444"
    assert resp.content_type == "text/plain"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "va"},
        {"hub.mode": "subscribe", "hub.verify_token": "va"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
    ],
)
async def test_handshake_refusals(client: TestClient[Any, Any], params: dict[str, str]) -> None:
    resp = await client.get(PATH, params=params)
    assert resp.status == 403
    body = await resp.json()
    assert body["error"]["code"] in {"bad_verification", "bad_verify_token"}


# -- POST ---------------------------------------------------------------------------------


async def test_text_message_is_produced_then_acknowledged(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    accepted = Metric("ingress_requests_total", channel="whatsapp", outcome="accepted")
    status, body = await post(client, wa.text_message(PNID_A, USER, "hello", wamid="wamid.1"))
    assert status == 200, body
    [sent] = producer.sent
    assert sent.topic == Topic.INBOUND
    assert sent.key == TENANT_A
    record = sent.decoded()
    assert record["event_id"] == f"whatsapp:{PNID_A}:wamid.1"
    assert record["text"] == "hello"
    assert record["reply_route"] == {"phone_number_id": PNID_A, "to": USER, "message_id": "wamid.1"}
    assert accepted.delta == 1


async def test_redelivery_is_acknowledged_without_producing(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    payload = wa.text_message(PNID_A, USER, "hello", wamid="wamid.dup")
    dupes = Metric("ingress_duplicates_total", channel="whatsapp")
    assert (await post(client, payload))[0] == 200
    status, body = await post(client, payload)
    assert status == 200 and body["duplicates"] == 1
    assert len(producer.sent) == 1
    assert dupes.delta == 1


@pytest.mark.parametrize(
    ("secret", "signature"),
    [
        (None, None),  # no header
        (SECRET_B, None),  # another tenant's app secret
        (None, "sha256=" + "0" * 64),
        (None, "sha1=abc"),
    ],
)
async def test_bad_signature_is_refused_and_nothing_produced(
    client: TestClient[Any, Any], producer: FakeProducer, secret: str | None, signature: str | None
) -> None:
    refused = Metric("ingress_rejections_total", channel="whatsapp", reason="bad_signature")
    status, body = await post(
        client, wa.text_message(PNID_A, USER, "x"), secret, signature=signature
    )
    assert status == 401
    assert body["error"]["code"] == "bad_signature"
    assert producer.attempts == 0
    assert refused.delta == 1


async def test_a_body_mixing_two_tenants_numbers_is_refused(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    """Signed with tenant A's secret, it also names tenant B's number: no one is served."""
    payload = wa.text_message(PNID_A, USER, "mine")
    payload["entry"].extend(wa.text_message(PNID_B, USER, "forged for B")["entry"])
    status, _ = await post(client, payload, SECRET_A)
    assert status == 401
    assert producer.attempts == 0


async def test_unknown_number_is_refused(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    refused = Metric("ingress_rejections_total", channel="whatsapp", reason="unknown_number")
    status, body = await post(client, wa.text_message("999", USER, "x"))
    assert status == 404
    assert body["error"]["code"] == "unknown_number"
    assert producer.attempts == 0
    assert refused.delta == 1


async def test_malformed_body_is_refused(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    raw = b'{"object": "whatsapp_business_account", "entry": 7}'
    resp = await client.post(PATH, data=raw, headers={wa.SIGNATURE_HEADER: wa.sign(raw, "x")})
    assert resp.status == 400
    assert producer.attempts == 0


async def test_body_over_the_whatsapp_limit_is_413(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    payload = wa.text_message(PNID_A, USER, "x" * 70_000)
    status, body = await post(client, payload)
    assert status == 413
    assert producer.attempts == 0


async def test_body_over_the_app_wide_limit_but_under_whatsapps_is_read(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    status, _ = await post(client, wa.text_message(PNID_A, USER, "y" * 10_000))
    assert status == 200
    assert len(producer.sent[0].decoded()["text"]) == 10_000


async def test_statuses_and_unsupported_messages(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    payload = wa.status_update(PNID_A, "wamid.out", "read", USER)
    payload["entry"].extend(wa.image_message(PNID_A, USER, wamid="wamid.img")["entry"])
    status, body = await post(client, payload)
    assert status == 200, body
    topics = [s.topic for s in producer.sent]
    assert topics == [Topic.CHANNEL_STATUSES, Topic.CHANNEL_STATUSES, Topic.OUTBOUND]
    read, received, notice = (s.decoded() for s in producer.sent)
    assert (read["message_id"], read["status"]) == ("wamid.out", "read")
    assert (received["message_id"], received["kind"]) == ("wamid.img", "image")
    assert notice["event_id"] == f"notice:whatsapp:{PNID_A}:wamid.img"
    assert "not supported yet" in notice["text"]


async def test_suspended_tenant_gets_no_notice(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    status, _ = await post(client, wa.image_message(PNID_B, USER), SECRET_B)
    assert status == 200
    assert [s.topic for s in producer.sent] == [Topic.CHANNEL_STATUSES]


async def test_kafka_down_is_503_and_the_retry_produces(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    payload = wa.text_message(PNID_A, USER, "hello", wamid="wamid.k")
    producer.down = True
    resp = await client.post(
        PATH,
        data=wa.encode(payload),
        headers={wa.SIGNATURE_HEADER: wa.sign(wa.encode(payload), SECRET_A)},
    )
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    producer.down = False
    assert (await post(client, payload))[0] == 200
    assert len(producer.sent) == 1


async def test_other_fields_are_acknowledged_without_acting(
    client: TestClient[Any, Any], producer: FakeProducer
) -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": []}]}
    status, answer = await post(client, body, signature="sha256=" + "a" * 64)
    assert status == 200 and answer["ignored"] == "no_messages_change"
    assert producer.attempts == 0


async def test_not_ready_until_the_directory_is_loaded(
    aiohttp_client: AiohttpClient, producer: FakeProducer
) -> None:
    app = create_app(Settings(), producer=producer, directory=WaDirectory([], loaded=False))
    client = await aiohttp_client(app)
    status, _ = await post(client, wa.text_message(PNID_A, USER, "x"))
    assert status == 503
