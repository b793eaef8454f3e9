"""One reply → Telegram: split, paced, retried, each chunk's result recorded.

- The text is split at 4096 characters on paragraph/sentence boundaries (`split_text`);
  the chunks go out in order.
- Before every `sendMessage` attempt the `Pacer` waits for the chat's bucket (about one
  message per second, 20 per minute in groups) and the bot's (about 30 per second);
  waiting holds only this conversation's lane.
- Each chunk is retried by the `RetryPolicy`, waiting at least the 429 `retry_after`;
  when the attempts run out, or Telegram refuses for good (400, 403, 401), the chunk is
  recorded `failed` and `InvalidEvent` dead-letters the reply.
- After each send the chunk is recorded `sent` with Telegram's message_id. A reply whose
  first chunks went out (here, or in a process that crashed: `DeliveryLog.sent`) resumes
  at the first unsent chunk. A result PostgreSQL did not take is written again before
  the next send, and the handler fails (retryable) until it is durable, so the offset is
  committed only once the results are.
"""

from __future__ import annotations

import logging
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
from agents_bridge.deliver.pacing import Pacer
from agents_bridge.deliver.telegram_api import TELEGRAM_MAX_CHARS, TelegramSender
from agents_bridge.deliver.text import split_text
from agents_bridge.ports import TenantLookup
from common.directory import TelegramBinding
from common.errors import InvalidEvent, RetryableError
from common.retry import RetryPolicy
from common.settings import Settings
from common.telemetry import SEND_PACING_SECONDS

log = logging.getLogger(__name__)

_REMEMBER = 10_000


@dataclass
class _Progress:
    """Chunks of one reply already sent (index → message_id) and which are recorded."""

    sent: dict[int, str] = field(default_factory=dict)
    recorded: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Route:
    binding: TelegramBinding
    chat_id: str
    thread_id: str | None


class TelegramDelivery:
    """Delivers `messages.outbound` replies whose channel is Telegram."""

    def __init__(
        self,
        *,
        directory: TenantLookup,
        sender: TelegramSender,
        policy: RetryPolicy,
        pacer: Pacer | None = None,
        deliveries: DeliveryLog | None = None,
        remember: int = _REMEMBER,
    ) -> None:
        self._directory = directory
        self._sender = sender
        self._policy = policy
        self._pacer = pacer or Pacer(clock=policy.clock)
        self._deliveries = deliveries
        self._remember = remember
        self._progress: OrderedDict[str, _Progress] = OrderedDict()

    async def deliver(self, reply: Mapping[str, Any]) -> None:
        """Send every chunk not sent yet; raises `InvalidEvent` or a retryable error."""
        route = self._route(reply)
        chunks = split_text(reply["text"], TELEGRAM_MAX_CHARS)
        if not chunks:
            log.info("telegram: %s has no text, nothing to send", reply["event_id"])
            return
        progress = await self._progress_of(reply["event_id"])
        await self._record_sent(reply, progress, len(chunks))
        for index, text in enumerate(chunks):
            if index in progress.sent:
                continue
            try:
                message_id = await self._send_chunk(route, text)
            except InvalidEvent as err:
                await record_quietly(
                    self._deliveries,
                    result_of(reply, "telegram", index, len(chunks), FAILED, error=err.reason),
                )
                raise
            progress.sent[index] = str(message_id) if message_id else ""
            await self._record_sent(reply, progress, len(chunks))
        self._progress.pop(reply["event_id"], None)

    def _route(self, reply: Mapping[str, Any]) -> _Route:
        tenant = self._directory.tenant(reply["tenant_id"])
        if tenant is None:
            raise InvalidEvent("unknown_tenant")
        if tenant.telegram is None or not tenant.telegram.bot_token:
            raise InvalidEvent("no_telegram_binding")
        route = reply.get("reply_route") or {}
        chat_id = str(route.get("chat_id") or reply["conversation_id"])
        return _Route(tenant.telegram, chat_id, route.get("message_thread_id"))

    async def _progress_of(self, event_id: str) -> _Progress:
        progress = self._progress.get(event_id)
        if progress is None:
            done = await self._deliveries.sent(event_id) if self._deliveries else {}
            progress = _Progress(sent=dict(done), recorded=set(done))
            self._progress[event_id] = progress
            while len(self._progress) > self._remember:
                self._progress.popitem(last=False)
        return progress

    async def _send_chunk(self, route: _Route, text: str) -> int:
        binding = route.binding

        async def attempt(_n: int) -> int:
            waited = await self._pacer.wait(binding.bot_id, route.chat_id)
            SEND_PACING_SECONDS.labels("telegram").observe(waited)
            return await self._sender.send_message(
                binding.bot_token, route.chat_id, text, thread_id=route.thread_id
            )

        try:
            return await self._policy.run(attempt)
        except RetryableError as err:
            raise InvalidEvent(f"telegram_unavailable: {err.reason}") from None

    async def _record_sent(
        self, reply: Mapping[str, Any], progress: _Progress, chunks: int
    ) -> None:
        if self._deliveries is None:
            return
        for index in sorted(set(progress.sent) - progress.recorded):
            await self._deliveries.record(
                result_of(reply, "telegram", index, chunks, SENT, message_id=progress.sent[index])
            )
            progress.recorded.add(index)


def build(
    settings: Settings,
    http: aiohttp.ClientSession,
    directory: TenantLookup,
    pool: AsyncConnectionPool,
) -> TelegramDelivery:
    """The production wiring: Bot API client, `settings.sender_attempts`, `outbound_deliveries`."""
    return TelegramDelivery(
        directory=directory,
        sender=TelegramSender(http, settings),
        policy=RetryPolicy(attempts=settings.sender_attempts),
        deliveries=PgDeliveryLog(pool),
    )
