"""Alert emails through a real SMTP relay on loopback (aiosmtpd), with a fake ledger."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator, Mapping
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from common.errors import InvalidEvent, RetryableError
from common.settings import Settings
from devstack._proc import free_port
from streams.alerts.mailer import AlertMailer, SmtpMailer, alert_email

ALERT = {
    "alert_id": "t1:1793577600000:hard",
    "tenant_id": "t1",
    "plan_id": "individual",
    "level": "hard",
    "used": 1000,
    "limit": 1000,
    "message": "You've hit your limit. Upgrade to Business for 10,000 messages a month.",
}


class Relay:
    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.reply = "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        if self.reply.startswith("250"):
            self.received.append(message)
        return self.reply


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Relay, int]]:
    handler = Relay()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        yield handler, port
    finally:
        await asyncio.to_thread(controller.stop)


class Ledger:
    def __init__(self, owner: str | None = "owner@acme.test") -> None:
        self.owner = owner
        self.emailed: dict[str, str] = {}

    async def owner_to_mail(self, alert: Mapping[str, Any]) -> str | None:
        if alert["alert_id"] in self.emailed:
            return None
        if self.owner is None:
            raise InvalidEvent("tenant has no owner email")
        return self.owner

    async def mark_emailed(self, alert_id: str, to: str) -> None:
        self.emailed[alert_id] = to


def test_the_email_says_what_the_alert_says() -> None:
    message = alert_email(ALERT, "owner@acme.test", Settings(mail_domain="mail.test"))
    assert message["To"] == "owner@acme.test"
    assert message["From"] == "OpenClaw <notifications@mail.test>"
    assert message["Subject"] == "You've hit your message limit"
    assert message["X-OpenClaw-Alert-Id"] == ALERT["alert_id"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert "Upgrade to Business" in message.get_content()
    again = alert_email(ALERT, "owner@acme.test", Settings(mail_domain="mail.test"))
    assert again["Message-ID"] == message["Message-ID"]  # a resend is the same mail


async def test_each_alert_is_mailed_once(relay: tuple[Relay, int]) -> None:
    handler, port = relay
    ledger = Ledger()
    mailer = AlertMailer(Settings(), ledger, SmtpMailer("127.0.0.1", port))
    assert await mailer.deliver(ALERT) is True
    assert await mailer.deliver(ALERT) is False  # a replay of quota.alerts
    [message] = handler.received
    assert message["To"] == "owner@acme.test"
    assert ledger.emailed == {ALERT["alert_id"]: "owner@acme.test"}


async def test_a_refused_recipient_is_invalid_a_deferral_is_retryable(
    relay: tuple[Relay, int],
) -> None:
    handler, port = relay
    smtp = SmtpMailer("127.0.0.1", port)
    with pytest.raises(InvalidEvent, match="refused the recipient"):
        await smtp.send(alert_email(ALERT, "nobody@acme.test", Settings()))
    handler.reply = "451 try again later"
    with pytest.raises(RetryableError, match="deferred"):
        await smtp.send(alert_email(ALERT, "owner@acme.test", Settings()))
    handler.reply = "554 rejected"
    with pytest.raises(InvalidEvent, match="refused the mail"):
        await smtp.send(alert_email(ALERT, "owner@acme.test", Settings()))


async def test_a_relay_that_is_down_is_retryable() -> None:
    smtp = SmtpMailer("127.0.0.1", free_port(), timeout=5)
    with pytest.raises(RetryableError, match="relay unavailable"):
        await smtp.send(alert_email(ALERT, "owner@acme.test", Settings()))


async def test_a_tenant_without_owner_is_invalid() -> None:
    mailer = AlertMailer(Settings(), Ledger(owner=None), SmtpMailer("127.0.0.1", 9))
    with pytest.raises(InvalidEvent, match="no owner"):
        await mailer.deliver(ALERT)
