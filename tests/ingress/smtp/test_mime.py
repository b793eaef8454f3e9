"""MIME parsing: body choice, html fallback, quote stripping, threading ids, malformed input."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from ingress.smtp.mime import MalformedMail, NoText, parse_mail
from tests.ingress.smtp.smtp_fakes import mail


def _parse(msg: EmailMessage) -> object:
    return parse_mail(bytes(msg))


def test_plain_text_message() -> None:
    parsed = parse_mail(bytes(mail("Hello agent")))
    assert parsed.sender == "alice@example.com"
    assert parsed.sender_name == "Alice Example"
    assert parsed.subject == "Opening hours"
    assert parsed.text == "Hello agent"
    assert parsed.message_id == "<m1.alice@example.com>"
    assert parsed.thread_root == "<m1.alice@example.com>"
    assert parsed.starts_thread
    assert parsed.auto_submitted is None


def test_prefers_plain_over_html() -> None:
    msg = mail("the plain part", html="<p>the <b>html</b> part</p>")
    assert parse_mail(bytes(msg)).text == "the plain part"


def test_falls_back_to_html_converted_to_text() -> None:
    msg = mail("x")
    msg.set_content(
        "<html><head><style>p {color: red}</style></head><body>"
        "<p>Hello&nbsp;<b>there</b> &amp; welcome</p><div>line two<br>line three</div>"
        "<ul><li>one</li><li>two</li></ul><script>alert(1)</script></body></html>",
        subtype="html",
    )
    text = parse_mail(bytes(msg)).text
    assert text == "Hello there & welcome\n\nline two\nline three\n\n- one\n- two"


def test_html_blockquote_history_is_stripped() -> None:
    msg = mail("x")
    msg.set_content(
        "<div>Yes, Tuesday works.</div><div>On Mon, 2 Nov 2026, Agent wrote:</div>"
        "<blockquote><p>Shall we meet on Tuesday?</p></blockquote>",
        subtype="html",
    )
    assert parse_mail(bytes(msg)).text == "Yes, Tuesday works."


def test_quoted_history_is_stripped_from_a_reply() -> None:
    body = (
        "Thanks, that helps!\n\n"
        "On Mon, 2 Nov 2026 at 10:00, Agent Acme <agent-acme@agents.example.test>\nwrote:\n"
        "> We open at 9.\n>\n> Best\n"
    )
    assert parse_mail(bytes(mail(body))).text == "Thanks, that helps!"


def test_encoded_headers_and_charsets_are_decoded() -> None:
    msg = mail("Grüße aus Köln — ça va ?", sender="Jürgen <j@example.de>", subject="Frühstück")
    parsed = parse_mail(bytes(msg))
    assert b"=?utf-8?" in bytes(msg)  # the subject really travels RFC 2047 encoded
    assert (parsed.subject, parsed.sender_name) == ("Frühstück", "Jürgen")
    assert parsed.text == "Grüße aus Köln — ça va ?"


def test_latin1_body_and_unknown_charset() -> None:
    latin = (
        b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"\r\nCaf\xe9\r\n"
    )
    assert parse_mail(latin).text == "Café"
    bogus = latin.replace(b"iso-8859-1", b"x-no-such-charset")
    assert parse_mail(bogus).text == "Caf\ufffd"


def test_threading_root_is_the_first_reference() -> None:
    msg = mail(
        "third",
        message_id="<m3@example.com>",
        in_reply_to="<r2@agents.example.test>",
        references="<m1@example.com> <r1@agents.example.test> <r2@agents.example.test>",
    )
    parsed = parse_mail(bytes(msg))
    assert parsed.thread_root == "<m1@example.com>"
    assert parsed.in_reply_to == "<r2@agents.example.test>"
    assert parsed.references == (
        "<m1@example.com>",
        "<r1@agents.example.test>",
        "<r2@agents.example.test>",
    )
    assert not parsed.starts_thread


def test_in_reply_to_alone_becomes_the_references() -> None:
    parsed = parse_mail(bytes(mail("x", message_id="<m2@e.com>", in_reply_to="<m1@e.com>")))
    assert parsed.references == ("<m1@e.com>",)
    assert parsed.thread_root == "<m1@e.com>"


def test_long_reference_chains_keep_first_and_last() -> None:
    refs = " ".join(f"<r{i}@e.com>" for i in range(50))
    parsed = parse_mail(bytes(mail("x", references=refs)))
    assert len(parsed.references) == 20
    assert parsed.references[0] == "<r0@e.com>"
    assert parsed.references[-1] == "<r49@e.com>"


def test_digest_is_stable_and_content_sensitive() -> None:
    first = parse_mail(bytes(mail("same")))
    relayed = parse_mail(b"Received: from mx.example.com\r\n" + bytes(mail("same")))
    other = parse_mail(bytes(mail("different")))
    assert first.digest == relayed.digest  # a relay's trace header does not make it new
    assert first.digest != other.digest
    id_less = bytes(mail("no id", message_id=None))
    assert parse_mail(id_less).message_id is None
    assert parse_mail(id_less).digest == parse_mail(id_less).digest


def test_reply_to_is_kept_when_it_differs() -> None:
    msg = mail("x", headers={"Reply-To": "Support <help@example.com>"})
    assert parse_mail(bytes(msg)).reply_to == "help@example.com"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "auto-submitted: auto-replied"),
        ({"Precedence": "bulk"}, "precedence: bulk"),
        ({"X-Autoreply": "yes"}, "x-autoreply"),
    ],
)
def test_machine_mail_is_flagged(headers: dict[str, str], reason: str) -> None:
    assert parse_mail(bytes(mail("x", headers=headers))).auto_submitted == reason


def test_auto_submitted_no_is_a_person() -> None:
    assert parse_mail(bytes(mail("x", headers={"Auto-Submitted": "no"}))).auto_submitted is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"just some bytes\r\n", "no_sender"),
        (b"From: not an address\r\nSubject: x\r\n\r\nhi\r\n", "no_sender"),
        (
            b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n",
            "malformed_mime",
        ),
        (
            b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n'
            b"the boundary never comes\r\n",
            "malformed_mime",
        ),
    ],
)
def test_malformed_mail_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMail) as caught:
        parse_mail(raw)
    assert caught.value.reason == reason


def test_attachment_only_mail_has_no_text() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg.add_attachment(b"\x89PNG...", maintype="image", subtype="png", filename="x.png")
    with pytest.raises(NoText):
        parse_mail(bytes(msg))
    empty = mail("   \n")
    with pytest.raises(NoText):
        parse_mail(bytes(empty))
