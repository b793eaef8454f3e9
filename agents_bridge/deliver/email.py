"""Agent replies by email: build the threaded reply, then send it through the SMTP relay.

The reply to an inbound mail (its `reply_route`, see `ingress.smtp.handler`) is:

- From the agent's address (`to_address` of the inbound mail), To its `reply_to` or
  `from_address`;
- `Subject: Re: <subject>` (not doubled when the subject already starts with Re:/AW:/SV:);
- `In-Reply-To: <the inbound Message-ID>` and `References: <its References> <its
  Message-ID>` (RFC 5322 §3.6.4), so the customer's client threads it and the customer's
  next mail carries the thread root back to us;
- a `Message-ID` derived from the reply's event id: a redelivered reply has the same id, so
  receiving systems can recognise a duplicate; `Auto-Submitted: auto-replied` (RFC 3834),
  so well-behaved auto-responders do not answer it.

`EmailSender.deliver` honours the tenant's reply mode (email binding settings
`{"reply_mode": "auto" | "approve"}`): `auto` sends now, `approve` stores a draft in
PostgreSQL (`agents_bridge.deliver.email_drafts`) that `openclaw-saas email approve <id>` sends.

Relay answers: 4xx, timeouts and connection errors are `RetryableError` (retried by the
policy, then dead-lettered as `email_unavailable: …`); 5xx is `InvalidEvent`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

from agents_bridge.deliver.log import FAILED, SENT, DeliveryLog, record_quietly, result_of
from agents_bridge.ports import TenantLookup
from common.errors import InvalidEvent, RetryableError
from common.retry import RetryPolicy
from common.settings import Settings
from common.telemetry import CHANNEL_SENDS

log = logging.getLogger(__name__)

CHANNEL = "email"
RELAY_TIMEOUT_S = 30.0
REPLY_MODES = ("auto", "approve")
_RE_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|vs)\s*:", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_MSG_ID = re.compile(r"<[^<>\s]{1,250}>")


@dataclass(frozen=True)
class OutgoingMail:
    """Everything a reply mail is made of; also what a draft stores."""

    from_address: str
    to_address: str
    subject: str
    in_reply_to: str | None
    references: str
    message_id: str
    body: str

    def to_message(self) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = _address(self.from_address)
        msg["To"] = _address(self.to_address)
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = self.message_id
        if self.in_reply_to:
            msg["In-Reply-To"] = self.in_reply_to
        if self.references:
            msg["References"] = self.references
        msg["Auto-Submitted"] = "auto-replied"
        msg.set_content(self.body)
        return msg


def reply_subject(subject: str) -> str:
    subject = _WHITESPACE.sub(" ", subject).strip()
    if not subject:
        return "Re: your message"
    return subject if _RE_PREFIX.match(subject) else f"Re: {subject}"


def reply_mail(reply: Mapping[str, Any], *, mail_domain: str) -> OutgoingMail:
    """The reply mail for an OutboundReply record; `InvalidEvent` if it has nowhere to go."""
    route = reply.get("reply_route") or {}
    sender = str(route.get("to_address") or "")
    recipient = str(route.get("reply_to") or route.get("from_address") or "")
    if "@" not in sender or "@" not in recipient:
        raise InvalidEvent("email_no_address: reply_route lacks from/to addresses")
    parent = _ids(str(route.get("message_id") or ""))
    references = _ids(str(route.get("references") or "")) + parent
    domain = sender.rpartition("@")[2] or mail_domain
    digest = hashlib.sha256(str(reply["event_id"]).encode()).hexdigest()[:32]
    mail = OutgoingMail(
        from_address=sender,
        to_address=recipient,
        subject=reply_subject(str(route.get("subject") or "")),
        in_reply_to=parent[0] if parent else None,
        references=" ".join(dict.fromkeys(references)),
        message_id=f"<reply.{digest}@{domain}>",
        body=str(reply["text"]),
    )
    try:
        mail.to_message()  # an address or header the email package refuses: never sendable
    except (ValueError, TypeError, IndexError, MessageError) as err:
        raise InvalidEvent(f"email_unbuildable: {type(err).__name__}: {err}"[:300]) from None
    return mail


def send_blocking(message: EmailMessage, host: str, port: int, *, local_hostname: str) -> None:
    """Hand `message` to the relay (envelope from its From, to its To); raises classified."""
    try:
        with smtplib.SMTP(host, port, timeout=RELAY_TIMEOUT_S, local_hostname=local_hostname) as s:
            s.send_message(message)
    except smtplib.SMTPRecipientsRefused as err:
        codes = [code for code, _ in err.recipients.values()]
        _raise_for(min(codes) if codes else 550, "recipient refused")
    except smtplib.SMTPResponseException as err:
        _raise_for(err.smtp_code, _text(err.smtp_error))
    except (smtplib.SMTPException, OSError) as err:  # disconnects, timeouts, refused connects
        CHANNEL_SENDS.labels(CHANNEL, "connection").inc()
        raise RetryableError(f"email_connection: {type(err).__name__}: {err}") from None
    CHANNEL_SENDS.labels(CHANNEL, "ok").inc()


def _raise_for(code: int, text: str) -> None:
    if 400 <= code < 500 or code < 0:  # -1: smtplib's "connection unexpectedly closed"
        CHANNEL_SENDS.labels(CHANNEL, "retryable").inc()
        raise RetryableError(f"email_{code}: {text}")
    CHANNEL_SENDS.labels(CHANNEL, "rejected").inc()
    raise InvalidEvent(f"email_{code}: {text}")


class Drafts(Protocol):
    """Where approve-mode replies wait (`agents_bridge.deliver.email_drafts.DraftStore`)."""

    async def save(
        self, *, tenant_id: str, event_id: str, conversation_id: str, mail: OutgoingMail
    ) -> int: ...


class EmailSender:
    """The delivery for channel "email": send now, or keep a draft for approval."""

    def __init__(
        self,
        settings: Settings,
        *,
        directory: TenantLookup,
        drafts: Drafts,
        policy: RetryPolicy | None = None,
        deliveries: DeliveryLog | None = None,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._drafts = drafts
        self._policy = policy or RetryPolicy(attempts=settings.sender_attempts)
        self._deliveries = deliveries

    async def deliver(self, reply: Mapping[str, Any]) -> None:
        tenant = self._directory.tenant(reply["tenant_id"])
        if tenant is None:
            raise InvalidEvent("unknown_tenant")
        binding = tenant.binding(CHANNEL)
        if binding is None:
            raise InvalidEvent("no_email_binding")
        mail = reply_mail(reply, mail_domain=self._settings.mail_domain)
        if reply_mode(binding.settings) == "approve":
            draft_id = await self._drafts.save(
                tenant_id=tenant.tenant_id,
                event_id=reply["event_id"],
                conversation_id=reply["conversation_id"],
                mail=mail,
            )
            CHANNEL_SENDS.labels(CHANNEL, "drafted").inc()
            log.info("email reply %s kept as draft %d for approval", reply["event_id"], draft_id)
            return
        if self._deliveries is not None and await self._deliveries.sent(reply["event_id"]):
            # sent before a crash or a partition move, not yet committed: never mail twice
            CHANNEL_SENDS.labels(CHANNEL, "duplicate").inc()
            log.info("email reply %s was sent already, skipping", reply["event_id"])
            return
        try:
            await self.send(mail)
        except InvalidEvent as err:
            await record_quietly(
                self._deliveries, result_of(reply, CHANNEL, 0, 1, FAILED, error=err.reason)
            )
            raise
        # best effort: the mail is out either way, and a retry for the row would mail it again
        await record_quietly(
            self._deliveries, result_of(reply, CHANNEL, 0, 1, SENT, message_id=mail.message_id)
        )

    async def send(self, mail: OutgoingMail) -> None:
        """Send through the relay under the retry policy; dead-letter reason when it gives up."""
        message = mail.to_message()
        settings = self._settings

        async def attempt(_n: int) -> None:
            await asyncio.to_thread(
                send_blocking,
                message,
                settings.smtp_relay_host,
                settings.smtp_relay_port,
                local_hostname=settings.mail_domain,
            )

        try:
            await self._policy.run(attempt)
        except RetryableError as err:
            raise InvalidEvent(f"email_unavailable: {err.reason}") from None


def reply_mode(binding_settings: Mapping[str, Any]) -> str:
    mode = str(binding_settings.get("reply_mode") or "auto")
    return mode if mode in REPLY_MODES else "auto"


def _ids(value: str) -> list[str]:
    return _MSG_ID.findall(value)


def _address(value: str) -> Address:
    local, _, domain = value.rpartition("@")
    return Address(addr_spec=f"{local}@{domain}")


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return _WHITESPACE.sub(" ", text).strip()[:300]
