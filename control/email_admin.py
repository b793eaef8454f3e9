"""Email administration: bind an agent address to a tenant, review and send drafts.

    openclaw-saas email bind TENANT [--address agent-<id>@MAIL_DOMAIN] [--reply-mode MODE]
    openclaw-saas email drafts [--tenant TENANT] [--status pending|sent|discarded|all]
    openclaw-saas email approve ID         send a draft through the SMTP relay
    openclaw-saas email discard ID         drop a draft

Binding: one `channel_bindings` row per tenant (channel 'email', external_id = the `<id>`
of `agent-<id>@MAIL_DOMAIN`, default the tenant's agent id; settings
`{"reply_mode": "auto" | "approve"}`). Binding again changes the address or the reply
mode; an address bound to another tenant is refused.

Approving sends the stored draft under a row lock and marks it sent in the same
transaction: two operators approving at once send it once; a relay refusal leaves it
pending (exit 1, with the relay's answer). A crash between the relay's 250 and the commit
leaves it pending although sent; approving again resends it with the same Message-ID.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from agents_bridge.deliver.email import REPLY_MODES, send_blocking
from agents_bridge.deliver.email_drafts import draft_mail
from common.errors import InvalidEvent, RetryableError
from common.settings import Settings
from ingress.smtp.handler import AGENT_ID, agent_address, agent_id_of

CHANNEL = "email"
_TENANT_SQL = "SELECT id::text AS id, agent_id FROM tenants WHERE id::text = %s OR agent_id = %s"
_LIST_DRAFTS = """
SELECT id, tenant_id::text AS tenant_id, conversation_id, from_address, to_address, subject,
       in_reply_to, message_id, body, status, created_at::text AS created_at,
       decided_at::text AS decided_at
FROM email_drafts
WHERE (%(tenant)s::text IS NULL OR tenant_id IN
        (SELECT id FROM tenants WHERE id::text = %(tenant)s OR agent_id = %(tenant)s))
  AND (%(status)s::text = 'all' OR status = %(status)s)
ORDER BY id
"""
_LOCK_DRAFT = """
SELECT id, tenant_id::text AS tenant_id, from_address, to_address, subject, in_reply_to,
       thread_references, message_id, body, status
FROM email_drafts WHERE id = %s FOR UPDATE
"""


class EmailAdminError(ValueError):
    """Operator input or state that makes the command impossible (message says why)."""


def bind_email(
    settings: Settings, tenant: str, *, address: str | None = None, reply_mode: str | None = None
) -> dict[str, Any]:
    """Create or change the tenant's email binding; returns its address and reply mode."""
    if reply_mode is not None and reply_mode not in REPLY_MODES:
        raise EmailAdminError(f"reply mode must be one of {', '.join(REPLY_MODES)}")
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn, conn.transaction():
        row = conn.execute(_TENANT_SQL, (tenant, tenant)).fetchone()
        if row is None:
            raise EmailAdminError(f"no tenant {tenant!r}")
        existing = conn.execute(
            "SELECT external_id, settings FROM channel_bindings"
            " WHERE tenant_id = %s AND channel = 'email' FOR UPDATE",
            (row["id"],),
        ).fetchone()
        local_id = _local_id(settings, address) if address else None
        local_id = local_id or (existing["external_id"] if existing else row["agent_id"])
        options = dict(existing["settings"]) if existing else {}
        options["reply_mode"] = reply_mode or options.get("reply_mode") or "auto"
        try:
            if existing:
                conn.execute(
                    "UPDATE channel_bindings SET external_id = %s, settings = %s"
                    " WHERE tenant_id = %s AND channel = 'email'",
                    (local_id, Jsonb(options), row["id"]),
                )
            else:
                conn.execute(
                    "INSERT INTO channel_bindings (tenant_id, channel, external_id, settings)"
                    " VALUES (%s, 'email', %s, %s)",
                    (row["id"], local_id, Jsonb(options)),
                )
        except psycopg.errors.UniqueViolation as err:
            raise EmailAdminError(
                f"{agent_address(local_id, settings.mail_domain)} belongs to another tenant"
            ) from err
    return {
        "tenant_id": row["id"],
        "address": agent_address(local_id, settings.mail_domain),
        "reply_mode": options["reply_mode"],
    }


def _local_id(settings: Settings, address: str) -> str:
    """`<id>` from `agent-<id>@MAIL_DOMAIN` or from a bare `<id>`."""
    if "@" in address:
        local_id = agent_id_of(address, settings.mail_domain)
        if local_id is None:
            raise EmailAdminError(f"the address must be agent-<id>@{settings.mail_domain}")
        return local_id
    local_id = address.lower().removeprefix("agent-")
    if not AGENT_ID.fullmatch(local_id):
        raise EmailAdminError("the id must be 1-64 of a-z 0-9 . _ - (starting with a-z 0-9 _)")
    return local_id


def list_drafts(
    settings: Settings, *, tenant: str | None = None, status: str = "pending"
) -> list[dict[str, Any]]:
    """Drafts, oldest first; `status` "all" lists every status."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        return conn.execute(_LIST_DRAFTS, {"tenant": tenant, "status": status}).fetchall()


def approve_draft(settings: Settings, draft_id: int) -> dict[str, Any]:
    """Send the draft through the relay and mark it sent; raises `EmailAdminError`."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn, conn.transaction():
        row = _pending(conn, draft_id)
        message = draft_mail(row).to_message()
        try:
            send_blocking(
                message,
                settings.smtp_relay_host,
                settings.smtp_relay_port,
                local_hostname=settings.mail_domain,
            )
        except (RetryableError, InvalidEvent) as err:
            raise EmailAdminError(f"the relay did not take draft {draft_id}: {err.reason}") from err
        conn.execute(
            "UPDATE email_drafts SET status = 'sent', decided_at = NOW() WHERE id = %s",
            (draft_id,),
        )
    return {
        "id": draft_id,
        "status": "sent",
        "to": row["to_address"],
        "message_id": row["message_id"],
    }


def discard_draft(settings: Settings, draft_id: int) -> dict[str, Any]:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn, conn.transaction():
        _pending(conn, draft_id)
        conn.execute(
            "UPDATE email_drafts SET status = 'discarded', decided_at = NOW() WHERE id = %s",
            (draft_id,),
        )
    return {"id": draft_id, "status": "discarded"}


def _pending(conn: psycopg.Connection[dict[str, Any]], draft_id: int) -> dict[str, Any]:
    row = conn.execute(_LOCK_DRAFT, (draft_id,)).fetchone()
    if row is None:
        raise EmailAdminError(f"no draft {draft_id}")
    if row["status"] != "pending":
        raise EmailAdminError(f"draft {draft_id} is already {row['status']}")
    return row
