"""`run(settings)`: the inbound SMTP server (`openclaw-saas run smtp`) until SIGINT/SIGTERM.

Start-up: the tenant directory is loaded first (retrying while PostgreSQL is unreachable)
and only then does the server listen on `SMTP_HOST:SMTP_PORT`, so a sending server either
cannot connect (and retries) or talks to a server that knows every agent.

Shutdown: the listener closes, messages whose DATA is being stored get up to
`SHUTDOWN_GRACE_S` to finish (each waits at most for its broker acknowledgement), then the
directory stops and the producer flushes and closes. A client cut off mid-transaction
never got a 250, so its server sends the message again later.
"""

from __future__ import annotations

import asyncio
import logging
import time

from common.directory import Directory
from common.kafka import EventProducer
from common.settings import Settings
from common.signals import on_stop_signals
from common.telemetry import serve_metrics, setup_logging
from ingress.directory_loader import load_directory
from ingress.shutdown import grace_s
from ingress.smtp.handler import SEND_TIMEOUT_S, MailHandler
from ingress.smtp.server import protocol_factory

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = grace_s(SEND_TIMEOUT_S)


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve until a signal (or until `stop` is set)."""
    setup_logging(settings.log_level)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    producer = EventProducer(settings)
    directory = Directory(settings)
    try:
        with on_stop_signals(stop.set):
            if not await load_directory(directory, stop):
                return
            handler = MailHandler(settings, producer=producer, directory=directory)
            server = await loop.create_server(
                lambda: protocol_factory(handler, settings, loop),
                host=settings.smtp_host,
                port=settings.smtp_port,
            )
            log.info(
                "smtp listening on %s:%d for agent-*@%s",
                settings.smtp_host,
                settings.smtp_port,
                settings.mail_domain,
            )
            await stop.wait()
            log.info("smtp shutting down")
            server.close()
            await _drain(handler)
    finally:
        await directory.stop()
        await asyncio.to_thread(producer.close)
    log.info("smtp stopped")


async def _drain(handler: MailHandler) -> None:
    deadline = time.monotonic() + SHUTDOWN_GRACE_S
    while handler.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if handler.in_flight:
        log.warning("smtp stopped with %d messages not stored", handler.in_flight)
