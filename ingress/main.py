"""`run(settings)`: serve the ingress until SIGINT/SIGTERM, then shut down gracefully.

Shutdown order: readiness turns 503, the listener closes, in-flight webhooks finish
(each waits at most for its broker acknowledgement), then the directory stops and the
producer flushes and closes (the app's cleanup context).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from common.settings import Settings
from common.signals import on_stop_signals
from common.telemetry import setup_logging
from ingress.app import build_app
from ingress.shutdown import grace_s
from ingress.telegram import SEND_TIMEOUT_S
from ingress.typedefs import LIFECYCLE

log = logging.getLogger(__name__)

# Time given to in-flight requests on shutdown: a broker ack timeout plus some slack.
SHUTDOWN_GRACE_S = grace_s(SEND_TIMEOUT_S)


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve on `settings.ingress_host:ingress_port` until a signal (or `stop` is set)."""
    setup_logging(settings.log_level)
    stop = stop if stop is not None else asyncio.Event()
    app = build_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.ingress_host, settings.ingress_port)
        await site.start()
        log.info("ingress listening on %s:%d", settings.ingress_host, settings.ingress_port)
        with on_stop_signals(stop.set):
            await stop.wait()
        log.info("ingress shutting down")
        app[LIFECYCLE].stopping = True
    finally:
        await runner.cleanup()
    log.info("ingress stopped")
