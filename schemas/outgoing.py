"""The records as the producers build them for `schemas.codec.encode`: the TypedDicts of
`schemas.types` with every `timestamp-millis` field as epoch milliseconds (an int) instead
of a datetime. `codec.encode` takes both; the stages keep their clocks in epoch ms, so this
is what they write. Only the records a stage builds have a form here.

tests/schemas/test_outgoing.py holds each class to its decoded twin in `schemas.types`: the
same keys in the same order, the same value types but for the timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from schemas.types import (
    AlertLevel,
    Channel,
    Role,
    SessionEventKind,
    UsageKind,
)

EpochMs = int
"""A `timestamp-millis` value as written: milliseconds since 1970-01-01 UTC."""


class InboundMessageOut(TypedDict):
    """An InboundMessage to encode (in an AdmittedMessageOut)."""

    event_id: str
    tenant_id: str
    channel: Channel
    conversation_id: str
    sender_id: str
    sender_name: str | None
    text: str
    received_at: EpochMs
    channel_message_id: str | None
    reply_route: dict[str, str]


class AdmittedMessageOut(TypedDict):
    """An AdmittedMessage to encode."""

    message: InboundMessageOut
    plan_id: str
    period_start: EpochMs
    period_end: EpochMs
    count_in_period: int
    metered_at: EpochMs


class OutboundReplyOut(TypedDict):
    """An OutboundReply to encode."""

    event_id: str
    in_reply_to: str
    tenant_id: str
    channel: Channel
    conversation_id: str
    text: str
    reply_route: dict[str, str]
    agent_id: str
    gateway_response_id: str | None
    input_tokens: int
    output_tokens: int
    created_at: EpochMs


class SessionEventOut(TypedDict):
    """A SessionEvent to encode."""

    event_id: str
    kind: SessionEventKind
    tenant_id: str
    channel: Channel
    conversation_id: str
    role: Role
    text: str
    status: str
    in_reply_to: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None
    occurred_at: EpochMs


class UsageRecordOut(TypedDict):
    """A UsageRecord to encode."""

    usage_id: str
    kind: UsageKind
    tenant_id: str
    plan_id: str
    period_start: EpochMs
    period_end: EpochMs
    channel: Channel
    messages: int
    input_tokens: int
    output_tokens: int
    recorded_at: EpochMs


class QuotaAlertOut(TypedDict):
    """A QuotaAlert to encode."""

    alert_id: str
    tenant_id: str
    plan_id: str
    level: AlertLevel
    used: int
    limit: int
    period_start: EpochMs
    message: str
    created_at: EpochMs


class ReleaseRequestOut(TypedDict):
    """A ReleaseRequest to encode."""

    request_id: str
    tenant_id: str
    reason: str
    requested_at: EpochMs


BY_SCHEMA: Mapping[str, type] = {
    "inbound_message": InboundMessageOut,
    "admitted_message": AdmittedMessageOut,
    "outbound_reply": OutboundReplyOut,
    "session_event": SessionEventOut,
    "usage_record": UsageRecordOut,
    "quota_alert": QuotaAlertOut,
    "release_request": ReleaseRequestOut,
}
"""Each outgoing form, by the schema's file stem (a subset of `schemas.types.BY_SCHEMA`)."""
