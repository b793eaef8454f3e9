"""One reply → WhatsApp: split, sent from the right number, template outside the window.

- The number is the one the user wrote to (`reply_route.phone_number_id`, else the
  tenant's first WhatsApp binding); its sealed access token comes from the directory.
- The text is split at 4096 characters (`split_text`, paragraph/sentence boundaries);
  the chunks go out in order.
- 131047 (more than 24 hours since the user last wrote): the rest of the reply goes out
  as the tenant's approved template (`settings.template` of the binding: name, language,
  and whether the text fills the body parameter {{1}}); no template configured →
  dead-lettered `whatsapp_window_closed`. The check is reactive on purpose: a later
  message of the user may have reopened the window, which only Meta knows.
- Rate limits (130429, 131056, 80007, 4): retried by the `RetryPolicy` with the code's
  backoff; when the attempts run out the error stays retryable, so the worker keeps
  backing off (the offset is not committed) instead of dead-lettering a reply that
  will go through later. Other transient failures dead-letter after the attempts
  (`whatsapp_unavailable: …`); permanent refusals dead-letter at once with Meta's reason.
- After each send the chunk is recorded `sent` with its wamid in `outbound_deliveries`
  (the `DeliveryLog`, also used to resume after a crash) and announced as an `accepted`
  ChannelStatus (wamid → reply, kind text/template/notice) for `message_statuses`, where
  the webhook's sent/delivered/read/failed land. A record or announcement that failed is
  retried before the next send, and the handler fails until all are durable.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from psycopg_pool import AsyncConnectionPool

from agents_bridge.deliver.log import (
    FAILED,
    SENT,
    DeliveryLog,
    PgDeliveryLog,
    record_quietly,
    result_of,
)
from agents_bridge.deliver.text import split_text
from agents_bridge.deliver.whatsapp_api import (
    CHANNEL,
    MAX_TEXT,
    GraphClient,
    RateLimited,
    WindowClosed,
)
from agents_bridge.ports import EventSink, TenantLookup
from common.directory import Binding
from common.errors import InvalidEvent, RetryableError
from common.retry import RetryPolicy
from common.settings import Secret, Settings
from common.timeconv import now_ms
from common.topics import Topic

log = logging.getLogger(__name__)

_REMEMBER = 10_000
# Template body parameters may not hold newlines, tabs or 5+ spaces (error 132018), and the
# template body as a whole is limited to 1024 characters: keep the parameter well below.
TEMPLATE_PARAM_MAX = 900
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Sent:
    wamid: str
    kind: str  # text | template | notice


@dataclass
class _Progress:
    """Chunks of one reply already sent, and which are recorded and announced."""

    sent: dict[int, Sent] = field(default_factory=dict)
    recorded: set[int] = field(default_factory=set)
    announced: set[int] = field(default_factory=set)
    done: bool = False  # a template carried the rest of the reply


@dataclass(frozen=True)
class _Route:
    phone_number_id: str
    token: Secret
    to: str
    template: Mapping[str, Any] | None
    notice: bool


class WhatsAppDelivery:
    """Delivers `messages.outbound` replies whose channel is WhatsApp."""

    channel = CHANNEL

    def __init__(
        self,
        *,
        directory: TenantLookup,
        client: GraphClient,
        policy: RetryPolicy,
        deliveries: DeliveryLog | None = None,
        statuses: EventSink | None = None,
        remember: int = _REMEMBER,
    ) -> None:
        self._directory = directory
        self._client = client
        self._policy = policy
        self._deliveries = deliveries
        self._statuses = statuses
        self._remember = remember
        self._progress: OrderedDict[str, _Progress] = OrderedDict()

    async def deliver(self, reply: Mapping[str, Any]) -> None:
        """Send every chunk not sent yet; raises `InvalidEvent` or a retryable error."""
        route = self._route(reply)
        chunks = split_text(reply["text"], MAX_TEXT)
        if not chunks:
            log.info("whatsapp: %s has no text, nothing to send", reply["event_id"])
            return
        progress = await self._progress_of(reply["event_id"])
        await self._flush(reply, route, progress, len(chunks))
        for index, text in enumerate(chunks):
            if progress.done:
                break
            if index in progress.sent:
                continue
            progress.sent[index] = await self._send(reply, route, chunks, index, text)
            progress.done = progress.sent[index].kind == "template"
            await self._flush(reply, route, progress, len(chunks))
        self._progress.pop(reply["event_id"], None)

    async def _send(
        self, reply: Mapping[str, Any], route: _Route, chunks: list[str], index: int, text: str
    ) -> Sent:
        try:
            try:
                wamid = await self._post(route, text_payload(route.to, text))
                return Sent(wamid, "notice" if route.notice else "text")
            except WindowClosed:
                if route.template is None or route.notice:
                    raise InvalidEvent("whatsapp_window_closed: no template configured") from None
                rest = " ".join(chunks[index:])
                wamid = await self._post(route, template_payload(route.to, route.template, rest))
                log.info("whatsapp: %s sent as template (window closed)", reply["event_id"])
                return Sent(wamid, "template")
        except InvalidEvent as err:
            await record_quietly(
                self._deliveries,
                result_of(reply, CHANNEL, index, len(chunks), FAILED, error=err.reason),
            )
            raise

    async def _post(self, route: _Route, payload: dict[str, Any]) -> str:
        async def attempt(_n: int) -> str:
            return await self._client.send(route.token, route.phone_number_id, payload)

        try:
            return await self._policy.run(attempt)
        except RateLimited:
            raise  # still limited after the attempts: the worker backs off, nothing is lost
        except RetryableError as err:
            raise InvalidEvent(f"whatsapp_unavailable: {err.reason}") from None

    def _route(self, reply: Mapping[str, Any]) -> _Route:
        tenant = self._directory.tenant(reply["tenant_id"])
        if tenant is None:
            raise InvalidEvent("unknown_tenant")
        route = reply.get("reply_route") or {}
        wanted = route.get("phone_number_id")
        numbers = [b for b in tenant.bindings if b.channel == CHANNEL]
        binding: Binding | None = next(
            (b for b in numbers if wanted in (None, b.external_id)), None
        )
        if binding is None:
            raise InvalidEvent("no_whatsapp_binding")
        token = binding.credentials.get("access_token")
        if not token:
            raise InvalidEvent("whatsapp_misconfigured: no access token")
        template = binding.settings.get("template")
        return _Route(
            phone_number_id=binding.external_id,
            token=token,
            to=str(route.get("to") or reply["conversation_id"]),
            template=template if isinstance(template, dict) and template.get("name") else None,
            notice=route.get("kind") == "notice",
        )

    async def _progress_of(self, event_id: str) -> _Progress:
        progress = self._progress.get(event_id)
        if progress is None:
            done = await self._deliveries.sent(event_id) if self._deliveries else {}
            sent = {i: Sent(wamid, "text") for i, wamid in done.items()}
            progress = _Progress(sent=sent, recorded=set(done), announced=set(done))
            self._progress[event_id] = progress
            while len(self._progress) > self._remember:
                self._progress.popitem(last=False)
        return progress

    async def _flush(
        self, reply: Mapping[str, Any], route: _Route, progress: _Progress, chunks: int
    ) -> None:
        """Record and announce every sent chunk not yet recorded/announced."""
        for index in sorted(progress.sent):
            sent = progress.sent[index]
            if index not in progress.recorded and self._deliveries is not None:
                total = index + 1 if sent.kind == "template" else chunks
                await self._deliveries.record(
                    result_of(reply, CHANNEL, index, total, SENT, message_id=sent.wamid)
                )
            progress.recorded.add(index)
            if index not in progress.announced and self._statuses is not None:
                record = accepted_status(reply, route, index, sent)
                await self._statuses.send(Topic.CHANNEL_STATUSES, reply["tenant_id"], record)
            progress.announced.add(index)


def text_payload(to: str, text: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": text},
    }


def template_payload(to: str, template: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The tenant's approved template; with `text_param`, the text fills {{1}}."""
    body: dict[str, Any] = {
        "name": str(template["name"]),
        "language": {"code": str(template.get("language") or "en_US")},
    }
    if template.get("text_param", True):
        param = {"type": "text", "text": template_text(text)}
        body["components"] = [{"type": "body", "parameters": [param]}]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": body,
    }


def template_text(text: str, limit: int = TEMPLATE_PARAM_MAX) -> str:
    """One line, single spaces, at most `limit` characters (cut at a word, with '…')."""
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def accepted_status(
    reply: Mapping[str, Any], route: _Route, index: int, sent: Sent
) -> dict[str, Any]:
    """The ChannelStatus that links a wamid to the reply it delivered."""
    return {
        "event_id": f"{CHANNEL}:{sent.wamid}:accepted",
        "tenant_id": reply["tenant_id"],
        "channel": CHANNEL,
        "account_id": route.phone_number_id,
        "message_id": sent.wamid,
        "direction": "out",
        "status": "accepted",
        "counterpart": route.to,
        "kind": sent.kind,
        "reply_event_id": reply["event_id"],
        "chunk": index,
        "error_code": None,
        "error_title": None,
        "details": {},
        "occurred_at": now_ms(),
    }


def build(
    settings: Settings,
    http: aiohttp.ClientSession,
    directory: TenantLookup,
    pool: AsyncConnectionPool,
    statuses: EventSink,
) -> WhatsAppDelivery:
    """The production wiring: Graph API client, `outbound_deliveries`, channel.statuses."""
    return WhatsAppDelivery(
        directory=directory,
        client=GraphClient(http, settings),
        policy=RetryPolicy(attempts=settings.sender_attempts),
        deliveries=PgDeliveryLog(pool),
        statuses=statuses,
    )
