"""The one builder of each record kind that more than one stage writes: pure functions from
the consumed message (a decoded InboundMessage) and the stage's facts to the record to encode.

- `message_in` / `message_out`: the SessionEvent of the user's message (metering, with its
  outcome) and of the agent's answer (the forwarder);
- `message_usage` / `token_usage`: the UsageRecord of an admitted message (metering,
  `msg:<event_id>`) and of the tokens its answer cost (the forwarder, `tok:<event_id>`);
- `reply`: an OutboundReply on the message's route: the agent's answer (the forwarder,
  `reply:<event_id>`) or the held-message notice (metering, `notice:<event_id>`).

Timestamps are passed in epoch ms (`schemas.outgoing`); the builders read no clock.
"""

from __future__ import annotations

from schemas.outgoing import EpochMs, OutboundReplyOut, SessionEventOut, UsageRecordOut
from schemas.types import InboundMessage, UsageKind


def message_in(message: InboundMessage, *, status: str, occurred_at: EpochMs) -> SessionEventOut:
    """The user's message as a session event; `status` is metering's outcome."""
    return {
        "event_id": message["event_id"],
        "kind": "message_in",
        "tenant_id": message["tenant_id"],
        "channel": message["channel"],
        "conversation_id": message["conversation_id"],
        "role": "user",
        "text": message["text"],
        "status": status,
        "in_reply_to": None,
        "input_tokens": None,
        "output_tokens": None,
        "model": None,
        "occurred_at": occurred_at,
    }


def message_out(
    message: InboundMessage,
    *,
    text: str,
    input_tokens: int | None,
    output_tokens: int | None,
    model: str | None,
    occurred_at: EpochMs,
) -> SessionEventOut:
    """The agent's answer to `message` as a session event (`reply:<event_id>`)."""
    return {
        "event_id": "reply:" + message["event_id"],
        "kind": "message_out",
        "tenant_id": message["tenant_id"],
        "channel": message["channel"],
        "conversation_id": message["conversation_id"],
        "role": "assistant",
        "text": text,
        "status": "replied",
        "in_reply_to": message["event_id"],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "model": model,
        "occurred_at": occurred_at,
    }


def message_usage(
    message: InboundMessage,
    *,
    plan_id: str,
    period_start: EpochMs,
    period_end: EpochMs,
    recorded_at: EpochMs,
) -> UsageRecordOut:
    """One billable message (`msg:<event_id>`), counted when metering admits it."""
    return _usage(
        message,
        usage_id=f"msg:{message['event_id']}",
        kind="message",
        plan_id=plan_id,
        period=(period_start, period_end),
        counts=(1, 0, 0),
        recorded_at=recorded_at,
    )


def token_usage(
    message: InboundMessage,
    *,
    plan_id: str,
    period_start: EpochMs,
    period_end: EpochMs,
    input_tokens: int,
    output_tokens: int,
    recorded_at: EpochMs,
) -> UsageRecordOut:
    """The tokens the answer to `message` cost (`tok:<event_id>`), no message counted."""
    return _usage(
        message,
        usage_id="tok:" + message["event_id"],
        kind="tokens",
        plan_id=plan_id,
        period=(period_start, period_end),
        counts=(0, input_tokens, output_tokens),
        recorded_at=recorded_at,
    )


def _usage(
    message: InboundMessage,
    *,
    usage_id: str,
    kind: UsageKind,
    plan_id: str,
    period: tuple[EpochMs, EpochMs],
    counts: tuple[int, int, int],
    recorded_at: EpochMs,
) -> UsageRecordOut:
    messages, input_tokens, output_tokens = counts
    return {
        "usage_id": usage_id,
        "kind": kind,
        "tenant_id": message["tenant_id"],
        "plan_id": plan_id,
        "period_start": period[0],
        "period_end": period[1],
        "channel": message["channel"],
        "messages": messages,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "recorded_at": recorded_at,
    }


def reply(
    message: InboundMessage,
    *,
    event_id: str,
    text: str,
    agent_id: str,
    gateway_response_id: str | None,
    input_tokens: int,
    output_tokens: int,
    created_at: EpochMs,
) -> OutboundReplyOut:
    """An outbound reply to `message`, on the route the message came from."""
    return {
        "event_id": event_id,
        "in_reply_to": message["event_id"],
        "tenant_id": message["tenant_id"],
        "channel": message["channel"],
        "conversation_id": message["conversation_id"],
        "text": text,
        "reply_route": dict(message.get("reply_route") or {}),
        "agent_id": agent_id,
        "gateway_response_id": gateway_response_id,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "created_at": created_at,
    }
