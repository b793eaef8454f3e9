"""The shared record builders write what the two stages wrote before, byte for byte.

`_before_*` are the builders as `streams.metering.outputs` and `agents_bridge.forward.worker`
spelled them out before they shared `schemas.records`; each case encodes both outputs for
the same decoded inputs and compares the bytes (and the dicts).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from agents_bridge.forward import worker as forward
from agents_bridge.forward.gateway_client import GatewayReply
from common.directory import Tenant
from common.settings import Secret
from common.timeconv import epoch_ms
from schemas import codec
from schemas.types import AdmittedMessage, InboundMessage
from streams.metering import outputs
from streams.metering.state import Outcome, Verdict

AT = datetime(2026, 11, 5, 9, 30, 1, 234000, tzinfo=UTC)
START_MS, END_MS, NOW_MS = 1_793_491_200_000, 1_796_083_200_000, 1_794_000_000_123


def _inbound(**changes: Any) -> InboundMessage:
    raw: dict[str, Any] = {
        "event_id": "e1",
        "tenant_id": "0b6f1e7e-2f41-4e59-9a43-6f3f1ad0e001",
        "channel": "telegram",
        "conversation_id": "4242",
        "sender_id": "17",
        "sender_name": "Ann",
        "text": "hello",
        "received_at": epoch_ms(AT),
        "channel_message_id": "99",
        "reply_route": {"chat_id": "4242", "message_thread_id": "3"},
        **changes,
    }
    return codec.decode_as(codec.encode("inbound_message", raw), InboundMessage)


def _admitted(message: InboundMessage) -> AdmittedMessage:
    raw = {
        "message": outputs.inbound(message),
        "plan_id": "individual",
        "period_start": START_MS,
        "period_end": END_MS,
        "count_in_period": 3,
        "metered_at": NOW_MS,
    }
    return codec.decode_as(codec.encode("admitted_message", raw), AdmittedMessage)


MESSAGES = [
    _inbound(),
    _inbound(channel="email", text="", reply_route={}, sender_name=None),
    _inbound(channel="whatsapp", text="ünïcødé \x00", channel_message_id=None),
]
VERDICTS = [
    Verdict("e1", Outcome.ADMITTED, 0, "individual", START_MS, END_MS, NOW_MS, (), False),
    Verdict("e1", Outcome.HELD, 7, "business", START_MS, END_MS, NOW_MS + 1, (), True),
]
REPLIES = [
    GatewayReply("hi there", "resp-1", "gpt-x", 120, 30),
    GatewayReply("", None, None, None, None),
]
TENANT = Tenant(
    tenant_id="t",
    agent_id="acme",
    status="active",
    plan_id="individual",
    msg_limit=10,
    upgrade_to=None,
    period_start=None,
    period_end=None,
    gateway_url=None,
    gateway_token=Secret(""),
    gateway_agent_id=None,
    telegram=None,
)


def _same(schema: str, new: Mapping[str, Any], old: Mapping[str, Any]) -> None:
    assert dict(new) == old
    assert codec.encode(schema, new) == codec.encode(schema, old)


@pytest.mark.parametrize("record", MESSAGES)
@pytest.mark.parametrize("verdict", VERDICTS)
def test_metering_records_are_unchanged(record: InboundMessage, verdict: Verdict) -> None:
    _same("session_event", outputs.session_event(record, verdict), _before_in(record, verdict))
    _same("usage_record", outputs.usage(record, verdict), _before_usage(record, verdict))
    notice = outputs.notice_record(record, verdict, TENANT)
    _same("outbound_reply", notice, _before_notice(record, verdict, TENANT))


@pytest.mark.parametrize("record", MESSAGES)
@pytest.mark.parametrize("reply", REPLIES)
def test_forwarder_records_are_unchanged(record: InboundMessage, reply: GatewayReply) -> None:
    admitted = _admitted(record)
    msg = admitted["message"]
    _same("session_event", forward.session_event(msg, reply, NOW_MS), _before_out(msg, reply))
    got = forward.usage_record(admitted, reply, NOW_MS)
    _same("usage_record", got, _before_tokens(admitted, reply))
    answer = forward.outbound_reply(msg, "acme", reply, NOW_MS)
    _same("outbound_reply", answer, _before_reply(msg, "acme", reply))


def _before_notice(record: Mapping[str, Any], verdict: Verdict, tenant: Tenant) -> dict[str, Any]:
    return {
        "event_id": f"notice:{record['event_id']}",
        "in_reply_to": record["event_id"],
        "tenant_id": record["tenant_id"],
        "channel": record["channel"],
        "conversation_id": record["conversation_id"],
        "text": outputs.NOTICE_TEXT,
        "reply_route": dict(record.get("reply_route") or {}),
        "agent_id": tenant.agent_id,
        "gateway_response_id": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "created_at": verdict.metered_at_ms,
    }


def _before_in(record: Mapping[str, Any], verdict: Verdict) -> dict[str, Any]:
    return {
        "event_id": record["event_id"],
        "kind": "message_in",
        "tenant_id": record["tenant_id"],
        "channel": record["channel"],
        "conversation_id": record["conversation_id"],
        "role": "user",
        "text": record["text"],
        "status": verdict.outcome.value,
        "in_reply_to": None,
        "input_tokens": None,
        "output_tokens": None,
        "model": None,
        "occurred_at": epoch_ms(record["received_at"]),
    }


def _before_usage(record: Mapping[str, Any], verdict: Verdict) -> dict[str, Any]:
    return {
        "usage_id": f"msg:{record['event_id']}",
        "kind": "message",
        "tenant_id": record["tenant_id"],
        "plan_id": verdict.plan_id,
        "period_start": verdict.period_start_ms,
        "period_end": verdict.period_end_ms,
        "channel": record["channel"],
        "messages": 1,
        "input_tokens": 0,
        "output_tokens": 0,
        "recorded_at": verdict.metered_at_ms,
    }


def _before_reply(msg: Mapping[str, Any], agent_id: str, reply: GatewayReply) -> dict[str, Any]:
    return {
        "event_id": "reply:" + msg["event_id"],
        "in_reply_to": msg["event_id"],
        "tenant_id": msg["tenant_id"],
        "channel": msg["channel"],
        "conversation_id": msg["conversation_id"],
        "text": reply.text,
        "reply_route": dict(msg.get("reply_route") or {}),
        "agent_id": agent_id,
        "gateway_response_id": reply.response_id,
        "input_tokens": reply.input_tokens or 0,
        "output_tokens": reply.output_tokens or 0,
        "created_at": NOW_MS,
    }


def _before_out(msg: Mapping[str, Any], reply: GatewayReply) -> dict[str, Any]:
    return {
        "event_id": "reply:" + msg["event_id"],
        "kind": "message_out",
        "tenant_id": msg["tenant_id"],
        "channel": msg["channel"],
        "conversation_id": msg["conversation_id"],
        "role": "assistant",
        "text": reply.text,
        "status": "replied",
        "in_reply_to": msg["event_id"],
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
        "model": reply.model,
        "occurred_at": NOW_MS,
    }


def _before_tokens(admitted: Mapping[str, Any], reply: GatewayReply) -> dict[str, Any]:
    msg = admitted["message"]
    return {
        "usage_id": "tok:" + msg["event_id"],
        "kind": "tokens",
        "tenant_id": msg["tenant_id"],
        "plan_id": admitted["plan_id"],
        "period_start": epoch_ms(admitted["period_start"]),
        "period_end": epoch_ms(admitted["period_end"]),
        "channel": msg["channel"],
        "messages": 0,
        "input_tokens": reply.input_tokens or 0,
        "output_tokens": reply.output_tokens or 0,
        "recorded_at": NOW_MS,
    }
