"""Fuzz GET/POST /webhooks/whatsapp: hostile input gets a defined 4xx, never a 5xx or a crash.

The POST bodies are shaped like Meta's notifications with hostile values in every place
(wrong types, lone surrogates, huge numbers, digits of other scripts, deep nesting) and
most of them are *correctly signed*, so that they get past the signature check and reach
the normaliser and the Avro encoder: a signed body is the worst case, since Meta (or
whoever holds an app secret) redelivers it for 7 days if it is not acknowledged.
`make fuzz` runs 100,000 inputs per test (`tests/fuzzing.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from common.settings import Settings
from devstack import whatsapp_payloads as wa
from ingress.app import create_app
from schemas import codec
from tests.fakes import FakeProducer
from tests.fuzzing import (
    check_http_answer,
    damaged,
    dumps,
    fuzz_settings,
    json_values,
    maybe,
    mostly,
)
from tests.fuzzing import nasty_text as nasty
from tests.ingress.fuzz_fakes import A, AllChannelsDirectory, B, two_tenants
from tests.ingress.fuzz_posts import padded, post_checked, post_to_fresh_app

Client = TestClient[Any, Any]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
PATH = "/webhooks/whatsapp"
MAX_BODY = 16 * 1024


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def directory() -> AllChannelsDirectory:
    return two_tenants()


SETTINGS = Settings.from_env({}, max_body_bytes=4096, whatsapp_max_body_bytes=MAX_BODY)


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, producer: FakeProducer, directory: AllChannelsDirectory
) -> Client:
    return await aiohttp_client(create_app(SETTINGS, producer=producer, directory=directory))


wamids = st.one_of(
    st.builds(lambda n: f"wamid.{n}", st.integers(0, 10**6)), st.text(max_size=300), json_values
)
wa_ids = st.one_of(st.from_regex(r"[0-9]{6,15}", fullmatch=True), nasty)
types = st.sampled_from(["text", "button", "interactive", "image", "reaction", "system", "x"])
timestamps = maybe(
    st.one_of(st.integers(0, 2**40).map(str), st.sampled_from(["²", "١٢٣", "", "9" * 13]))
)
errors = st.lists(
    st.fixed_dictionaries(
        {}, optional={"code": maybe(st.integers()), "title": nasty, "message": nasty}
    ),
    max_size=2,
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(types)
    content = draw(
        st.one_of(
            st.fixed_dictionaries({"body": maybe(nasty)}),
            st.fixed_dictionaries({"text": maybe(nasty)}),
            st.fixed_dictionaries(
                {"button_reply": maybe(st.fixed_dictionaries({"title": maybe(nasty)}))}
            ),
            json_values,
        )
    )
    message = {"from": draw(maybe(wa_ids)), "id": draw(wamids), "type": draw(maybe(types))}
    message[kind] = content
    optional = {"timestamp": timestamps, "errors": maybe(errors), "context": json_values}
    for key, strategy in optional.items():
        if draw(st.booleans()):
            message[key] = draw(strategy)
    return message


statuses = st.fixed_dictionaries(
    {
        "id": wamids,
        "status": maybe(st.sampled_from(["sent", "delivered", "read", "failed", "deleted"])),
        "recipient_id": maybe(wa_ids),
    },
    optional={
        "timestamp": timestamps,
        "pricing": maybe(st.dictionaries(nasty, json_values, max_size=3)),
        "conversation": maybe(st.fixed_dictionaries({"id": json_values})),
        "errors": maybe(errors),
    },
)
contacts = st.lists(
    st.fixed_dictionaries(
        {"wa_id": maybe(wa_ids), "profile": maybe(st.fixed_dictionaries({"name": maybe(nasty)}))}
    ),
    max_size=2,
)
pnids = mostly(st.sampled_from([A.pnid] * 6 + [B.pnid]), st.text(max_size=20) | json_values, 12)


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    """A notification envelope with 1-2 changes; hostile values at every level."""
    changes = []
    for _ in range(draw(st.integers(1, 2))):
        value: dict[str, Any] = {"metadata": {"phone_number_id": draw(pnids)}}
        for key, strategy in (
            ("messages", st.lists(messages(), max_size=3)),
            ("statuses", st.lists(statuses, max_size=3)),
            ("contacts", maybe(contacts)),
            ("errors", maybe(errors)),
        ):
            if draw(st.booleans()):
                value[key] = draw(maybe(strategy))
        field = draw(st.sampled_from(["messages"] * 5 + ["account_update", ""]))
        changes.append({"field": field, "value": value})
    envelope = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": changes}]}
    # Mostly the right envelope (what reaches the normaliser); sometimes anything at all.
    return draw(mostly(st.just(envelope), json_values, one_in=10))


@st.composite
def signed_posts(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """(body, headers): usually signed with the app secret of the number it names."""
    payload = draw(notifications())
    body = draw(damaged(dumps(payload)))
    secret = draw(st.sampled_from([A.app_secret] * 6 + [B.app_secret, "", "wrong"]))
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "x/y"]))}
    how = draw(st.sampled_from(["signed"] * 8 + ["missing", "garbage", "upper"]))
    if how == "signed" and secret:
        headers[wa.SIGNATURE_HEADER] = wa.sign(body, secret)
    elif how == "upper" and secret:
        headers[wa.SIGNATURE_HEADER] = "sha256=" + wa.sign(body, secret)[7:].upper()
    elif how == "garbage":
        headers[wa.SIGNATURE_HEADER] = draw(
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
        )
    return body, headers


@fuzz_settings(150)
@given(post=signed_posts(), kafka_down=st.booleans())
async def test_post_answers_are_defined_and_route_only_to_the_named_tenant(
    post: tuple[bytes, dict[str, str]], kafka_down: bool
) -> None:
    body, headers = post
    producer = await post_to_fresh_app(
        SETTINGS, two_tenants(), PATH, body, headers, kafka_down=kafka_down
    )
    owner = {A.pnid: A.tenant_id, B.pnid: B.tenant_id}
    for sent in producer.sent:  # what every consumer of these topics must decode
        record = codec.decode(sent.payload, expect=sent.topic.schema)
        assert sent.key == record["tenant_id"]
        pnid = record.get("account_id") or record["reply_route"]["phone_number_id"]
        assert owner[pnid] == record["tenant_id"], "an event reached the wrong tenant"


@fuzz_settings(200)
@given(
    size=st.integers(MAX_BODY - 32, MAX_BODY * 3),
    chunked=st.booleans(),
    signed=st.booleans(),
)
async def test_huge_bodies_are_413_or_read_never_5xx(
    client: Client, producer: FakeProducer, size: int, chunked: bool, signed: bool
) -> None:
    payload = wa.text_message(A.pnid, "16505551234", "x", wamid="wamid.huge")
    body = padded(dumps(payload), size)
    headers = {wa.SIGNATURE_HEADER: wa.sign(body, A.app_secret if signed else "x")}
    status, text = await post_checked(client, PATH, body, headers, chunk=4096 if chunked else None)
    if len(body) > MAX_BODY:
        assert status == 413, text
    else:
        assert status in (200, 401), text


verify_params = st.dictionaries(
    st.sampled_from(["hub.mode", "hub.challenge", "hub.verify_token", "x", ""]),
    st.one_of(
        st.sampled_from(["subscribe", A.verify_token, B.verify_token, "1158201444", ""]),
        st.text(max_size=300),
    ),
    max_size=4,
)


@fuzz_settings(300)
@given(params=verify_params)
async def test_verify_handshake_echoes_only_to_a_known_token(
    client: Client, params: dict[str, str]
) -> None:
    resp = await client.get(PATH, params=params)
    text = await resp.text()
    check_http_answer(resp.status, text)
    challenge = params.get("hub.challenge", "")
    good = (
        params.get("hub.mode") == "subscribe"
        and params.get("hub.verify_token") in (A.verify_token, B.verify_token)
        and 0 < len(challenge) <= 256
    )
    event(str(resp.status))
    if good:
        assert (resp.status, text) == (200, challenge)
    else:
        assert resp.status == 403, text


@fuzz_settings(300)
@given(query=st.binary(max_size=200))
async def test_verify_handshake_with_a_raw_query_string_is_never_5xx(
    client: Client, query: bytes
) -> None:
    resp = await client.get(f"{PATH}?{query.decode('latin-1')}")
    check_http_answer(resp.status, await resp.text())
    assert resp.status in (200, 400, 403)
