"""Fakes and builders for the inbound mail tests: a directory of email bindings, real mails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from common.directory import Binding, Tenant
from tests.tenants import a_tenant

DOMAIN = "agents.example.test"
TENANT_A = "0b7c2f5e-8a51-4a8e-9d0e-3f1c2b4a5d6e"
TENANT_B = "5d2e9a10-1f3b-4c6d-8e7f-9a0b1c2d3e4f"
TENANT_GONE = "c0ffee00-0000-4000-8000-000000000009"


def email_tenant(
    tenant_id: str, local_id: str, *, status: str = "active", **settings: Any
) -> Tenant:
    binding = Binding(
        tenant_id=tenant_id,
        channel="email",
        external_id=local_id,
        secret_hash=b"",
        credentials={},
        settings=settings,
    )
    return a_tenant(tenant_id, agent_id=local_id, status=status, bindings=(binding,))


class FakeMailDirectory:
    """`by_binding` over a fixed list of tenants (the lookup `MailHandler` uses)."""

    def __init__(self, tenants: Iterable[Tenant], *, loaded: bool = True) -> None:
        self._tenants = {t.tenant_id: t for t in tenants}
        self.loaded = asyncio.Event()
        if loaded:
            self.loaded.set()

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def by_binding(self, channel: str, external_id: str) -> tuple[Tenant, Binding] | None:
        for tenant in self._tenants.values():
            for binding in tenant.bindings:
                if (binding.channel, binding.external_id) == (channel, external_id):
                    return tenant, binding
        return None


def mail(
    text: str = "Hello agent, what are your opening hours?",
    *,
    sender: str = "Alice Example <alice@example.com>",
    to: str = f"agent-acme@{DOMAIN}",
    subject: str = "Opening hours",
    message_id: str | None = "<m1.alice@example.com>",
    in_reply_to: str | None = None,
    references: str | None = None,
    html: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A message as a mail client writes it (`EmailMessage`, policy default)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def new_message_id() -> str:
    return make_msgid(domain="example.com")
