"""An SMTP relay stand-in: aiosmtpd on loopback that keeps every message it is given.

`RelaySink().start()` returns the port; `refuse_next(reply)` makes the next DATA answer
`reply` (a 4xx or 5xx line) instead of 250; `wait_for(predicate, timeout)` blocks until
the received messages satisfy `predicate` (no polling: a condition variable).
"""

from __future__ import annotations

import asyncio
import email
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller

from devstack._proc import free_port


@dataclass(frozen=True)
class Relayed:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    def header(self, name: str) -> str:
        value = self.message[name]
        return "" if value is None else str(value)

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        text = str(body.get_content()) if body is not None else ""
        return text.replace("\r\n", "\n").strip()  # the wire's CRLF


class RelaySink:
    def __init__(self) -> None:
        self.received: list[Relayed] = []
        self.refused = 0
        self._refusals: list[str] = []
        self._changed = threading.Condition()
        self._controller: Controller | None = None
        self.port = 0

    def start(self) -> int:
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self.port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse_next(self, reply: str, times: int = 1) -> None:
        with self._changed:
            self._refusals.extend([reply] * times)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._changed:
            if self._refusals:
                self.refused += 1
                return self._refusals.pop(0)
            message = email.message_from_bytes(envelope.original_content, policy=default_policy)
            assert isinstance(message, EmailMessage)
            self.received.append(Relayed(envelope.mail_from, tuple(envelope.rcpt_tos), message))
            self._changed.notify_all()
        return "250 2.0.0 OK queued"

    def wait_for(
        self, predicate: Callable[[list[Relayed]], object], timeout: float = 10.0
    ) -> list[Relayed]:
        with self._changed:
            if not self._changed.wait_for(lambda: bool(predicate(self.received)), timeout):
                raise TimeoutError(f"relay sink: condition not met after {timeout}s")
            return list(self.received)

    async def wait_for_async(
        self, predicate: Callable[[list[Relayed]], object], timeout: float = 10.0
    ) -> list[Relayed]:
        return await asyncio.to_thread(self.wait_for, predicate, timeout)
