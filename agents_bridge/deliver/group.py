"""Plug-in points of the delivery process, so each channel adds itself without editing others.

- `ChannelDelivery`: delivers one `messages.outbound` reply on its channel (Telegram,
  WhatsApp, email...). `Delivery(..., channels={"whatsapp": WhatsAppDelivery(...)})`
  routes each reply by its `channel`; a channel without an entry is dead-lettered
  `channel_not_supported_yet`.
- `WorkerGroup`: several consumers run as one in a process (the delivery worker and the
  status recorder); a signal stops them all, and one failing stops the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol


class ChannelDelivery(Protocol):
    """Sends one reply; raises `InvalidEvent` (dead-letter) or a retryable error."""

    async def deliver(self, reply: Mapping[str, Any]) -> None: ...


class Worker(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


class WorkerGroup:
    """`run()` every worker concurrently; `stop()` them all."""

    def __init__(self, *workers: Worker) -> None:
        self.workers = workers

    async def run(self) -> None:
        tasks = [asyncio.create_task(w.run()) for w in self.workers]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if t.exception() is not None]
            if failed:
                self.stop()  # one worker died: stop the others gracefully, then re-raise
                await asyncio.gather(*tasks, return_exceptions=True)
                raise failed[0].exception()  # type: ignore[misc]
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
