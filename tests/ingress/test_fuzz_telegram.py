"""Fuzz POST /webhooks/telegram/{bot_id} where `test_properties.py` does not reach.

`test_properties.py` throws random JSON at the route; this file sends what a hostile or
broken sender would: the right secret with damaged bodies (truncated, re-encoded,
bit-flipped), hostile strings in every field of a real update (lone surrogates, NUL,
other scripts' digits, huge integers), bodies around and far above MAX_BODY_BYTES with
and without Content-Length, bogus Content-Encoding, and arbitrary bytes in the path.
Every answer must be a defined 2xx/4xx; whatever is produced must decode and belong to
the tenant of the bot in the URL. `make fuzz` runs 100,000 inputs per test.
"""

from __future__ import annotations

import gzip
import json
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from common.settings import Settings
from schemas import codec
from tests.fakes import FakeProducer
from tests.fuzzing import (
    damaged,
    dumps,
    fuzz_settings,
    json_values,
    maybe,
    nasty_scalars,
    nasty_text,
)
from tests.ingress.fuzz_posts import padded, post_checked, post_to_fresh_app
from tests.ingress.ingress_fakes import (
    BOT_A,
    MAX_BODY,
    SECRET_A,
    TENANT_A,
    FakeDirectory,
    text_update,
)

Client = TestClient[Any, Any]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
URL = f"/webhooks/telegram/{BOT_A}"

ints = st.one_of(st.integers(-(2**53), 2**53), nasty_scalars)
party = st.fixed_dictionaries(
    {"id": maybe(ints)},
    optional={
        "is_bot": maybe(st.booleans()),
        "first_name": maybe(nasty_text),
        "last_name": maybe(nasty_text),
        "username": maybe(nasty_text),
        "title": maybe(nasty_text),
    },
)
hostile_updates = st.fixed_dictionaries(
    {
        "update_id": maybe(st.integers(-(2**63), 2**64)),
        "message": maybe(
            st.fixed_dictionaries(
                {"text": maybe(nasty_text), "chat": maybe(party)},
                optional={
                    "message_id": maybe(ints),
                    "from": maybe(party),
                    "sender_chat": maybe(party),
                    "message_thread_id": maybe(ints),
                    "date": maybe(ints),
                    "entities": json_values,
                },
            )
        ),
    },
    optional={"edited_message": json_values, "callback_query": json_values},
)


def _check_produced(producer: FakeProducer, before: int) -> None:
    for sent in producer.sent[before:]:
        record = codec.decode(sent.payload, expect="inbound_message")
        assert sent.key == record["tenant_id"] == TENANT_A
        assert record["event_id"].startswith(f"telegram:{BOT_A}:")
        assert record["reply_route"]["bot_id"] == BOT_A


@fuzz_settings(200)
@given(body=hostile_updates.map(dumps).flatmap(damaged), kafka_down=st.booleans())
async def test_hostile_updates_with_the_right_secret(
    settings: Settings, directory: FakeDirectory, body: bytes, kafka_down: bool
) -> None:
    producer = await post_to_fresh_app(
        settings, directory, URL, body, {SECRET_HEADER: SECRET_A}, kafka_down=kafka_down
    )
    _check_produced(producer, 0)


@fuzz_settings(150)
@given(
    size=st.integers(MAX_BODY - 64, MAX_BODY * 4),
    chunked=st.booleans(),
    gzipped=st.booleans(),
)
async def test_bodies_around_and_over_the_limit(
    client: Client, producer: FakeProducer, size: int, chunked: bool, gzipped: bool
) -> None:
    """The limit holds for the decompressed size too (a small gzip bomb is still a 413)."""
    plain = padded(json.dumps(text_update(424242)).encode(), size)
    body = gzip.compress(plain) if gzipped else plain
    headers = {SECRET_HEADER: SECRET_A}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    status, text = await post_checked(client, URL, body, headers, chunk=1000 if chunked else None)
    assert status == (413 if len(plain) > MAX_BODY else 200), text


@fuzz_settings(150)
@given(
    encoding=st.sampled_from(["gzip", "deflate", "br", "identity", "x-nonsense", "gzip, gzip"]),
    body=st.one_of(st.binary(max_size=200), st.just(json.dumps(text_update(7)).encode())),
)
async def test_bogus_content_encoding(
    client: Client, producer: FakeProducer, encoding: str, body: bytes
) -> None:
    before = len(producer.sent)
    status, _text = await post_checked(
        client, URL, body, {SECRET_HEADER: SECRET_A, "Content-Encoding": encoding}
    )
    event(str(status))
    _check_produced(producer, before)


@fuzz_settings(300)
@given(
    bot_id=st.one_of(st.binary(min_size=1, max_size=40), st.just(BOT_A.encode())),
    secret=st.one_of(
        st.just(SECRET_A), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=64)
    ),
)
async def test_any_path_and_secret(
    client: Client, producer: FakeProducer, bot_id: bytes, secret: str
) -> None:
    before = len(producer.sent)
    path = "/webhooks/telegram/" + quote(bot_id, safe="")
    status, text = await post_checked(
        client, path, json.dumps(text_update(9)).encode(), {SECRET_HEADER: secret}
    )
    if bot_id != BOT_A.encode():
        assert status in (404, 405), text
    elif secret != SECRET_A:
        assert status == 401, text
    _check_produced(producer, before)
