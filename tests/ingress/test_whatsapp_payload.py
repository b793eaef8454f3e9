"""WhatsApp notification parsing and normalisation (pure), on Meta-shaped payloads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack import whatsapp_payloads as wa
from ingress.whatsapp_payload import (
    MalformedNotification,
    Notification,
    Output,
    normalize,
    parse_notification,
)
from schemas import codec

PNID = "106540352242922"
USER = "16505551234"
TENANT = "0b7c2f5e-8a51-4a8e-9d0e-3f1c2b4a5d6e"
NOW = 1_795_360_321_000
NOTICE = "Sorry, {kind} messages are not supported yet."


def parse(payload: dict[str, Any]) -> Notification:
    return parse_notification(wa.encode(payload))


def outputs(payload: dict[str, Any], *, notify: bool = True) -> tuple[list[Output], list[str]]:
    [change] = parse(payload).changes
    return normalize(
        change, tenant_id=TENANT, received_at_ms=NOW, notify=notify, notice_text=NOTICE
    )


def test_text_message_becomes_an_inbound_record() -> None:
    payload = wa.text_message(PNID, USER, "Does it come in another color?", wamid="wamid.A1")
    [out], ignored = outputs(payload)
    assert ignored == []
    assert out.kind == "inbound"
    assert out.dedup == ("wamid.A1", -1)
    assert out.record == {
        "event_id": f"whatsapp:{PNID}:wamid.A1",
        "tenant_id": TENANT,
        "channel": "whatsapp",
        "conversation_id": USER,
        "sender_id": USER,
        "sender_name": "Sheena Nelson",
        "text": "Does it come in another color?",
        "received_at": NOW,
        "channel_message_id": "wamid.A1",
        "reply_route": {"phone_number_id": PNID, "to": USER, "message_id": "wamid.A1"},
    }
    codec.encode("inbound_message", out.record)  # fits the schema


def test_the_protocols_md_example_parses() -> None:
    raw = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PNID,
                            },
                            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": USER}],
                            "messages": [
                                {
                                    "from": USER,
                                    "id": "wamid.HBgL",
                                    "timestamp": "1749416383",
                                    "type": "text",
                                    "text": {"body": "Does it come in another color?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    assert parse_notification(json.dumps(raw).encode()).phone_number_ids == [PNID]


@pytest.mark.parametrize(
    ("kind", "content", "text"),
    [
        ("button", {"payload": "yes", "text": "Yes please"}, "Yes please"),
        (
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "b1", "title": "Ok"}},
            "Ok",
        ),
        ("interactive", {"type": "list_reply", "list_reply": {"id": "r", "title": "Red"}}, "Red"),
    ],
)
def test_replies_with_text_are_text(kind: str, content: dict[str, Any], text: str) -> None:
    [out], _ = outputs(wa.inbound_message(PNID, USER, kind, content))
    assert out.kind == "inbound"
    assert out.record["text"] == text


def test_unsupported_type_is_recorded_and_answered() -> None:
    payload = wa.image_message(PNID, USER, wamid="wamid.IMG", timestamp=1749416383)
    (status, notice), ignored = outputs(payload)
    assert ignored == []
    assert status.kind == "status" and notice.kind == "notice"
    assert status.dedup == notice.dedup == ("wamid.IMG", -1)
    assert status.record["direction"] == "in"
    assert status.record["status"] == "received"
    assert status.record["kind"] == "image"
    assert status.record["occurred_at"] == 1749416383000
    assert notice.record["event_id"] == f"notice:whatsapp:{PNID}:wamid.IMG"
    assert notice.record["text"] == "Sorry, image messages are not supported yet."
    assert notice.record["reply_route"]["kind"] == "notice"
    assert notice.record["reply_route"]["to"] == USER
    codec.encode("channel_status", status.record)
    codec.encode("outbound_reply", notice.record)


@pytest.mark.parametrize("kind", ["reaction", "system"])
def test_reactions_and_system_messages_are_recorded_without_a_notice(kind: str) -> None:
    [status], _ = outputs(wa.inbound_message(PNID, USER, kind, {"emoji": "👍"}))
    assert status.kind == "status"
    assert status.record["kind"] == kind


def test_no_notice_for_a_tenant_that_is_not_active() -> None:
    [status], _ = outputs(wa.image_message(PNID, USER), notify=False)
    assert status.kind == "status"


def test_statuses_become_channel_statuses() -> None:
    payload = wa.status_update(PNID, "wamid.OUT", "delivered", USER, timestamp=1749416390)
    [out], _ = outputs(payload)
    assert out.kind == "status"
    assert out.dedup == ("wamid.OUT", 2)
    record = out.record
    assert record["event_id"] == "whatsapp:wamid.OUT:delivered"
    assert record["direction"] == "out"
    assert record["counterpart"] == USER
    assert record["occurred_at"] == 1749416390000
    assert record["details"]["pricing_category"] == "service"
    assert "conversation_id" in record["details"]
    codec.encode("channel_status", record)


def test_a_failed_status_keeps_its_error() -> None:
    payload = wa.status_update(
        PNID, "wamid.F", "failed", USER, error_code=131047, error_title="Re-engagement message"
    )
    [out], _ = outputs(payload)
    assert out.dedup == ("wamid.F", 4)
    assert out.record["error_code"] == "131047"
    assert out.record["error_title"] == "Re-engagement message"


def test_unknown_statuses_and_bad_parts_are_ignored_not_fatal() -> None:
    payload = wa.status_update(PNID, "wamid.X", "deleted", USER)
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"] = [{"id": "wamid.Y", "type": "text"}, "junk"]  # no sender; not a dict
    value["errors"] = [{"code": 131051, "title": "Unsupported message type"}]
    out, ignored = outputs(payload)
    assert out == []
    assert sorted(ignored) == [
        "malformed_message",
        "malformed_message",
        "provider_errors",
        "unknown_status",
    ]


def test_empty_text_is_ignored() -> None:
    out, ignored = outputs(wa.text_message(PNID, USER, "   "))
    assert out == [] and ignored == ["empty_text"]


def test_lone_surrogates_are_replaced() -> None:
    raw = wa.encode(wa.text_message(PNID, USER, "PLACEHOLDER")).replace(
        b"PLACEHOLDER", b"a\\ud800b"
    )
    [change] = parse_notification(raw).changes
    [out], _ = normalize(change, tenant_id=TENANT, received_at_ms=NOW, notify=True, notice_text="")
    assert out.record["text"] == "a\ufffdb"
    codec.encode("inbound_message", out.record)


def test_several_numbers_in_one_body() -> None:
    a = wa.text_message("111", USER, "to a")
    b = wa.text_message("222", USER, "to b")
    a["entry"].extend(b["entry"])
    assert parse(a).phone_number_ids == ["111", "222"]


def test_other_fields_are_skipped() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {}}]}],
    }
    assert parse(body).changes == ()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": [{"id": "1"}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": '
        b'[{"field": "messages", "value": {"metadata": {"phone_number_id": 7}}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": '
        b'[{"field": "messages", "value": {"metadata": {"phone_number_id": "../x"}}}]}]}',
        b"[" * 100_000,
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedNotification):
        parse_notification(body)
