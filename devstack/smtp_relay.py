"""An SMTP relay stand-in: aiosmtpd on loopback that keeps every message it is given.

Where the platform's outgoing mail (agent replies, quota alerts, billing notices) goes on
this machine: `SMTP_RELAY_HOST`/`SMTP_RELAY_PORT` point here in tests and in `make run`.

`RelaySink().start()` returns the port; `refuse_next(reply)` makes the next DATA answer
`reply` (a 4xx or 5xx line) instead of 250; `wait_for(predicate, timeout)` blocks until
the received messages satisfy `predicate` (no polling: a condition variable).

`python -m devstack.smtp_relay --port N` runs one that prints each mail it relays.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import signal
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
    def __init__(self, *, echo: bool = False) -> None:
        self._echo = echo
        self.received: list[Relayed] = []
        self.refused = 0
        self._refusals: list[str] = []
        self._changed = threading.Condition()
        self._controller: Controller | None = None
        self.port = 0

    def start(self, port: int | None = None) -> int:
        self.port = port or free_port()
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

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._changed:
            if self._refusals:
                self.refused += 1
                return self._refusals.pop(0)
            message = email.message_from_bytes(envelope.original_content, policy=default_policy)
            assert isinstance(message, EmailMessage)
            relayed = Relayed(envelope.mail_from, tuple(envelope.rcpt_tos), message)
            self.received.append(relayed)
            self._changed.notify_all()
        if self._echo:
            print(
                f"[smtp relay] {relayed.mail_from} -> {', '.join(relayed.rcpt_tos)}:"
                f" {relayed.header('Subject')!r}\n{relayed.text}\n",
                flush=True,
            )
        return "250 2.0.0 OK queued"

    def wait_for(
        self, predicate: Callable[[list[Relayed]], object], timeout: float = 10.0
    ) -> list[Relayed]:
        with self._changed:
            if not self._changed.wait_for(lambda: bool(predicate(self.received)), timeout):
                raise TimeoutError(f"relay sink: condition not met after {timeout}s")
            return list(self.received)

    def to(self, address: str) -> list[EmailMessage]:
        """The messages whose To header is `address`."""
        with self._changed:
            return [r.message for r in self.received if r.header("To") == address]

    async def wait_for_async(
        self, predicate: Callable[[list[Relayed]], object], timeout: float = 10.0
    ) -> list[Relayed]:
        return await asyncio.to_thread(self.wait_for, predicate, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.smtp_relay",
        description="A local SMTP relay that accepts every mail and prints it (Ctrl-C stops).",
    )
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    args = parser.parse_args(argv)
    sink = RelaySink(echo=True)
    sink.start(args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
