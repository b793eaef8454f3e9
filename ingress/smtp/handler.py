"""The aiosmtpd handler: who may receive mail (RCPT) and what becomes an event (DATA).

RCPT: only `agent-<id>@<MAIL_DOMAIN>` where `<id>` is the external id of an email binding
of a tenant that is not deleted. Any other domain gets `550 5.7.1` (we are never a relay),
an unknown agent `550 5.1.1`; both are refused before any data is transferred. While the
tenant directory is not loaded yet the answer is `451` (the sending server retries).

DATA: the message is parsed (`ingress.smtp.mime`); unreadable MIME or a message without
text gets `554 5.6.0`; a bounce (null sender), an auto-reply, bulk mail or mail from one
of our own agents is accepted and dropped (never answer a machine: mail loops).
Otherwise one InboundMessage per accepted recipient is produced to messages.inbound and
the answer is `250` only after the broker acknowledged every one of them; when Kafka does
not answer in time it is `451 4.3.0`, so the sending server keeps the message and retries
(event ids are stable, so a partial first attempt is harmless).
Oversized mail never reaches the handler: the server answers `552` (`ingress.smtp.server`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

from common import timeconv
from common.directory import Binding, Tenant
from common.errors import KafkaUnavailable
from common.kafka import EventSink
from common.settings import Settings
from common.telemetry import INGRESS_REJECTIONS, INGRESS_REQUESTS
from common.topics import Topic
from ingress.smtp.mime import MalformedMail, ParsedMail, parse_mail

log = logging.getLogger(__name__)

CHANNEL = "email"
LOCAL_PREFIX = "agent-"
AGENT_ID = re.compile(r"[a-z0-9_][a-z0-9._-]{0,63}")
# Answering the final "." may take the client up to 10 minutes (RFC 5321 4.5.3.2.6).
SEND_TIMEOUT_S = 30.0
MAX_RECIPIENTS = 20

OK = "250 2.0.0 OK"
NOT_READY = "451 4.3.2 Mail system not ready, try again later"
KAFKA_DOWN = "451 4.3.0 Temporary failure storing the message, try again later"
INTERNAL = "451 4.3.0 Internal error, try again later"
RELAY_DENIED = "550 5.7.1 Relaying denied: this server only accepts mail for its agents"
UNKNOWN_RECIPIENT = "550 5.1.1 No such agent here"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
NO_RECIPIENTS = "554 5.1.1 None of the recipients exists any more"


#: What the handler needs of `common.kafka.EventProducer`.
Producer = EventSink


class MailDirectory(Protocol):
    """What the handler needs of `common.directory.Directory`: in-memory lookups only."""

    loaded: asyncio.Event

    def by_binding(self, channel: str, external_id: str) -> tuple[Tenant, Binding] | None: ...


def agent_id_of(address: str, mail_domain: str) -> str | None:
    """`<id>` of `agent-<id>@<mail_domain>` (case-insensitive), else None."""
    local, at, domain = address.strip().rpartition("@")
    if not at or domain.lower().rstrip(".") != mail_domain.lower().rstrip("."):
        return None
    local = local.lower()
    if not local.startswith(LOCAL_PREFIX):
        return None
    agent_id = local.removeprefix(LOCAL_PREFIX)
    return agent_id if AGENT_ID.fullmatch(agent_id) else None


def agent_address(agent_id: str, mail_domain: str) -> str:
    return f"{LOCAL_PREFIX}{agent_id}@{mail_domain.lower().rstrip('.')}"


def inbound_record(
    mail: ParsedMail,
    *,
    tenant_id: str,
    agent_id: str,
    mail_domain: str,
    received_at_ms: int,
) -> dict[str, Any]:
    """The InboundMessage for one recipient of `mail`."""
    own_id = mail.message_id or f"<{mail.digest}@{mail_domain}>"  # id-less mail: a stable one
    route = {
        "subject": mail.subject,
        "message_id": own_id,
        "references": " ".join(mail.references),
        "from_address": mail.sender,
        "to_address": agent_address(agent_id, mail_domain),
    }
    if mail.reply_to:
        route["reply_to"] = mail.reply_to
    text = mail.text
    if mail.starts_thread and mail.subject:
        text = f"{mail.subject}\n\n{text}"  # the first mail's subject often is the question
    return {
        "event_id": f"{CHANNEL}:{agent_id}:{mail.digest}",
        "tenant_id": tenant_id,
        "channel": CHANNEL,
        "conversation_id": mail.thread_root or own_id,
        "sender_id": mail.sender,
        "sender_name": mail.sender_name,
        "text": text,
        "received_at": received_at_ms,
        "channel_message_id": mail.message_id,
        "reply_route": route,
    }


class MailHandler:
    """aiosmtpd handler hooks (`handle_RCPT`, `handle_DATA`); one per server."""

    def __init__(
        self,
        settings: Settings,
        *,
        producer: Producer,
        directory: MailDirectory,
        now_ms: Callable[[], int] = timeconv.now_ms,
    ) -> None:
        self._domain = settings.mail_domain
        self._producer = producer
        self._directory = directory
        self._now_ms = now_ms
        self.in_flight = 0

    async def handle_RCPT(  # aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not self._directory.loaded.is_set():
            return NOT_READY
        agent_id = agent_id_of(address, self._domain)
        if agent_id is None:
            return _reject("relay_denied", RELAY_DENIED)
        if self._route(agent_id) is None:
            return _reject("unknown_recipient", UNKNOWN_RECIPIENT)
        canonical = agent_address(agent_id, self._domain)
        if canonical not in envelope.rcpt_tos:
            if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
                return _reject("too_many_recipients", TOO_MANY_RECIPIENTS)
            envelope.rcpt_tos.append(canonical)
            envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_flight += 1
        try:
            outcome, reply = await self._data(envelope)
        except Exception:
            log.exception("email: unexpected error handling DATA")
            outcome, reply = "error", INTERNAL
        finally:
            self.in_flight -= 1
        INGRESS_REQUESTS.labels(CHANNEL, outcome).inc()
        return reply

    async def _data(self, envelope: Any) -> tuple[str, str]:
        raw = bytes(envelope.original_content or b"")
        try:  # off the event loop: a large HTML mail takes a while to parse
            mail = await asyncio.to_thread(parse_mail, raw)
        except MalformedMail as err:
            INGRESS_REJECTIONS.labels(CHANNEL, err.reason).inc()
            log.info("email from %s rejected: %s", envelope.mail_from, err)
            return "rejected", f"554 5.6.0 Message not accepted: {err.reason}"
        machine = _machine_sent(mail, envelope.mail_from, self._domain)
        if machine:
            log.info("email %s ignored: %s", mail.message_id, machine)
            return "ignored", f"{OK} (not answered: automatic message)"
        received = self._now_ms()
        records = []
        for address in envelope.rcpt_tos:
            agent_id = agent_id_of(address, self._domain)
            routed = self._route(agent_id) if agent_id else None
            if agent_id is None or routed is None:
                log.warning("email: recipient %s vanished between RCPT and DATA", address)
                continue
            tenant, _binding = routed
            records.append(
                inbound_record(
                    mail,
                    tenant_id=tenant.tenant_id,
                    agent_id=agent_id,
                    mail_domain=self._domain,
                    received_at_ms=received,
                )
            )
        if not records:
            INGRESS_REJECTIONS.labels(CHANNEL, "unknown_recipient").inc()
            return "rejected", NO_RECIPIENTS
        try:
            await asyncio.gather(
                *(
                    self._producer.send(Topic.INBOUND, r["tenant_id"], r, timeout=SEND_TIMEOUT_S)
                    for r in records
                )
            )
        except KafkaUnavailable as err:
            log.warning("email %s not produced: %s", mail.message_id, err.reason)
            return "unavailable", KAFKA_DOWN
        ids = ", ".join(r["event_id"] for r in records)
        log.debug("produced %s", ids)
        return "accepted", f"{OK} queued as {records[0]['event_id'].rsplit(':', 1)[-1]}"

    def _route(self, agent_id: str) -> tuple[Tenant, Binding] | None:
        routed = self._directory.by_binding(CHANNEL, agent_id)
        if routed is None or routed[0].status == "deleted":
            return None
        return routed


def _reject(reason: str, reply: str) -> str:
    INGRESS_REJECTIONS.labels(CHANNEL, reason).inc()
    return reply


def _machine_sent(mail: ParsedMail, mail_from: str | None, mail_domain: str) -> str | None:
    """Why answering `mail` could start a mail loop, if it could (RFC 3834 §2)."""
    if mail_from in (None, "", "<>"):
        return "null sender (a bounce or report)"
    if agent_id_of(mail.sender, mail_domain) is not None:
        return "sent by one of our agents"
    return mail.auto_submitted
