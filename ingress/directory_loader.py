"""Loading the tenant directory at start-up, retrying while PostgreSQL is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from common.directory import Directory

log = logging.getLogger(__name__)

#: Seconds between attempts to load the directory while it fails (the last one repeats).
RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)


async def load_directory(directory: Directory, stop: asyncio.Event | None = None) -> bool:
    """Start `directory`, retrying with capped backoff until it loads (True) or `stop` is
    set (False); without `stop` only cancellation ends the retries."""
    stop = stop if stop is not None else asyncio.Event()
    attempt = 0
    while not stop.is_set():
        try:
            await directory.start()
        except Exception as err:  # psycopg.Error, OSError, a bad row...: keep trying
            delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            log.warning("directory not loaded (%s); retrying in %.1fs", err, delay)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        else:
            log.info("directory loaded: %d tenants", len(directory))
            return True
    return False
