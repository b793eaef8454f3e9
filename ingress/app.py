"""The aiohttp application factories (state keys and interfaces: `ingress.typedefs`).

`create_app` takes its producer and directory from the caller (tests pass fakes);
`build_app` makes the real ones and ties their life to the app's cleanup context.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from common.directory import Directory
from common.kafka import EventProducer
from common.settings import Settings
from ingress.dedup import RecentUpdates
from ingress.directory_loader import load_directory
from ingress.middlewares import error_middleware
from ingress.routes import setup_routes
from ingress.typedefs import (
    DIRECTORY,
    LIFECYCLE,
    PRODUCER,
    RECENT_UPDATES,
    SETTINGS,
    Lifecycle,
    Producer,
    RoutingDirectory,
)


def create_app(
    settings: Settings,
    *,
    producer: Producer,
    directory: RoutingDirectory,
    recent: RecentUpdates | None = None,
) -> web.Application:
    """The ingress web application; bodies over `settings.max_body_bytes` get a 413."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[PRODUCER] = producer
    app[DIRECTORY] = directory
    app[RECENT_UPDATES] = recent if recent is not None else RecentUpdates()
    app[LIFECYCLE] = Lifecycle()
    setup_routes(app)
    return app


def build_app(settings: Settings) -> web.Application:
    """`create_app` with the real EventProducer and Directory, started and stopped with it.

    The directory loads in the background (retrying while PostgreSQL is unreachable);
    until it has, /readyz says 503 and webhooks answer 503 so Telegram retries them.
    On cleanup the producer flushes what is queued before it closes.
    """
    producer = EventProducer(settings)
    directory = Directory(settings)
    app = create_app(settings, producer=producer, directory=directory)
    lifecycle = app[LIFECYCLE]

    async def resources(_app: web.Application) -> AsyncIterator[None]:
        loader = asyncio.create_task(load_directory(directory), name="ingress-directory")
        try:
            yield
        finally:
            lifecycle.stopping = True
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
            await directory.stop()
            lifecycle.producer_open = False
            await asyncio.to_thread(producer.close)

    app.cleanup_ctx.append(resources)
    return app
