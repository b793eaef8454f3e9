"""POST /webhooks/telegram/{bot_id}: the contract, end to end through the app with fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from common.timeconv import now_ms
from common.topics import Topic
from ingress.signatures import TELEGRAM_SECRET_HEADER
from ingress.telegram import SEND_TIMEOUT_S
from tests.fakes import FakeProducer
from tests.ingress.ingress_fakes import (
    BOT_A,
    BOT_B,
    BOT_S,
    MAX_BODY,
    SECRET_A,
    SECRET_B,
    SECRET_S,
    TENANT_A,
    TENANT_B,
    TENANT_S,
    FakeDirectory,
    Metric,
    text_update,
)

Client = TestClient[Any, Any]


async def post(
    client: Client,
    body: Any,
    *,
    bot_id: str = BOT_A,
    secret: str | None = SECRET_A,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any], Any]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[TELEGRAM_SECRET_HEADER] = secret
    data = raw if raw is not None else json.dumps(body).encode()
    resp = await client.post(f"/webhooks/telegram/{bot_id}", data=data, headers=headers)
    return resp.status, await resp.json(), resp.headers


def requests(outcome: str) -> Metric:
    return Metric("ingress_requests_total", channel="telegram", outcome=outcome)


def rejections(reason: str) -> Metric:
    return Metric("ingress_rejections_total", channel="telegram", reason=reason)


async def test_text_message_is_produced_once_then_acknowledged(
    client: Client, producer: FakeProducer
) -> None:
    accepted = requests("accepted")
    before = now_ms()
    update = text_update(100001, text="hello", chat_id=-1001234, message_thread_id=7)
    status, body, _ = await post(client, update)
    after = now_ms()

    assert (status, body) == (200, {"ok": True})
    assert accepted.delta == 1
    [sent] = producer.sent
    assert sent.topic is Topic.INBOUND
    assert sent.key == TENANT_A
    assert sent.timeout == SEND_TIMEOUT_S
    record = sent.decoded()
    received_at = record.pop("received_at")
    assert isinstance(received_at, datetime)
    assert before <= received_at.astimezone(UTC).timestamp() * 1000 <= after
    assert record == {
        "event_id": f"telegram:{BOT_A}:100001",
        "tenant_id": TENANT_A,
        "channel": "telegram",
        "conversation_id": "-1001234",
        "sender_id": "8734062810",
        "sender_name": "Ada",
        "text": "hello",
        "channel_message_id": "1",
        "reply_route": {"chat_id": "-1001234", "bot_id": BOT_A, "message_thread_id": "7"},
    }


async def test_two_tenants_bots_route_to_their_own_tenant(
    client: Client, producer: FakeProducer
) -> None:
    assert (await post(client, text_update(1, text="to a"), bot_id=BOT_A, secret=SECRET_A))[
        0
    ] == 200
    assert (await post(client, text_update(1, text="to b"), bot_id=BOT_B, secret=SECRET_B))[
        0
    ] == 200

    routed = [(s.key, s.decoded()["tenant_id"], s.decoded()["text"]) for s in producer.sent]
    assert routed == [(TENANT_A, TENANT_A, "to a"), (TENANT_B, TENANT_B, "to b")]
    # Same update_id on two bots: two distinct events, not a duplicate.
    assert {s.decoded()["event_id"] for s in producer.sent} == {
        f"telegram:{BOT_A}:1",
        f"telegram:{BOT_B}:1",
    }


async def test_one_bots_secret_does_not_open_another_bot(
    client: Client, producer: FakeProducer
) -> None:
    status, body, _ = await post(client, text_update(), bot_id=BOT_B, secret=SECRET_A)
    assert (status, body["error"]["code"]) == (401, "bad_secret")
    assert producer.sent == []


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET_A + "x", SECRET_A[:-1]])
async def test_missing_or_wrong_secret_is_401_and_nothing_is_produced(
    client: Client, producer: FakeProducer, secret: str | None
) -> None:
    rejected, counted = rejections("bad_secret"), requests("rejected")
    status, body, _ = await post(client, text_update(), secret=secret)
    assert status == 401
    assert body["error"]["code"] == "bad_secret"
    assert producer.attempts == 0
    assert (rejected.delta, counted.delta) == (1, 1)


async def test_secret_is_checked_before_the_body_is_parsed(
    client: Client, producer: FakeProducer
) -> None:
    status, body, _ = await post(client, None, secret="wrong", raw=b"{not json")
    assert (status, body["error"]["code"]) == (401, "bad_secret")


@pytest.mark.parametrize("bot_id", ["7999999999", "abc", "70000000x1", "-7000000001", "٧٠٠"])
async def test_unknown_or_non_numeric_bot_is_404(
    client: Client, producer: FakeProducer, bot_id: str
) -> None:
    rejected = rejections("unknown_bot")
    status, body, _ = await post(client, text_update(), bot_id=bot_id)
    assert status == 404
    assert body["error"]["code"] == "unknown_bot"
    assert "Traceback" not in json.dumps(body)
    assert producer.attempts == 0
    assert rejected.delta == 1


async def test_oversized_body_is_413(client: Client, producer: FakeProducer) -> None:
    rejected = rejections("too_large")
    big = text_update(text="x" * (MAX_BODY + 1))
    status, body, _ = await post(client, big)
    assert (status, body["error"]["code"]) == (413, "too_large")
    assert producer.attempts == 0
    assert rejected.delta == 1


async def test_oversized_chunked_body_without_content_length_is_413(
    client: Client, producer: FakeProducer
) -> None:
    async def chunks() -> Any:
        for _ in range(MAX_BODY // 512 + 2):
            yield b" " * 512

    resp = await client.post(
        f"/webhooks/telegram/{BOT_A}", data=chunks(), headers={TELEGRAM_SECRET_HEADER: SECRET_A}
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "too_large"
    assert producer.attempts == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'"update"',
        b"{}",
        b'{"update_id": "1", "message": {}}',
        b'{"update_id": 1.0}',
        b'{"update_id": true}',
        b'{"update_id": null}',
        b"\xff\xfe\xfa",
        b"[" * 2000 + b"]" * 2000,  # deeper than the recursion limit
    ],
)
async def test_malformed_body_is_400(client: Client, producer: FakeProducer, raw: bytes) -> None:
    rejected = rejections("malformed")
    status, body, _ = await post(client, None, raw=raw)
    assert (status, body["error"]["code"]) == (400, "malformed")
    assert producer.attempts == 0
    assert rejected.delta == 1


async def test_duplicate_update_is_acknowledged_and_produced_once(
    client: Client, producer: FakeProducer
) -> None:
    duplicates = Metric("ingress_duplicates_total", channel="telegram")
    first = await post(client, text_update(42))
    again = await post(client, text_update(42))
    assert first[:2] == (200, {"ok": True})
    assert again[:2] == (200, {"ok": True, "duplicate": True})
    assert len(producer.sent) == 1
    assert duplicates.delta == 1
    assert requests("duplicate").now() >= 1


async def test_kafka_down_is_503_then_a_retry_succeeds(
    client: Client, producer: FakeProducer
) -> None:
    unavailable = requests("unavailable")
    producer.down = True
    status, body, headers = await post(client, text_update(77))
    assert (status, body["error"]["code"]) == (503, "kafka_unavailable")
    assert int(headers["Retry-After"]) > 0
    assert producer.sent == []
    assert unavailable.delta == 1

    producer.down = False  # Telegram delivers the same update again: not a duplicate
    status, body, _ = await post(client, text_update(77))
    assert (status, body) == (200, {"ok": True})
    assert [s.decoded()["event_id"] for s in producer.sent] == [f"telegram:{BOT_A}:77"]


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ({"update_id": 5, "edited_message": text_update()["message"]}, "edited_message"),
        ({"update_id": 5, "callback_query": {"id": "1", "data": "x"}}, "callback_query"),
        ({"update_id": 5, "my_chat_member": {}}, "my_chat_member"),
        ({"update_id": 5, "some_future_kind": {}}, "unsupported_update"),
        ({"update_id": 5}, "empty_update"),
        (text_update(5, text="", sticker={"file_id": "s"}), "no_text"),
        ({"update_id": 5, "message": {**text_update()["message"], "text": None}}, "no_text"),
    ],
)
async def test_updates_without_a_text_message_are_acknowledged_not_produced(
    client: Client, producer: FakeProducer, update: dict[str, Any], reason: str
) -> None:
    ignored = requests("ignored")
    status, body, _ = await post(client, update)
    assert (status, body) == (200, {"ok": True, "ignored": reason})
    assert producer.attempts == 0
    assert ignored.delta == 1


async def test_suspended_tenant_messages_are_still_produced(
    client: Client, producer: FakeProducer
) -> None:
    status, _, _ = await post(client, text_update(9), bot_id=BOT_S, secret=SECRET_S)
    assert status == 200
    assert [s.key for s in producer.sent] == [TENANT_S]


async def test_directory_not_loaded_yet_is_503_not_404(
    client: Client, producer: FakeProducer, directory: FakeDirectory
) -> None:
    directory.loaded.clear()
    status, body, headers = await post(client, text_update(), bot_id="7999999999")
    assert (status, body["error"]["code"]) == (503, "not_ready")
    assert "Retry-After" in headers
    assert producer.attempts == 0


async def test_wrong_method_and_unknown_path_are_json_errors(client: Client) -> None:
    resp = await client.get(f"/webhooks/telegram/{BOT_A}")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"
    resp = await client.post("/nowhere", data=b"{}")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_unexpected_error_is_a_json_500_without_traceback(
    client: Client, producer: FakeProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = requests("error")

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(producer, "send", broken)
    resp = await client.post(
        f"/webhooks/telegram/{BOT_A}",
        data=json.dumps(text_update()).encode(),
        headers={TELEGRAM_SECRET_HEADER: SECRET_A},
    )
    assert resp.status == 500
    text = await resp.text()
    assert json.loads(text) == {"error": {"code": "internal", "message": "internal error"}}
    assert "secret internals" not in text
    assert errors.delta == 1
