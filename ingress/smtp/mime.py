"""Raw RFC 5322 bytes → `ParsedMail`: sender, threading ids, subject and readable text.

Pure (no I/O, clock or settings). Parsing uses the standard library's `email` package with
`policy.default` (RFC 2047 headers decoded, `EmailMessage.get_body`). The text is the
text/plain body when there is one, else the text/html body converted to text; quoted
history is stripped where safe (`ingress.smtp.quotes`).

Threading (RFC 5322 §3.6.4): the thread root is the first id of `References`, else the
`In-Reply-To` id, else the message's own `Message-ID`. A reply chain therefore keeps one
root however long it grows, as long as clients keep `References` (they do; a client that
sends only `In-Reply-To` starts a new root at the message it answers).

`MalformedMail` is raised for a message that cannot be read: no parsable `From` address,
a broken multipart structure (missing or absent boundaries), or headers the parser chokes
on. A message with no text at all (only attachments) raises `NoText`.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass
from email import errors as email_errors
from email.message import EmailMessage, Message, MIMEPart
from email.policy import default as default_policy

from ingress.smtp.html_text import html_to_text
from ingress.smtp.quotes import strip_quoted
from ingress.text import clean

_MSG_ID = re.compile(r"<[^<>\s]{1,250}>")
_WHITESPACE = re.compile(r"\s+")
# Keep the first and the last ids of a long References chain (RFC 5322 §3.6.4 allows it).
MAX_REFERENCES = 20
MAX_SUBJECT_CHARS = 400
_STRUCTURAL_DEFECTS = (
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
)
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


class MalformedMail(ValueError):
    """The message cannot be read; `reason` is short and bounded (a metric label)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class NoText(MalformedMail):
    """The message has no text/plain or text/html body (attachments only, or empty)."""


@dataclass(frozen=True)
class ParsedMail:
    sender: str  # the From address (addr-spec, domain lower-cased)
    sender_name: str | None
    reply_to: str | None  # the Reply-To address, when it differs from From
    subject: str
    message_id: str | None  # "<id@host>", None when the message has none
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str  # readable text, quoted history stripped
    auto_submitted: str | None  # why this looks machine-sent (loop safety), else None
    digest: str  # stable content hash: the event id part, and the root of id-less mail

    @property
    def thread_root(self) -> str | None:
        """The id every message of this thread shares; None for an id-less first message."""
        if self.references:
            return self.references[0]
        return self.in_reply_to or self.message_id

    @property
    def starts_thread(self) -> bool:
        return not self.references and not self.in_reply_to


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse one message as received in SMTP DATA; raises `MalformedMail` / `NoText`."""
    try:
        msg = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        _check_structure(msg)
        sender, sender_name = _address(msg, "From")
        if sender is None:
            raise MalformedMail("no_sender", "no parsable From address")
        reply_to, _ = _address(msg, "Reply-To")
        message_id = _first_id(_header(msg, "Message-ID"))
        in_reply_to = _first_id(_header(msg, "In-Reply-To"))
        references = _trim(_MSG_ID.findall(_header(msg, "References")))
        subject = clean(_WHITESPACE.sub(" ", _header(msg, "Subject")).strip())
        text = _body_text(msg)
        auto = _auto_submitted(msg)
    except MalformedMail:
        raise
    except Exception as err:  # the parser's lazily decoded headers can raise almost anything
        raise MalformedMail("unparsable", type(err).__name__) from err
    if not references and in_reply_to:
        references = (in_reply_to,)
    return ParsedMail(
        sender=sender,
        sender_name=sender_name,
        reply_to=reply_to if reply_to and reply_to != sender else None,
        subject=subject[:MAX_SUBJECT_CHARS],
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        text=text,
        auto_submitted=auto,
        digest=_digest(raw, message_id, sender, subject, text),
    )


def _check_structure(msg: Message) -> None:
    for part in msg.walk():
        for defect in part.defects:
            if isinstance(defect, _STRUCTURAL_DEFECTS):
                raise MalformedMail("malformed_mime", type(defect).__name__)


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return "" if value is None else str(value)


def _address(msg: Message, name: str) -> tuple[str | None, str | None]:
    header = msg.get(name)
    for address in getattr(header, "addresses", ()):
        local, domain = address.username, address.domain
        if local and domain:
            name_part = clean(address.display_name.strip()) or None
            return clean(f"{local}@{domain.lower()}"), name_part
    return None, None


def _first_id(value: str) -> str | None:
    found = _MSG_ID.search(value)
    if found:
        return found.group(0)
    bare = value.strip()
    if bare and " " not in bare and "@" in bare and len(bare) <= 250:
        return f"<{bare.strip('<>')}>"  # some clients omit the angle brackets
    return None


def _trim(ids: list[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_REFERENCES:
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1) :]
    return tuple(unique)


def _body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None or part.get_content_maintype() != "text":
        raise NoText("no_text", "no text/plain or text/html body")
    content = _content(part)
    if part.get_content_subtype() == "html":
        content = html_to_text(content)
    text = strip_quoted(clean(content.replace("\r\n", "\n")))
    if not text.strip():
        raise NoText("no_text", "the text body is empty")
    return text


def _content(part: MIMEPart) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):  # unknown or lying charset
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _auto_submitted(msg: Message) -> str | None:
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return f"auto-submitted: {auto[:40]}"
    precedence = _header(msg, "Precedence").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in msg:
            return name.lower()
    return None


def _digest(raw: bytes, message_id: str | None, sender: str, subject: str, text: str) -> str:
    """Stable across an MTA's redeliveries of the same message; different messages differ.

    With a Message-ID the hash covers the id and the content (trace headers that a relay
    may add on a retry do not change it; a client reusing ids does not collide); without
    one it is the hash of the raw bytes.
    """
    if message_id:
        material = "\0".join((message_id, sender, subject, text)).encode("utf-8", "replace")
    else:
        material = raw
    return hashlib.sha256(material).hexdigest()[:32]
