"""Property: whatever a caller sends, ingress answers with a 2xx/4xx, never a 5xx,
except the deliberate 503 while Kafka is down."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas import codec
from tests.fakes import FakeProducer
from tests.ingress.ingress_fakes import BOT_A, BOT_B, SECRET_A, text_update

Client = TestClient[Any, Any]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
maybe = st.one_of(json_values, st.integers(), st.text(max_size=30))
party = st.fixed_dictionaries(
    {},
    optional={
        "id": maybe,
        "is_bot": st.booleans() | json_values,
        "first_name": maybe,
        "last_name": maybe,
        "username": maybe,
        "title": maybe,
    },
)
message = st.fixed_dictionaries(
    {},
    optional={
        "message_id": maybe,
        "text": st.text(max_size=50) | json_values,
        "chat": party | json_values,
        "from": party | json_values,
        "sender_chat": party | json_values,
        "message_thread_id": maybe,
    },
)
updates = st.fixed_dictionaries(
    {},
    optional={
        "update_id": st.integers() | json_values,
        "message": message | json_values,
        "edited_message": message,
        "callback_query": json_values,
    },
)
plausible = st.builds(
    lambda update_id, text, chat_id, user_id, extra: text_update(
        update_id, text=text, chat_id=chat_id, user_id=user_id, **extra
    ),
    st.integers(),
    st.text(max_size=50),
    st.integers(),
    st.integers(),
    st.dictionaries(st.sampled_from(["message_thread_id", "message_id", "sender_chat"]), maybe),
)
bodies = st.one_of(
    plausible.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    updates.map(lambda v: json.dumps(v).encode()),
    updates.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
)
# Mostly the right bot and secret, so that most examples get past the checks.
secrets = st.one_of(
    *[st.just(SECRET_A)] * 4,
    st.none(),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
)
content_types = st.sampled_from([None, "application/json", "text/plain", "x/y; charset=utf-7"])
bot_ids = st.one_of(
    *[st.just(BOT_A)] * 4, st.just(BOT_B), st.from_regex(r"[0-9A-Za-z_%-]{1,25}", fullmatch=True)
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=bodies,
    secret=secrets,
    content_type=content_types,
    bot_id=bot_ids,
    kafka_down=st.booleans(),
)
async def test_no_5xx_except_kafka_down(
    client: Client,
    producer: FakeProducer,
    body: bytes,
    secret: str | None,
    content_type: str | None,
    bot_id: str,
    kafka_down: bool,
) -> None:
    producer.down = kafka_down
    before = len(producer.sent)
    headers = {}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    if content_type is not None:
        headers["Content-Type"] = content_type
    resp = await client.post(f"/webhooks/telegram/{bot_id}", data=body, headers=headers)
    payload = await resp.json()
    event(f"{resp.status} {payload.get('error', {}).get('code') or payload.get('ignored', 'ok')}")
    if resp.status >= 500:
        assert kafka_down, payload
        assert (resp.status, payload["error"]["code"]) == (503, "kafka_unavailable")
    elif resp.status == 200:
        assert payload["ok"] is True
    else:
        assert 400 <= resp.status < 500
        assert set(payload["error"]) == {"code", "message"}
    # Anything produced is a valid InboundMessage for the right bot's tenant.
    for sent in producer.sent[before:]:
        record = codec.decode(sent.payload, expect="inbound_message")
        assert record["event_id"].startswith(f"telegram:{bot_id}:")
        assert sent.key == record["tenant_id"]
