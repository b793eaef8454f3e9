"""What metering tells people: the tenant owner's quota alerts, the end user's notice.

- `alert_record`: a QuotaAlert for quota.alerts (the email to the owner is sent from it by
  `streams.agents.alert_mail`). `alert_id` is `<tenant_id>:<period_start ms>:<level>`, so a
  re-sent alert is recognisably the same one.
- `notice_record`: an OutboundReply for messages.outbound, sent once per conversation and
  period when a message is held, so the end user knows the agent did not just ignore them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from common.directory import Tenant
from streams.metering import Alert, Level, Verdict

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
) -> dict[str, Any]:
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


def notice_record(record: Mapping[str, Any], verdict: Verdict, tenant: Tenant) -> dict[str, Any]:
    """The polite notice answering the held inbound `record`."""
    return {
        "event_id": f"notice:{record['event_id']}",
        "in_reply_to": record["event_id"],
        "tenant_id": record["tenant_id"],
        "channel": record["channel"],
        "conversation_id": record["conversation_id"],
        "text": NOTICE_TEXT,
        "reply_route": dict(record.get("reply_route") or {}),
        "agent_id": tenant.agent_id,
        "gateway_response_id": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "created_at": verdict.metered_at_ms,
    }
