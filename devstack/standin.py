"""What the HTTP API stand-ins (`devstack.telegram_api`, `devstack.graph_api`) share.

`StandIn` serves a subclass's `make_app()` on a local port, records each call it answers
(accepted ones in `calls`, refused ones in `failures`) and wakes `wait_for` on every call.
`serve_until_signalled` runs one standalone until SIGINT or SIGTERM (`make run`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from aiohttp import web

CallT = TypeVar("CallT")


class StandIn(Generic[CallT]):
    """An aiohttp server recording the calls (of type `CallT`) it answers."""

    #: Names the API in `wait_for`'s timeout message.
    api_name: ClassVar[str] = "API"

    def __init__(
        self,
        *,
        accept_any_token: bool = False,
        on_call: Callable[[CallT], None] | None = None,
    ) -> None:
        self.accept_any_token = accept_any_token
        self.calls: list[CallT] = []
        self.failures: list[CallT] = []
        self._on_call = on_call
        self._cond: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def make_app(self) -> web.Application:
        raise NotImplementedError

    def _summary(self, call: CallT) -> tuple[Any, ...]:
        """What `wait_for`'s timeout message shows of one call."""
        raise NotImplementedError

    async def wait_for(
        self, predicate: Callable[[list[CallT]], bool], timeout: float = 5.0
    ) -> list[CallT]:
        """Wait until `predicate(calls)` holds; returns the calls. Raises TimeoutError."""
        cond = self._condition()
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(lambda: predicate(self.calls)), timeout)
            except TimeoutError:
                seen = [self._summary(c) for c in self.calls[-5:]]
                raise TimeoutError(
                    f"no matching {self.api_name} call in {timeout}s; last: {seen}"
                ) from None
            return list(self.calls)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on `host:port` (0: any free port); returns the base URL."""
        self._condition()
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.base_url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def _record(self, call: CallT, *, failed: bool) -> None:
        (self.failures if failed else self.calls).append(call)
        if not failed and self._on_call is not None:
            self._on_call(call)
        cond = self._condition()
        async with cond:
            cond.notify_all()


def cli_parser(doc: str | None, port: int) -> argparse.ArgumentParser:
    """A standalone's parser: `--host`, `--port` (default `port`), described by `doc`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    return parser


async def serve_until_signalled(api: StandIn[Any], host: str, port: int, title: str) -> None:
    """Start `api`, print "`title` on <base URL>", and stop it on SIGINT or SIGTERM."""
    base = await api.start(host, port)
    print(f"{title} on {base}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        await api.stop()
