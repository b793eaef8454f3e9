"""telegram_payload.py: Telegram update → InboundMessage record, or the reason it is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from ingress.telegram_payload import Ignored, MalformedUpdate, Update, normalize, parse_update
from schemas import codec
from tests.ingress.ingress_fakes import text_update

BOT = "7000000001"
TENANT = "0b7c2f5e-8a51-4a8e-9d0e-3f1c2b4a5d6e"


def run(fields: dict[str, Any]) -> dict[str, Any] | Ignored:
    return normalize(
        Update(fields["update_id"], fields), bot_id=BOT, tenant_id=TENANT, received_at_ms=1_700_000
    )


def record_of(fields: dict[str, Any]) -> dict[str, Any]:
    out = run(fields)
    assert isinstance(out, dict), out
    codec.encode("inbound_message", out)  # every record we build fits the schema
    return out


def test_parse_update_accepts_an_update() -> None:
    update = parse_update(b'{"update_id": 12, "message": {}}')
    assert update.update_id == 12
    assert update.fields["message"] == {}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"nope", "body is not JSON"),
        (b"\x80\x81", "body is not JSON"),
        (b"[]", "body is not a JSON object"),
        (b"null", "body is not a JSON object"),
        (b'{"message": {}}', "update_id is missing or not an integer"),
        (b'{"update_id": "12"}', "update_id is missing or not an integer"),
        (b'{"update_id": false}', "update_id is missing or not an integer"),
        (b'{"update_id": 1e3}', "update_id is missing or not an integer"),
    ],
)
def test_parse_update_refuses_what_is_not_an_update(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedUpdate) as caught:
        parse_update(body)
    assert caught.value.reason == reason


def test_private_text_message() -> None:
    assert record_of(text_update(100001)) == {
        "event_id": f"telegram:{BOT}:100001",
        "tenant_id": TENANT,
        "channel": "telegram",
        "conversation_id": "8734062810",
        "sender_id": "8734062810",
        "sender_name": "Ada",
        "text": "hello",
        "received_at": 1_700_000,
        "channel_message_id": "1",
        "reply_route": {"chat_id": "8734062810", "bot_id": BOT},
    }


def test_group_forum_message_keeps_chat_and_thread_in_the_route() -> None:
    update = text_update(5, chat_id=-1009876543210, user_id=42, message_thread_id=99)
    update["message"]["from"]["last_name"] = "Lovelace"
    record = record_of(update)
    assert record["conversation_id"] == "-1009876543210"
    assert record["sender_id"] == "42"
    assert record["sender_name"] == "Ada Lovelace"
    assert record["reply_route"] == {
        "chat_id": "-1009876543210",
        "bot_id": BOT,
        "message_thread_id": "99",
    }


def test_sender_name_falls_back_to_username_then_none() -> None:
    update = text_update()
    del update["message"]["from"]["first_name"]
    assert record_of(update)["sender_name"] == "ada"
    del update["message"]["from"]["username"]
    assert record_of(update)["sender_name"] is None


def test_anonymous_admin_speaks_as_the_chat() -> None:
    update = text_update(chat_id=-100555)
    del update["message"]["from"]
    update["message"]["sender_chat"] = {"id": -100555, "type": "supergroup", "title": "Team"}
    record = record_of(update)
    assert (record["sender_id"], record["sender_name"]) == ("-100555", "Team")


def test_lone_surrogates_are_replaced_not_fatal() -> None:
    update = parse_update(
        b'{"update_id": 1, "message": {"text": "hi \\ud800", "chat": {"id": 1},'
        b' "from": {"id": 2, "first_name": "\\udfff"}}}'
    )
    out = normalize(update, bot_id=BOT, tenant_id=TENANT, received_at_ms=0)
    assert isinstance(out, dict)
    assert out["text"] == "hi \ufffd"
    assert out["sender_name"] == "\ufffd"
    codec.encode("inbound_message", out)


def test_missing_message_id_is_none() -> None:
    update = text_update()
    del update["message"]["message_id"]
    assert record_of(update)["channel_message_id"] is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: m.update(text=""), "no_text"),
        (lambda m: m.pop("text"), "no_text"),
        (lambda m: m.update(text=["hi"]), "no_text"),
        (lambda m: m.pop("chat"), "malformed_message"),
        (lambda m: m.update(chat={"id": "1"}), "malformed_message"),
        (lambda m: m.update(chat={"id": True}), "malformed_message"),
        (lambda m: m.pop("from"), "no_sender"),
        (lambda m: m.update({"from": {"id": 1.5}}), "no_sender"),
        (lambda m: m["from"].update(is_bot=True), "from_bot"),
    ],
)
def test_messages_we_cannot_answer_are_ignored(change: Any, reason: str) -> None:
    update = text_update()
    change(update["message"])
    assert run(update) == Ignored(reason)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"update_id": 1}, "empty_update"),
        ({"update_id": 1, "message": "hi"}, "malformed_message"),
        ({"update_id": 1, "edited_message": {}}, "edited_message"),
        ({"update_id": 1, "channel_post": {}}, "channel_post"),
        ({"update_id": 1, "message_reaction": {}}, "message_reaction"),
        ({"update_id": 1, "x" * 10_000: {}}, "unsupported_update"),
    ],
)
def test_other_update_kinds_are_ignored(fields: dict[str, Any], reason: str) -> None:
    assert run(fields) == Ignored(reason)
