"""Email replies: threading headers, relay answers, reply modes, against an aiosmtpd sink."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agents_bridge.deliver.email import EmailSender, OutgoingMail, reply_mail, reply_subject
from agents_bridge.deliver.log import FAILED, SENT
from common.directory import Binding, Tenant
from common.errors import InvalidEvent
from common.retry import RetryPolicy
from common.settings import Settings
from devstack._proc import free_port
from devstack.smtp_relay import RelaySink
from tests.agents_bridge.bridge_fakes import (
    FakeDeliveryLog,
    FakeDirectory,
    outbound_event,
    tenant,
)
from tests.fakes import FakeClock

DOMAIN = "agents.example.test"
AGENT = f"agent-acme@{DOMAIN}"
ROUTE = {
    "subject": "Opening hours",
    "message_id": "<m2@example.com>",
    "references": "<m1@example.com> <r1@agents.example.test>",
    "from_address": "alice@example.com",
    "to_address": AGENT,
}


def _email_tenant(tenant_id: str, reply_mode: str | None = None) -> Tenant:
    settings = {"reply_mode": reply_mode} if reply_mode else {}
    binding = Binding(tenant_id, "email", "acme", b"", {}, settings)
    return dataclasses.replace(tenant(tenant_id, bot_token=None), bindings=(binding,))


def _reply(text: str = "We open at 9.", **route: str) -> dict[str, Any]:
    event = outbound_event(
        text,
        event_id="reply:email:acme:abc",
        tenant_id="t-1",
        channel="email",
        conversation_id="<m1@example.com>",
        reply_route={**ROUTE, **route},
    )
    return event.value


@dataclass
class FakeDrafts:
    saved: list[dict[str, Any]] = field(default_factory=list)

    async def save(
        self, *, tenant_id: str, event_id: str, conversation_id: str, mail: OutgoingMail
    ) -> int:
        self.saved.append({"tenant_id": tenant_id, "event_id": event_id, "mail": mail})
        return len(self.saved)


@dataclass
class Rig:
    sink: RelaySink
    sender: EmailSender
    drafts: FakeDrafts
    clock: FakeClock


@pytest.fixture
def rig() -> Iterator[Rig]:
    sink = RelaySink()
    port = sink.start()
    settings = Settings(mail_domain=DOMAIN, smtp_relay_port=port, sender_attempts=3)
    directory = FakeDirectory()
    directory.add(_email_tenant("t-1"))
    directory.add(_email_tenant("t-approve", "approve"))
    directory.add(tenant("t-nomail"))
    clock = FakeClock()
    drafts = FakeDrafts()
    policy = RetryPolicy(attempts=3, clock=clock, rand=lambda: 0.5)
    sender = EmailSender(settings, directory=directory, drafts=drafts, policy=policy)
    try:
        yield Rig(sink, sender, drafts, clock)
    finally:
        sink.stop()


def test_reply_headers_thread_the_conversation() -> None:
    mail = reply_mail(_reply(), mail_domain=DOMAIN)
    msg = mail.to_message()
    assert str(msg["From"]) == AGENT
    assert str(msg["To"]) == "alice@example.com"
    assert str(msg["Subject"]) == "Re: Opening hours"
    assert str(msg["In-Reply-To"]) == "<m2@example.com>"
    assert str(msg["References"]) == ("<m1@example.com> <r1@agents.example.test> <m2@example.com>")
    assert str(msg["Auto-Submitted"]) == "auto-replied"
    assert str(msg["Message-ID"]).endswith(f"@{DOMAIN}>")
    assert msg.get_content().strip() == "We open at 9."
    again = reply_mail(_reply(), mail_domain=DOMAIN)
    assert again.message_id == mail.message_id  # a redelivered reply keeps its Message-ID


def test_reply_goes_to_reply_to_when_given() -> None:
    mail = reply_mail(_reply(reply_to="help@example.com"), mail_domain=DOMAIN)
    assert mail.to_address == "help@example.com"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Opening hours", "Re: Opening hours"),
        ("Re: Opening hours", "Re: Opening hours"),
        ("RE:Opening", "RE:Opening"),
        ("AW: Öffnungszeiten", "AW: Öffnungszeiten"),
        ("", "Re: your message"),
        ("multi\n  line", "Re: multi line"),
    ],
)
def test_reply_subject(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(
    "route",
    [
        {"from_address": "", "reply_to": ""},
        {"to_address": ""},
        {"from_address": "a b c@example.com"},
        {"from_address": "a@example.com\r\nBcc: victim@example.com"},
    ],
)
def test_unsendable_route_is_invalid(route: dict[str, str]) -> None:
    with pytest.raises(InvalidEvent):
        reply_mail(_reply(**route), mail_domain=DOMAIN)


async def test_auto_mode_sends_through_the_relay(rig: Rig) -> None:
    await rig.sender.deliver(_reply())
    [got] = rig.sink.received
    assert got.mail_from == AGENT
    assert got.rcpt_tos == ("alice@example.com",)
    assert got.header("In-Reply-To") == "<m2@example.com>"
    assert got.header("Subject") == "Re: Opening hours"
    assert got.text == "We open at 9."
    assert rig.drafts.saved == []


async def test_temporary_refusal_is_retried(rig: Rig) -> None:
    rig.sink.refuse_next("451 4.3.0 try later", times=2)
    await rig.sender.deliver(_reply())
    assert len(rig.sink.received) == 1
    assert rig.sink.refused == 2
    assert len(rig.clock.sleeps) == 2


async def test_permanent_refusal_is_invalid(rig: Rig) -> None:
    rig.sink.refuse_next("550 5.7.1 not allowed")
    with pytest.raises(InvalidEvent, match="email_550"):
        await rig.sender.deliver(_reply())
    assert rig.clock.sleeps == []


async def test_relay_down_is_dead_lettered_after_the_attempts(rig: Rig) -> None:
    settings = Settings(mail_domain=DOMAIN, smtp_relay_port=free_port())
    policy = RetryPolicy(attempts=3, clock=rig.clock, rand=lambda: 0.5)
    directory = FakeDirectory()
    directory.add(_email_tenant("t-1"))
    sender = EmailSender(settings, directory=directory, drafts=rig.drafts, policy=policy)
    with pytest.raises(InvalidEvent, match="email_unavailable: email_connection"):
        await sender.deliver(_reply())
    assert len(rig.clock.sleeps) == 2


async def test_approve_mode_keeps_a_draft(rig: Rig) -> None:
    await rig.sender.deliver({**_reply(), "tenant_id": "t-approve"})
    [draft] = rig.drafts.saved
    assert draft["tenant_id"] == "t-approve"
    assert draft["event_id"] == "reply:email:acme:abc"
    assert draft["mail"].in_reply_to == "<m2@example.com>"
    assert rig.sink.received == []


@pytest.mark.parametrize(
    ("tenant_id", "reason"), [("t-x", "unknown_tenant"), ("t-nomail", "no_email_binding")]
)
async def test_tenant_without_email_is_invalid(rig: Rig, tenant_id: str, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        await rig.sender.deliver({**_reply(), "tenant_id": tenant_id})


async def test_a_reply_recorded_as_sent_is_never_mailed_twice(rig: Rig) -> None:
    """A delivery process killed after the mail went out but before its offset was
    committed: the next process reads the outbound_deliveries row and sends nothing."""
    log = FakeDeliveryLog()
    directory = FakeDirectory()
    directory.add(_email_tenant("t-1"))
    settings = Settings(mail_domain=DOMAIN, smtp_relay_port=rig.sink.port)
    first = EmailSender(settings, directory=directory, drafts=rig.drafts, deliveries=log)
    await first.deliver(_reply())
    [row] = log.rows.values()
    assert (row.channel, row.status, row.chunk, row.chunks) == ("email", SENT, 0, 1)
    assert row.provider_message_id == reply_mail(_reply(), mail_domain=DOMAIN).message_id
    restarted = EmailSender(settings, directory=directory, drafts=rig.drafts, deliveries=log)
    await restarted.deliver(_reply())
    assert len(rig.sink.received) == 1


async def test_a_refused_mail_is_recorded_as_failed_with_the_reason(rig: Rig) -> None:
    log = FakeDeliveryLog()
    directory = FakeDirectory()
    directory.add(_email_tenant("t-1"))
    settings = Settings(mail_domain=DOMAIN, smtp_relay_port=rig.sink.port)
    sender = EmailSender(settings, directory=directory, drafts=rig.drafts, deliveries=log)
    rig.sink.refuse_next("550 5.7.1 not allowed")
    with pytest.raises(InvalidEvent, match="email_550"):
        await sender.deliver(_reply())
    [row] = log.rows.values()
    assert row.status == FAILED and row.error is not None and "email_550" in row.error
    await sender.deliver(_reply())  # a failed row does not stop a later attempt
    assert len(rig.sink.received) == 1
