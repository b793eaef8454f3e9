"""Signatures and replays: what the per-route tests leave out.

`test_telegram_webhook.py`, `test_whatsapp_webhook.py` and `test_stripe_webhook.py` cover
missing, wrong, malformed and (Stripe) stale signatures and plain redeliveries. Here: a
secret that was *rotated away* no longer opens anything, a signature is bound to the exact
bytes it signed (a captured signature on other bytes, or on the same JSON re-serialised,
fails), the secret must arrive where the protocol puts it (not in the query string, not
in Meta's legacy SHA-1 header), and Stripe's scheme rules (v1 only, several v1 entries
during a secret roll, the configured tolerance) hold.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from common.settings import Secret, Settings
from devstack import whatsapp_payloads as wa
from ingress.app import create_app
from tests.fakes import FakeProducer
from tests.ingress.fuzz_fakes import A, AllChannelsDirectory, B, rotated, tenant_of, two_tenants
from tests.ingress.ingress_fakes import text_update
from tests.stripe_events import WEBHOOK_SECRET, body_of, invoice

Client = TestClient[Any, Any]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
TG_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WA_PATH = "/webhooks/whatsapp"


@pytest.fixture
def directory() -> AllChannelsDirectory:
    return two_tenants()


def _settings(tolerance_s: int = 300) -> Settings:
    return Settings.from_env(
        {},
        max_body_bytes=16 * 1024,
        stripe_webhook_secret=Secret(WEBHOOK_SECRET),
        stripe_tolerance_s=tolerance_s,
    )


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, producer: FakeProducer, directory: AllChannelsDirectory
) -> Client:
    return await aiohttp_client(create_app(_settings(), producer=producer, directory=directory))


# -- Telegram ----------------------------------------------------------------------------


async def _telegram(client: Client, update_id: int, secret: str | None, query: str = "") -> int:
    headers = {TG_HEADER: secret} if secret is not None else {}
    resp = await client.post(
        f"/webhooks/telegram/{A.bot_id}{query}", json=text_update(update_id), headers=headers
    )
    return resp.status


async def test_telegram_secret_rotated_away_no_longer_opens_the_bot(
    client: Client, producer: FakeProducer, directory: AllChannelsDirectory
) -> None:
    assert await _telegram(client, 1, A.bot_secret) == 200
    new = rotated(A, bot_secret="tg-secret-A-rotated-42")
    directory.swap([tenant_of(new), tenant_of(B)])  # `tenant set-webhook`, then a reload
    assert await _telegram(client, 2, A.bot_secret) == 401
    assert await _telegram(client, 3, new.bot_secret) == 200
    assert [s.decoded()["event_id"] for s in producer.sent] == [
        f"telegram:{A.bot_id}:1",
        f"telegram:{A.bot_id}:3",
    ]


async def test_telegram_secret_only_counts_in_its_header(
    client: Client, producer: FakeProducer
) -> None:
    query = f"?secret_token={A.bot_secret}&{TG_HEADER}={A.bot_secret}"
    assert await _telegram(client, 4, None, query) == 401
    assert await _telegram(client, 5, "", query) == 401
    assert producer.attempts == 0


# -- WhatsApp ----------------------------------------------------------------------------


async def _wa_post(client: Client, raw: bytes, headers: dict[str, str]) -> int:
    resp = await client.post(WA_PATH, data=raw, headers=headers)
    return resp.status


async def test_whatsapp_signature_is_bound_to_the_exact_bytes(
    client: Client, producer: FakeProducer
) -> None:
    payload = wa.text_message(A.pnid, "16505551234", "pay 10", wamid="wamid.R1")
    raw = wa.encode(payload)
    signature = {wa.SIGNATURE_HEADER: wa.sign(raw, A.app_secret)}
    forged = raw.replace(b"pay 10", b"pay 99")
    assert await _wa_post(client, forged, signature) == 401
    reserialised = json.dumps(payload, indent=1).encode()  # same JSON, other bytes
    assert await _wa_post(client, reserialised, signature) == 401
    assert await _wa_post(client, raw + b" ", signature) == 401
    assert producer.attempts == 0
    assert await _wa_post(client, raw, signature) == 200  # the control: the signed bytes
    assert len(producer.sent) == 1


async def test_whatsapp_app_secret_rotated_away_no_longer_signs(
    client: Client, producer: FakeProducer, directory: AllChannelsDirectory
) -> None:
    new = rotated(A, app_secret="app-secret-A-rotated")
    directory.swap([tenant_of(new), tenant_of(B)])  # `whatsapp bind` again rotates it
    raw = wa.encode(wa.text_message(A.pnid, "16505551234", "hi", wamid="wamid.R2"))
    assert await _wa_post(client, raw, {wa.SIGNATURE_HEADER: wa.sign(raw, A.app_secret)}) == 401
    assert producer.attempts == 0
    assert await _wa_post(client, raw, {wa.SIGNATURE_HEADER: wa.sign(raw, new.app_secret)}) == 200


async def test_whatsapp_legacy_sha1_header_alone_is_refused(
    client: Client, producer: FakeProducer
) -> None:
    raw = wa.encode(wa.text_message(A.pnid, "16505551234", "hi", wamid="wamid.R3"))
    sha1 = hmac.new(A.app_secret.encode(), raw, hashlib.sha1).hexdigest()
    assert await _wa_post(client, raw, {"X-Hub-Signature": f"sha1={sha1}"}) == 401
    assert producer.attempts == 0


# -- Stripe ------------------------------------------------------------------------------


def _stripe_header(body: bytes, t: int, *schemes: tuple[str, str]) -> str:
    parts = [f"t={t}"]
    for scheme, secret in schemes:
        mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        parts.append(f"{scheme}={mac}")
    return ",".join(parts)


async def _stripe(client: Client, body: bytes, signature: str) -> tuple[int, str]:
    resp = await client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": signature})
    answer = await resp.json()
    return resp.status, answer.get("error", {}).get("code", "ok")


async def test_stripe_only_v1_signatures_count(client: Client, producer: FakeProducer) -> None:
    body = body_of(invoice("cus_SIG1", "in_sig1", paid=False))
    now = int(time.time())
    assert await _stripe(client, body, _stripe_header(body, now, ("v0", WEBHOOK_SECRET))) == (
        400,
        "bad_signature",
    )
    assert await _stripe(client, body, f"t={now}") == (400, "bad_signature")
    assert await _stripe(
        client,
        body,
        _stripe_header(body, now, ("v1", WEBHOOK_SECRET)).replace(f"t={now}", "t=soon"),
    ) == (400, "bad_signature")
    assert producer.attempts == 0


async def test_stripe_secret_roll_any_matching_v1_passes(
    client: Client, producer: FakeProducer
) -> None:
    body = body_of(invoice("cus_SIG2", "in_sig2", paid=False))
    header = _stripe_header(
        body, int(time.time()), ("v1", "whsec_old_secret"), ("v1", WEBHOOK_SECRET)
    )
    assert await _stripe(client, body, header) == (200, "ok")
    assert len(producer.sent) == 1


async def test_stripe_tolerance_is_the_configured_one(
    aiohttp_client: AiohttpClient, producer: FakeProducer, directory: AllChannelsDirectory
) -> None:
    client = await aiohttp_client(
        create_app(_settings(tolerance_s=60), producer=producer, directory=directory)
    )
    body = body_of(invoice("cus_SIG3", "in_sig3", paid=False))
    now = int(time.time())
    old = _stripe_header(body, now - 90, ("v1", WEBHOOK_SECRET))
    assert await _stripe(client, body, old) == (400, "stale_signature")
    assert producer.attempts == 0
    fresh = _stripe_header(body, now - 30, ("v1", WEBHOOK_SECRET))
    assert await _stripe(client, body, fresh) == (200, "ok")
