"""Email end to end on the real broker, database and OpenClaw gateway.

Mail sent with smtplib to `agent-<id>@<MAIL_DOMAIN>` travels smtp -> metering -> forwarder ->
gateway -> delivery -> the SMTP relay (a local aiosmtpd sink). The reply is threaded
(`In-Reply-To`, `References`, `Re:`); the customer's answer to it, quoting it, lands in
the same session (the stub model counts the turns: "#2") and in PostgreSQL. A tenant in
approve mode gets a draft instead, which `openclaw-saas email approve <id>` sends.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import smtplib
import subprocess
import sys
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from common.settings import Settings
from control.email_admin import bind_email, list_drafts
from control.processes import ServiceError, ServiceGroup
from control.tenants import NewTenant, create_tenant
from devstack import Stack
from devstack._proc import free_port, port_open
from devstack.probes import eventually
from devstack.smtp_relay import Relayed, RelaySink

pytestmark = pytest.mark.integration
SERVICES = ("smtp", "streams", "forwarder", "delivery")
DOMAIN = "agents.example.test"


def _tenant(settings: Settings, stack: Stack, agent: str, reply_mode: str) -> dict[str, Any]:
    assert stack.gateway is not None
    name = f"mail-{reply_mode}-{secrets.token_hex(3)}"
    tenant = create_tenant(
        settings,
        NewTenant(
            name=name,
            plan="business",
            owner_email=f"{name}@example.test",
            telegram_bot_token=None,
            gateway_url=stack.gateway.base_url,
            gateway_token=stack.gateway.token,
            gateway_agent_id=agent,
        ),
    )
    return bind_email(settings, tenant["agent_id"], reply_mode=reply_mode)


def _mail(
    sender: str, to: str, text: str, subject: str, msg_id: str, parent: Relayed | None = None
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = msg_id
    if parent is not None:  # what a mail client does when answering `parent`
        msg["In-Reply-To"] = parent.header("Message-ID")
        msg["References"] = f"{parent.header('References')} {parent.header('Message-ID')}"
    msg.set_content(text)
    return msg


def _send(settings: Settings, msg: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=30) as smtp:
        assert smtp.send_message(msg) == {}  # 250 for every recipient


async def _rows(settings: Settings, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, row_factory=dict_row
    ) as conn:
        return await (await conn.execute(sql, params)).fetchall()


def _quote(text: str) -> str:
    return "".join(f"> {line}\n" for line in text.splitlines())


def _to(address: str) -> Callable[[list[Relayed]], list[Relayed]]:
    """The relayed mails addressed to `address` (also a `wait_for` predicate)."""
    return lambda got: [m for m in got if m.rcpt_tos == (address,)]


async def test_email_round_trip_threads_and_approves(
    settings: Settings, stack: Stack, tmp_path: Path
) -> None:
    sink = RelaySink()
    relay_port = sink.start()
    settings = Settings.from_env(
        {},
        **{
            **vars(settings),
            "mail_domain": DOMAIN,
            "smtp_port": free_port(),
            "smtp_relay_port": relay_port,
        },
    )
    auto = _tenant(settings, stack, "tenant-a", "auto")
    approve = _tenant(settings, stack, "tenant-b", "approve")
    alice, bob = "alice@customer.test", "bob@customer.test"
    group = ServiceGroup(settings, SERVICES, tmp_path / "logs")

    async def smtp_ready() -> bool:
        group.check_alive()
        return port_open(settings.smtp_port)

    try:
        await asyncio.to_thread(group.start)
        await eventually(smtp_ready, timeout=120, what="the SMTP server to listen")
        first = _mail(
            alice, auto["address"], "Are you open?", "Opening hours", "<a1@customer.test>"
        )
        other = _mail(bob, approve["address"], "Need a quote", "Quote", "<b1@customer.test>")
        await asyncio.to_thread(_send, settings, first)
        await asyncio.to_thread(_send, settings, other)

        try:
            [reply] = _to(alice)(await sink.wait_for_async(_to(alice), timeout=300))
        except TimeoutError:
            raise ServiceError(
                "no reply; logs:\n" + "\n".join(group.log_tail(s) for s in SERVICES)
            ) from None
        assert reply.mail_from == auto["address"]
        assert reply.header("From") == auto["address"]
        assert reply.header("Subject") == "Re: Opening hours"
        assert reply.header("In-Reply-To") == "<a1@customer.test>"
        assert reply.header("References") == "<a1@customer.test>"
        assert reply.header("Auto-Submitted") == "auto-replied"
        assert reply.text == "STUB-REPLY #1 to: Opening hours\n\nAre you open?"

        answer = _mail(
            alice,
            auto["address"],
            "And on Sunday?\n\nOn Mon, agent wrote:\n" + _quote(reply.text),
            "Re: Opening hours",
            "<a2@customer.test>",
            parent=reply,
        )
        await asyncio.to_thread(_send, settings, answer)
        got = await sink.wait_for_async(lambda got: len(_to(alice)(got)) == 2, timeout=240)
        second = _to(alice)(got)[1]
        assert second.text == "STUB-REPLY #2 to: And on Sunday?"  # same gateway session
        assert second.header("In-Reply-To") == "<a2@customer.test>"
        assert second.header("References") == (
            f"<a1@customer.test> {reply.header('Message-ID')} <a2@customer.test>"
        )
        assert second.header("Subject") == "Re: Opening hours"

        async def session() -> list[dict[str, Any]] | None:
            rows = await _rows(
                settings,
                "SELECT s.session_id, s.channel, s.message_count, m.role, m.content"
                " FROM sessions s JOIN messages m USING (tenant_id, session_id)"
                " WHERE s.tenant_id = %s::uuid ORDER BY m.created_at, m.role DESC",
                auto["tenant_id"],
            )
            return rows if len(rows) == 4 and rows[0]["message_count"] == 4 else None

        rows = await eventually(session, timeout=60, what="the email session in PostgreSQL")
        assert {(r["session_id"], r["channel"]) for r in rows} == {
            ("email:<a1@customer.test>", "email")
        }
        assert [r["role"] for r in rows] == ["user", "assistant", "user", "assistant"]
        assert rows[2]["content"] == "And on Sunday?"

        async def draft() -> list[dict[str, Any]]:
            return await asyncio.to_thread(list_drafts, settings, tenant=approve["tenant_id"])

        [pending] = await eventually(draft, timeout=240, what="a draft for the approve tenant")
        assert pending["to_address"] == bob
        assert pending["in_reply_to"] == "<b1@customer.test>"
        assert pending["body"] == "STUB-REPLY #1 to: Quote\n\nNeed a quote"
        assert _to(bob)(sink.received) == []  # nothing sent before approval

        env = {**os.environ, **settings.to_env()}
        cli = [sys.executable, "-m", "control.cli", "email", "approve", str(pending["id"])]
        done = await asyncio.to_thread(subprocess.run, cli, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
        assert json.loads(done.stdout)["status"] == "sent"
        [approved] = _to(bob)(await sink.wait_for_async(_to(bob), timeout=30))
        assert approved.mail_from == approve["address"]
        assert approved.header("In-Reply-To") == "<b1@customer.test>"
        assert approved.header("Subject") == "Re: Quote"
        assert approved.text == pending["body"]
        again = await asyncio.to_thread(subprocess.run, cli, env=env, capture_output=True)
        assert again.returncode == 1  # already sent: not sent twice
        assert len(_to(bob)(sink.received)) == 1
    finally:
        codes = await asyncio.to_thread(group.stop)
        sink.stop()
    assert all(code in (0, -15) for code in codes.values()), codes
