"""Show "typing…" in a Telegram chat while the agent works on its message.

The forwarder wraps its gateway call in `indicator.working(message)`. For a Telegram
message `TelegramTyping` starts a background task that sends `sendChatAction` "typing"
at once and then every `interval_s` (4 s: Telegram shows the status for 5 s or until the
bot's next message) until the block exits, i.e. until the reply is produced.

Best effort by design: the task never delays the gateway call, its errors are counted
(`typing_actions_total`) and logged at debug level but never raised; a 429 stretches the
next interval to `retry_after`, a permanent refusal (blocked bot, chat gone) ends the
indicator for that message. On exit a pending wait is cancelled; a call already on the
wire is left to finish (Telegram clears the status when the reply arrives).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from agents_bridge.ports import TenantLookup
from common.errors import InvalidEvent, RetryableError
from common.retry import Clock, SystemClock
from common.settings import Secret
from common.telemetry import TYPING_ACTIONS

log = logging.getLogger(__name__)


class WorkIndicator(Protocol):
    """Shows the user that the agent is working on `message` (an inbound event)."""

    def working(self, message: Mapping[str, Any]) -> AbstractAsyncContextManager[None]: ...


class NoIndicator:
    """Shows nothing."""

    def working(self, message: Mapping[str, Any]) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


class ChatActions(Protocol):
    """What the indicator needs from `TelegramSender`."""

    async def send_chat_action(
        self,
        token: Secret,
        chat_id: str,
        action: str = "typing",
        *,
        thread_id: str | None = None,
        timeout_s: float | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class _Target:
    token: Secret
    chat_id: str
    thread_id: str | None


class _Loop:
    """One message's typing loop; `calling` while a request is on the wire."""

    def __init__(self) -> None:
        self.calling = False
        self.stopped = False


class TelegramTyping:
    """`sendChatAction` typing every `interval_s` while a Telegram message is worked on."""

    def __init__(
        self,
        sender: ChatActions,
        directory: TenantLookup,
        *,
        interval_s: float = 4.0,
        call_timeout_s: float = 4.0,
        clock: Clock | None = None,
    ) -> None:
        self._sender = sender
        self._directory = directory
        self._interval = interval_s
        self._call_timeout = call_timeout_s
        self._clock = clock or SystemClock()
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def working(self, message: Mapping[str, Any]) -> AsyncIterator[None]:
        target = self._target(message)
        if target is None:
            yield
            return
        loop = _Loop()
        task = asyncio.create_task(self._run(target, loop), name="telegram-typing")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            yield
        finally:
            loop.stopped = True
            if not loop.calling:
                task.cancel()

    def _target(self, message: Mapping[str, Any]) -> _Target | None:
        if message.get("channel") != "telegram":
            return None
        tenant = self._directory.tenant(message["tenant_id"])
        if tenant is None or tenant.telegram is None or not tenant.telegram.bot_token:
            return None
        route = message.get("reply_route") or {}
        chat_id = str(route.get("chat_id") or message["conversation_id"])
        return _Target(tenant.telegram.bot_token, chat_id, route.get("message_thread_id"))

    async def _run(self, target: _Target, loop: _Loop) -> None:
        while not loop.stopped:
            wait = self._interval
            loop.calling = True
            try:
                await self._sender.send_chat_action(
                    target.token,
                    target.chat_id,
                    "typing",
                    thread_id=target.thread_id,
                    timeout_s=self._call_timeout,
                )
                TYPING_ACTIONS.labels("telegram", "ok").inc()
            except RetryableError as err:
                TYPING_ACTIONS.labels("telegram", "retryable").inc()
                log.debug("typing indicator: %s", err.reason)
                wait = max(wait, err.retry_after or 0.0)
            except InvalidEvent as err:
                TYPING_ACTIONS.labels("telegram", "rejected").inc()
                log.debug("typing indicator stopped: %s", err.reason)
                return
            except Exception as err:  # best effort: never let the indicator fail a message
                TYPING_ACTIONS.labels("telegram", "error").inc()
                log.debug("typing indicator stopped: %s", type(err).__name__)
                return
            finally:
                loop.calling = False
            if loop.stopped:
                return
            await self._clock.sleep(wait)

    @property
    def active(self) -> int:
        """Typing loops still running."""
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel every loop still running (process shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
