"""The SMTP server's answers, spoken to with smtplib over loopback (aiosmtpd Controller).

250 only with the event produced; 550 at RCPT for other domains and unknown agents (never
a relay); 552 for oversized mail (announced with SIZE or not); 451 when Kafka does not
take the event or the directory is not loaded; 554 for unreadable MIME. Every refusal is
counted and none of them produces anything.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY

from common.settings import Settings
from devstack._proc import free_port
from ingress.smtp.handler import MailHandler, agent_id_of
from ingress.smtp.server import AgentSMTP, smtp_options
from tests.fakes import FakeProducer
from tests.ingress.smtp.smtp_fakes import (
    DOMAIN,
    TENANT_A,
    TENANT_B,
    TENANT_GONE,
    FakeMailDirectory,
    email_tenant,
    mail,
)

MAX_BYTES = 8 * 1024


class _Controller(Controller):
    def factory(self) -> AgentSMTP:
        return AgentSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Server:
    port: int
    producer: FakeProducer
    directory: FakeMailDirectory

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)


@pytest.fixture
def server() -> Iterator[Server]:
    settings = Settings.from_env({}, mail_domain=DOMAIN, smtp_max_message_bytes=MAX_BYTES)
    producer = FakeProducer()
    directory = FakeMailDirectory(
        [
            email_tenant(TENANT_A, "acme"),
            email_tenant(TENANT_B, "bravo"),
            email_tenant(TENANT_GONE, "gone", status="deleted"),
        ]
    )
    handler = MailHandler(settings, producer=producer, directory=directory, now_ms=lambda: 1000)
    options = smtp_options(settings)
    greeting = options.pop("hostname")  # Controller's `hostname` is where it listens
    port = free_port()
    controller = _Controller(
        handler, hostname="127.0.0.1", port=port, server_hostname=greeting, **options
    )
    controller.start()
    try:
        yield Server(port, producer, directory)
    finally:
        controller.stop()


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"channel": "email", **labels}) or 0.0


def test_known_agent_gets_250_and_one_event(server: Server) -> None:
    msg = mail("What are your opening hours?", to=f"Acme <agent-acme@{DOMAIN}>")
    before = _count("ingress_requests_total", outcome="accepted")
    with server.client() as smtp:
        refused = smtp.send_message(msg, to_addrs=[f"Agent-ACME@{DOMAIN.upper()}"])
    assert refused == {}
    [sent] = server.producer.sent
    assert sent.key == TENANT_A
    record = sent.decoded()
    assert record["event_id"].startswith("email:acme:")
    assert record["channel"] == "email"
    assert record["conversation_id"] == "<m1.alice@example.com>"
    assert record["sender_id"] == "alice@example.com"
    assert record["sender_name"] == "Alice Example"
    assert record["text"] == "Opening hours\n\nWhat are your opening hours?"
    assert record["channel_message_id"] == "<m1.alice@example.com>"
    assert record["reply_route"] == {
        "subject": "Opening hours",
        "message_id": "<m1.alice@example.com>",
        "references": "",
        "from_address": "alice@example.com",
        "to_address": f"agent-acme@{DOMAIN}",
    }
    assert _count("ingress_requests_total", outcome="accepted") == before + 1


def test_a_reply_joins_its_thread(server: Server) -> None:
    msg = mail(
        "Thanks!\n\nOn Mon, Agent wrote:\n> We open at 9.\n",
        subject="Re: Opening hours",
        message_id="<m2@example.com>",
        in_reply_to="<r1@agents.example.test>",
        references="<m1.alice@example.com> <r1@agents.example.test>",
    )
    with server.client() as smtp:
        smtp.send_message(msg, to_addrs=[f"agent-acme@{DOMAIN}"])
    record = server.producer.sent[0].decoded()
    assert record["conversation_id"] == "<m1.alice@example.com>"
    assert record["text"] == "Thanks!"  # no subject line: the thread has one already
    assert record["reply_route"]["references"] == "<m1.alice@example.com> <r1@agents.example.test>"
    assert record["reply_route"]["message_id"] == "<m2@example.com>"


def test_two_agents_in_one_mail_get_one_event_each(server: Server) -> None:
    with server.client() as smtp:
        smtp.send_message(
            mail("hi both"), to_addrs=[f"agent-acme@{DOMAIN}", f"agent-bravo@{DOMAIN}"]
        )
    assert sorted(s.key for s in server.producer.sent) == sorted([TENANT_A, TENANT_B])


@pytest.mark.parametrize(
    ("rcpt", "reason"),
    [
        ("victim@gmail.com", "relay_denied"),
        (f"someone@{DOMAIN}", "relay_denied"),
        (f"agent-acme@sub.{DOMAIN}", "relay_denied"),
        (f"agent-nobody@{DOMAIN}", "unknown_recipient"),
        (f"agent-gone@{DOMAIN}", "unknown_recipient"),
    ],
)
def test_other_recipients_get_550_at_rcpt(server: Server, rcpt: str, reason: str) -> None:
    before = _count("ingress_rejections_total", reason=reason)
    with server.client() as smtp:
        smtp.ehlo()
        assert smtp.mail("alice@example.com")[0] == 250
        code, _text = smtp.rcpt(rcpt)
        assert code == 550
        smtp.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("alice@example.com", [rcpt], bytes(mail()))
    assert server.producer.attempts == 0
    assert _count("ingress_rejections_total", reason=reason) == before + 2


def test_oversized_mail_gets_552(server: Server) -> None:
    big = mail(("x" * 70 + "\n") * (MAX_BYTES // 70 + 10))
    before = _count("ingress_rejections_total", reason="too_large")
    with server.client() as smtp:  # smtplib announces SIZE=: refused at MAIL FROM
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            smtp.send_message(big, to_addrs=[f"agent-acme@{DOMAIN}"])
        assert caught.value.smtp_code == 552
    with server.client() as smtp:  # no SIZE: the data is read, then refused
        smtp.ehlo()
        smtp.mail("alice@example.com")
        smtp.rcpt(f"agent-acme@{DOMAIN}")
        code, _text = smtp.data(big.as_bytes(policy=big.policy.clone(linesep="\r\n")))
        assert code == 552
    assert server.producer.attempts == 0
    assert _count("ingress_rejections_total", reason="too_large") == before + 2


def test_kafka_down_gets_451_and_the_retry_succeeds(server: Server) -> None:
    server.producer.down = True
    with server.client() as smtp:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            smtp.send_message(mail(), to_addrs=[f"agent-acme@{DOMAIN}"])
        assert caught.value.smtp_code == 451
    assert server.producer.sent == []
    server.producer.down = False
    with server.client() as smtp:
        smtp.send_message(mail(), to_addrs=[f"agent-acme@{DOMAIN}"])
    assert len(server.producer.sent) == 1


def test_directory_not_loaded_gets_451(server: Server) -> None:
    server.directory.loaded.clear()
    with server.client() as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.com")
        assert smtp.rcpt(f"agent-acme@{DOMAIN}")[0] == 451


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"Subject: no sender\r\n\r\nhello\r\n", "no_sender"),
        (
            b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\nnope\r\n',
            "malformed_mime",
        ),
    ],
)
def test_malformed_mime_gets_554(server: Server, raw: bytes, reason: str) -> None:
    before = _count("ingress_rejections_total", reason=reason)
    with server.client() as smtp:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            smtp.sendmail("a@example.com", [f"agent-acme@{DOMAIN}"], raw)
        assert caught.value.smtp_code == 554
    assert server.producer.attempts == 0
    assert _count("ingress_rejections_total", reason=reason) == before + 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"Auto-Submitted": "auto-replied"}},
        {"sender": f"Other agent <agent-bravo@{DOMAIN}>"},
    ],
)
def test_machine_mail_is_accepted_and_dropped(server: Server, kwargs: dict[str, Any]) -> None:
    with server.client() as smtp:
        assert (
            smtp.send_message(mail("Out of office", **kwargs), to_addrs=[f"agent-acme@{DOMAIN}"])
            == {}
        )
    assert server.producer.attempts == 0


def test_agent_id_of() -> None:
    assert agent_id_of(f"agent-acme@{DOMAIN}", DOMAIN) == "acme"
    assert agent_id_of(f"AGENT-Acme@{DOMAIN}.", DOMAIN) == "acme"
    assert agent_id_of(f"acme@{DOMAIN}", DOMAIN) is None
    assert agent_id_of(f"agent-@{DOMAIN}", DOMAIN) is None
    assert agent_id_of(f"agent-a/b@{DOMAIN}", DOMAIN) is None
    assert agent_id_of("agent-acme@evil.test", DOMAIN) is None


def test_a_bounce_is_accepted_and_dropped(server: Server) -> None:
    dsn = mail("Delivery Status Notification (Failure)", sender="MAILER-DAEMON@mx.example.com")
    with server.client() as smtp:
        wire = dsn.as_bytes(policy=dsn.policy.clone(linesep="\r\n"))
        assert smtp.sendmail("<>", [f"agent-acme@{DOMAIN}"], wire) == {}
    assert server.producer.attempts == 0


def _swaks(server: Server, to: str, body: str) -> subprocess.CompletedProcess[str]:
    swaks = shutil.which("swaks")
    if swaks is None:
        if os.environ.get("CI"):
            pytest.fail("swaks is missing (scripts/setup-system.sh installs it)")
        pytest.skip("swaks is not installed (Debian: apt-get install swaks)")
    return subprocess.run(
        [
            swaks,
            "--server",
            f"127.0.0.1:{server.port}",
            "--from",
            "bob@example.com",
            "--to",
            to,
            "--header",
            "Subject: From swaks",
            "--body",
            body,
            "--timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_swaks_a_real_mail_client_gets_250_and_one_event(server: Server) -> None:
    done = _swaks(server, f"agent-bravo@{DOMAIN}", "Sent by swaks.")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "<-  250 2.0.0 OK queued" in done.stdout
    [sent] = server.producer.sent
    record = sent.decoded()
    assert (sent.key, record["sender_id"]) == (TENANT_B, "bob@example.com")
    assert record["text"] == "From swaks\n\nSent by swaks."


def test_swaks_to_an_unknown_agent_gets_550_and_nothing_is_produced(server: Server) -> None:
    done = _swaks(server, f"agent-nobody@{DOMAIN}", "Anyone there?")
    assert done.returncode == 24, done.stdout + done.stderr  # swaks: no RCPTs accepted
    assert "<** 550" in done.stdout
    assert server.producer.sent == []
