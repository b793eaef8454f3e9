"""Several consumers run as one in a process (the delivery worker and the status recorder).

`WorkerGroup`: a signal stops them all, and one failing stops the others.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


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
