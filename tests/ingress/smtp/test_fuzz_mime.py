"""Fuzz the SMTP ingress: MIME parsing, DATA and RCPT never crash, always answer by the rules.

Messages are built the way broken and hostile mailers write them: hostile header values
(encoded-words in unknown charsets, lone surrogates, NUL, huge References), lying
charsets and transfer encodings, broken multipart boundaries, HTML bodies, then damaged
on the wire (truncated, bit-flipped, re-encoded). `parse_mail` must return a
`ParsedMail` or raise `MalformedMail`; the handler must answer DATA with 250 (produced or
deliberately ignored), 554 (unreadable) or, only while the broker is down, 451 4.3.0, and
never its "internal error" 451; RCPT accepts exactly the known agents of our domain.
`make fuzz` runs 100,000 inputs per test.
"""

from __future__ import annotations

from aiosmtpd.smtp import Envelope
from hypothesis import event, given
from hypothesis import strategies as st

from common.settings import Settings
from ingress.smtp.handler import (
    INTERNAL,
    KAFKA_DOWN,
    RELAY_DENIED,
    UNKNOWN_RECIPIENT,
    MailHandler,
    inbound_record,
)
from ingress.smtp.mime import MalformedMail, ParsedMail, parse_mail
from schemas import codec
from tests.fakes import FakeProducer
from tests.fuzzing import damaged, fuzz_settings, mostly, nasty_text
from tests.ingress.smtp.smtp_fakes import (
    DOMAIN,
    TENANT_A,
    TENANT_B,
    TENANT_GONE,
    FakeMailDirectory,
    email_tenant,
)

AGENTS = {"acme": TENANT_A, "bravo": TENANT_B}

header_text = st.one_of(
    nasty_text,
    st.sampled_from(
        [
            "=?utf-8?b?SGVsbG8=?=",
            "=?x-unknown?q?caf=E9?=",
            "=?utf-8?q?=FF=FE?=",
            "=?iso-8859-1?b?####?=",
            "=?utf-8?b?" + "QUFB" * 200 + "?=",
            "<" * 50,
            "a@b@c",
            '"unterminated <x@y',
            "Alice <alice@example.com>",
            "undisclosed-recipients:;",
            "\ud800@example.com",
        ]
    ),
)
charsets = st.sampled_from(["utf-8", "iso-8859-1", "x-unknown", "utf-7", "", "utf-16", '"'])
encodings = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "bogus"])
body_text = st.one_of(nasty_text, st.sampled_from(["", "\n\n", "> quoted\n> only", "=", "===="]))


def _header(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode("utf-8", "surrogatepass")


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    """One RFC 5322 message, plausibly or implausibly assembled."""
    heads = [
        _header("From", draw(mostly(st.just("Alice <alice@example.com>"), header_text))),
        _header("To", f"agent-acme@{DOMAIN}"),
    ]
    for name in ("Subject", "Message-ID", "In-Reply-To", "References", "Reply-To"):
        if draw(st.booleans()):
            heads.append(_header(name, draw(header_text)))
    if draw(st.integers(0, 9)) == 0:
        heads.append(_header("References", " ".join(f"<r{i}@x>" for i in range(500))))
    if draw(st.integers(0, 7)) == 0:
        heads.append(_header("Auto-Submitted", "auto-replied"))
    text = draw(body_text).encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["plain", "html", "multipart", "broken", "attachment"]))
    cte = draw(encodings)
    charset = draw(charsets)
    if kind in ("plain", "html"):
        heads.append(_header("Content-Type", f"text/{kind}; charset={charset}"))
        heads.append(_header("Content-Transfer-Encoding", cte))
        body = (b"<p>" + text + b"<br><script>x</script>") if kind == "html" else text
    else:
        boundary = draw(st.sampled_from(["b1", "", '"', "x" * 100]))
        heads.append(_header("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
        part_type = "application/pdf" if kind == "attachment" else f"text/plain; charset={charset}"
        close = b"" if kind == "broken" else f"--{boundary}--\r\n".encode()
        body = (
            f"--{boundary}\r\nContent-Type: {part_type}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
            + text
            + b"\r\n"
            + close
        )
    raw = b"".join(heads) + b"\r\n" + body
    return draw(damaged(raw))


@fuzz_settings(400)
@given(raw=st.one_of(mails(), st.binary(max_size=400)))
def test_parse_mail_returns_a_mail_or_malformed_mail(raw: bytes) -> None:
    try:
        mail = parse_mail(raw)
    except MalformedMail as err:
        event(f"rejected {err.reason}")
        assert err.reason and len(err.reason) <= 40
        return
    assert isinstance(mail, ParsedMail)
    event("parsed")
    # Whatever was parsed fits the InboundMessage schema (strings encode, ids are bounded).
    record = inbound_record(
        mail, tenant_id=TENANT_A, agent_id="acme", mail_domain=DOMAIN, received_at_ms=1
    )
    assert codec.decode(codec.encode("inbound_message", record))["event_id"] == record["event_id"]


def _handler(producer: FakeProducer) -> MailHandler:
    settings = Settings.from_env({}, mail_domain=DOMAIN)
    directory = FakeMailDirectory(
        [
            email_tenant(TENANT_A, "acme"),
            email_tenant(TENANT_B, "bravo"),
            email_tenant(TENANT_GONE, "gone", status="deleted"),
        ]
    )
    return MailHandler(settings, producer=producer, directory=directory, now_ms=lambda: 1000)


@fuzz_settings(400)
@given(
    raw=mails(),
    recipients=st.lists(st.sampled_from(sorted(AGENTS)), min_size=1, max_size=3),
    mail_from=st.sampled_from(["alice@example.com", "", "<>", f"agent-bravo@{DOMAIN}"]),
    kafka_down=st.booleans(),
)
async def test_data_answers_250_554_or_451_only_while_kafka_is_down(
    raw: bytes, recipients: list[str], mail_from: str, kafka_down: bool
) -> None:
    producer = FakeProducer()
    producer.down = kafka_down
    handler = _handler(producer)
    envelope = Envelope()
    envelope.mail_from = mail_from
    envelope.original_content = raw
    for agent in recipients:
        address = f"agent-{agent}@{DOMAIN}"
        assert (await handler.handle_RCPT(None, None, envelope, address, [])).startswith("250")
    reply = await handler.handle_DATA(None, None, envelope)
    event(reply[:3])
    assert reply != INTERNAL, "an unexpected exception while handling DATA"
    assert reply[:3] in ("250", "554") or (kafka_down and reply == KAFKA_DOWN), reply
    produced = {
        codec.decode(s.payload, expect="inbound_message")["tenant_id"] for s in producer.sent
    }
    assert produced <= {AGENTS[a] for a in recipients}, "mail reached a tenant it was not for"


addresses = st.one_of(
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.one_of(
            st.sampled_from(["agent-acme", "AGENT-ACME", "agent-gone", "agent-"]), nasty_text
        ),
        st.one_of(st.sampled_from([DOMAIN, DOMAIN.upper(), DOMAIN + ".", "evil.test"]), nasty_text),
    ),
    nasty_text,
)


@fuzz_settings(400)
@given(address=addresses)
async def test_rcpt_accepts_only_known_agents_of_our_domain(address: str) -> None:
    handler = _handler(FakeProducer())
    envelope = Envelope()
    reply = await handler.handle_RCPT(None, None, envelope, address, [])
    local, _, domain = address.strip().rpartition("@")
    ours = domain.lower().rstrip(".") == DOMAIN and local.lower() == "agent-acme"
    event(reply[:3])
    if ours:
        assert reply.startswith("250"), reply
        assert envelope.rcpt_tos == [f"agent-acme@{DOMAIN}"]
    else:
        assert reply in (RELAY_DENIED, UNKNOWN_RECIPIENT), reply
        assert envelope.rcpt_tos == []
