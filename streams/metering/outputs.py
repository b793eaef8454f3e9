"""The outputs of a metering decision: the records it sends, and their sends.

- `session_event`: a SessionEvent for session.events (the user message, with its outcome);
  it, `usage` and `notice_record` are built by `schemas.records`, as the forwarder's are;
- `admitted`: an AdmittedMessage for messages.admitted (`inbound`: the InboundMessage in it);
- `usage`: a UsageRecord for usage.records (`usage_id` `msg:<event_id>`);
- `alert_record`: a QuotaAlert for quota.alerts (the email to the owner is sent from it by
  `streams.alerts.agent`). `alert_id` is `<tenant_id>:<period_start ms>:<level>`, so a
  re-sent alert is recognisably the same one;
- `notice_record`: an OutboundReply for messages.outbound, sent once per conversation and
  period when a message is held, so the end user knows the agent did not just ignore them.

`message_sends` starts the broker outputs of one decided message in the order
`streams.metering` describes, `queue_row` its row in the overage queue, `alert_sends` the
alerts of a verdict or a release, and `send_all` awaits them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from datetime import UTC, datetime

from common.consumer import Event
from common.directory import Tenant
from common.timeconv import epoch_ms
from common.topics import Topic
from schemas import records
from schemas.outgoing import (
    AdmittedMessageOut,
    InboundMessageOut,
    OutboundReplyOut,
    QuotaAlertOut,
    SessionEventOut,
    UsageRecordOut,
)
from schemas.types import InboundMessage
from streams.boundary import Producer
from streams.metering.decide import conversation
from streams.metering.held_store import HeldQueue
from streams.metering.state import Alert, Level, Outcome, Release, Verdict

SEND_TIMEOUT_S = 30.0

NOTICE_TEXT = (
    "Thanks for your message! This assistant is temporarily unavailable. "
    "Your message is saved and will be answered as soon as it is back."
)


def upgrade_prompt(tenant: Tenant) -> str:
    """ "Upgrade to Business for 10,000 messages a month." (or what the plan data says)."""
    if not tenant.upgrade_name:
        return "Contact us to raise your limit."
    if tenant.upgrade_msg_limit is None:
        return f"Upgrade to {tenant.upgrade_name} for unlimited messages."
    return f"Upgrade to {tenant.upgrade_name} for {tenant.upgrade_msg_limit:,} messages a month."


def alert_text(alert: Alert, tenant: Tenant, period_end_ms: int) -> str:
    """The customer-facing text of an alert, with the upgrade prompt."""
    renews = datetime.fromtimestamp(period_end_ms / 1000, UTC).strftime("%B %-d, %Y")
    if alert.level is Level.SOFT:
        share = 100 * alert.used // max(1, alert.limit)
        return (
            f"You've used {alert.used:,} of your {alert.limit:,} messages this period "
            f"({share}%). {upgrade_prompt(tenant)}"
        )
    return (
        f"You've hit your limit of {alert.limit:,} messages this period. "
        f"{upgrade_prompt(tenant)} Until then, new messages wait in a queue and are answered "
        f"in order when you upgrade or when your next period starts on {renews}."
    )


def alert_record(
    tenant: Tenant,
    alert: Alert,
    *,
    plan_id: str,
    period_start_ms: int,
    period_end_ms: int,
    created_at_ms: int,
) -> QuotaAlertOut:
    return {
        "alert_id": f"{tenant.tenant_id}:{period_start_ms}:{alert.level.value}",
        "tenant_id": tenant.tenant_id,
        "plan_id": plan_id,
        "level": alert.level.value,
        "used": alert.used,
        "limit": alert.limit,
        "period_start": period_start_ms,
        "message": alert_text(alert, tenant, period_end_ms),
        "created_at": created_at_ms,
    }


def notice_record(record: InboundMessage, verdict: Verdict, tenant: Tenant) -> OutboundReplyOut:
    """The polite notice answering the held inbound `record`."""
    return records.reply(
        record,
        event_id=f"notice:{record['event_id']}",
        text=NOTICE_TEXT,
        agent_id=tenant.agent_id,
        gateway_response_id=None,
        input_tokens=0,
        output_tokens=0,
        created_at=verdict.metered_at_ms,
    )


def inbound(record: InboundMessage) -> InboundMessageOut:
    """A decoded InboundMessage made encodable again (timestamps as epoch ms)."""
    return {**record, "received_at": epoch_ms(record["received_at"])}


def session_event(record: InboundMessage, verdict: Verdict) -> SessionEventOut:
    return records.message_in(
        record, status=verdict.outcome.value, occurred_at=epoch_ms(record["received_at"])
    )


def admitted(record: InboundMessage, verdict: Verdict) -> AdmittedMessageOut:
    return {
        "message": inbound(record),
        "plan_id": verdict.plan_id,
        "period_start": verdict.period_start_ms,
        "period_end": verdict.period_end_ms,
        "count_in_period": verdict.count_in_period,
        "metered_at": verdict.metered_at_ms,
    }


def usage(record: InboundMessage, verdict: Verdict) -> UsageRecordOut:
    return records.message_usage(
        record,
        plan_id=verdict.plan_id,
        period_start=verdict.period_start_ms,
        period_end=verdict.period_end_ms,
        recorded_at=verdict.metered_at_ms,
    )


def message_sends(
    producer: Producer, event: Event, record: InboundMessage, verdict: Verdict, tenant: Tenant
) -> list[Awaitable[None]]:
    """The broker outputs of one decided message (the queue row is `queue_row`)."""
    tenant_id = tenant.tenant_id
    send = producer.send
    sends: list[Awaitable[None]] = [
        send(
            Topic.SESSION_EVENTS,
            tenant_id,
            session_event(record, verdict),
            timeout=SEND_TIMEOUT_S,
        )
    ]
    if verdict.alerts:
        sends += alert_sends(producer, tenant, verdict.alerts, verdict)
    if verdict.outcome is Outcome.HELD:
        # same schema as the source: the original bytes, untouched
        sends.append(
            producer.send_raw(Topic.HELD, tenant_id.encode(), event.raw, timeout=SEND_TIMEOUT_S)
        )
        if verdict.notice:
            notice = notice_record(record, verdict, tenant)
            sends.append(send(Topic.OUTBOUND, tenant_id, notice, timeout=SEND_TIMEOUT_S))
    else:
        sends.append(
            send(Topic.ADMITTED, tenant_id, admitted(record, verdict), timeout=SEND_TIMEOUT_S)
        )
        sends.append(send(Topic.USAGE, tenant_id, usage(record, verdict), timeout=SEND_TIMEOUT_S))
    return sends


def queue_row(
    held: HeldQueue, event: Event, record: InboundMessage, verdict: Verdict
) -> Awaitable[None]:
    """A held message's row in the overage queue: the original bytes."""
    return held.put(
        record["tenant_id"],
        verdict.event_id,
        conversation(record),
        verdict.period_start_ms,
        event.raw,
    )


def alert_sends(
    producer: Producer, tenant: Tenant, alerts: Sequence[Alert], source: Verdict | Release
) -> list[Awaitable[None]]:
    if isinstance(source, Verdict):
        at, plan = source.metered_at_ms, source.plan_id
    else:
        at, plan = source.released_at_ms, source.plan_id
    return [
        producer.send(
            Topic.ALERTS,
            tenant.tenant_id,
            alert_record(
                tenant,
                alert,
                plan_id=plan,
                period_start_ms=source.period_start_ms,
                period_end_ms=source.period_end_ms,
                created_at_ms=at,
            ),
            timeout=SEND_TIMEOUT_S,
        )
        for alert in alerts
    ]


async def send_all(sends: Iterable[Awaitable[None]]) -> None:
    """Await every send (all are started), then raise the first failure."""
    results = await asyncio.gather(*sends, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
