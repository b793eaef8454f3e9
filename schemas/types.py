"""One TypedDict per `.avsc`: the records as `schemas.codec.decode` returns them.

A decoded record has every field of its writer schema (fastavro fills each one), so every key
is required here, defaults included. Avro types read back as: string -> str, int/long -> int,
boolean -> bool, float/double -> float, bytes -> bytes, an enum -> its symbols as a Literal,
a map -> dict[str, ...], a union with null -> `X | None`, a named record -> its TypedDict, and
`timestamp-millis` -> an aware UTC datetime. (`codec.encode` also takes timestamps as epoch
milliseconds, which is how the producers build them; these types describe what is read.)

tests/schemas/test_types.py holds each class to its `.avsc`, field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal, TypedDict

Channel = Literal["telegram", "whatsapp", "email"]
Direction = Literal["in", "out"]
SessionEventKind = Literal["message_in", "message_out"]
Role = Literal["user", "assistant"]
UsageKind = Literal["message", "tokens"]
AlertLevel = Literal["soft", "hard"]
LifecycleKind = Literal[
    "created", "plan_changed", "payment_failed", "suspended", "reactivated", "deleted"
]


class InboundMessage(TypedDict):
    """messages.inbound, messages.held: an end user's message, normalised by ingress."""

    event_id: str
    tenant_id: str
    channel: Channel
    conversation_id: str
    sender_id: str
    sender_name: str | None
    text: str
    received_at: datetime
    channel_message_id: str | None
    reply_route: dict[str, str]


class AdmittedMessage(TypedDict):
    """messages.admitted: an inbound message metering admitted under the tenant's plan."""

    message: InboundMessage
    plan_id: str
    period_start: datetime
    period_end: datetime
    count_in_period: int
    metered_at: datetime


class OutboundReply(TypedDict):
    """messages.outbound: the agent's reply, for the channel the message came from."""

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
    created_at: datetime


class SessionEvent(TypedDict):
    """session.events: one message of a session, in or out."""

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
    occurred_at: datetime


class UsageRecord(TypedDict):
    """usage.records: billable usage, one record per usage_id."""

    usage_id: str
    kind: UsageKind
    tenant_id: str
    plan_id: str
    period_start: datetime
    period_end: datetime
    channel: Channel
    messages: int
    input_tokens: int
    output_tokens: int
    recorded_at: datetime


class QuotaAlert(TypedDict):
    """quota.alerts: a tenant crossed 80% (soft) or 100% (hard) of its period's messages."""

    alert_id: str
    tenant_id: str
    plan_id: str
    level: AlertLevel
    used: int
    limit: int
    period_start: datetime
    message: str
    created_at: datetime


class TenantLifecycle(TypedDict):
    """tenants.lifecycle: a change in a tenant's life, decided from billing."""

    event_id: str
    tenant_id: str
    kind: LifecycleKind
    plan_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    occurred_at: datetime
    billing_event: str
    stripe_customer_id: str | None
    stripe_subscription_id: str | None
    stripe_object_id: str | None
    subscription_status: str | None
    stripe_price_id: str | None
    owner_email: str | None
    display_name: str | None
    settings_json: str | None
    sealed_credentials: bytes | None


class DeadLetter(TypedDict):
    """<topic>.dlq: an event a stage can never process, with the reason."""

    stage: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    payload: bytes
    reason: str
    failed_at: datetime


class ChannelStatus(TypedDict):
    """channel.statuses: a provider-side fact about one message on a channel."""

    event_id: str
    tenant_id: str
    channel: Channel
    account_id: str
    message_id: str
    direction: Direction
    status: str
    counterpart: str
    kind: str | None
    reply_event_id: str | None
    chunk: int | None
    error_code: str | None
    error_title: str | None
    details: dict[str, str]
    occurred_at: datetime


class ReleaseRequest(TypedDict):
    """quota.releases: re-meter a tenant's held messages against its current allowance."""

    request_id: str
    tenant_id: str
    reason: str
    requested_at: datetime


BY_SCHEMA: Mapping[str, type] = {
    "inbound_message": InboundMessage,
    "admitted_message": AdmittedMessage,
    "outbound_reply": OutboundReply,
    "session_event": SessionEvent,
    "usage_record": UsageRecord,
    "quota_alert": QuotaAlert,
    "tenant_lifecycle": TenantLifecycle,
    "dead_letter": DeadLetter,
    "channel_status": ChannelStatus,
    "release_request": ReleaseRequest,
}
"""Each schema's TypedDict, by the schema's file stem (the names in topics.yaml)."""
