"""Graceful stop of the ingress processes (HTTP and SMTP): the signals and the grace period."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Added to one broker acknowledgement timeout: the time in-flight work gets on shutdown.
_GRACE_SLACK_S = 5.0


def grace_s(send_timeout_s: float) -> float:
    """Seconds in-flight work gets on shutdown when each waits at most `send_timeout_s`."""
    return send_timeout_s + _GRACE_SLACK_S


@contextlib.contextmanager
def stop_on_signals(event: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `event` while inside the block."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, event.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
