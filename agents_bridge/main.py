"""Entry points of the forwarder and delivery processes, each run until SIGTERM/SIGINT.

- `run_forwarder(settings)`: messages.admitted → gateway → messages.outbound, session.events,
  usage.records (`agents_bridge.forward`);
- `run_delivery(settings)`: messages.outbound → Telegram, WhatsApp, email
  (`agents_bridge.deliver`), and beside it channel.statuses → PostgreSQL
  (`agents_bridge.deliver.statuses`).

The third process, `openclaw-saas run provisioner`, has its entry point in its own package:
`agents_bridge.provision.worker.run_provisioner`.

On a signal the worker stops polling, finishes (drains) what is in flight, commits, and
then the HTTP session, the directory and the producer (flushing) are closed in that order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import aiohttp
from psycopg_pool import AsyncConnectionPool

from agents_bridge.deliver import statuses, telegram, whatsapp
from agents_bridge.deliver import worker as delivery
from agents_bridge.deliver.channel import ChannelDelivery
from agents_bridge.deliver.email import EmailSender
from agents_bridge.deliver.email_drafts import DraftStore
from agents_bridge.deliver.group import WorkerGroup
from agents_bridge.deliver.log import PgDeliveryLog
from agents_bridge.deliver.telegram_api import TelegramSender
from agents_bridge.forward import worker as forwarder
from agents_bridge.forward.gateway_client import GatewayClient
from agents_bridge.forward.typing_indicator import TelegramTyping
from common.db import open_pool
from common.directory import Directory
from common.kafka import EventProducer
from common.settings import Settings
from common.signals import on_stop_signals
from common.telemetry import serve_metrics, setup_logging

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def run_forwarder(settings: Settings) -> None:
    """Run the forwarder worker until SIGTERM/SIGINT."""
    async with _resources(settings) as (producer, directory, http):
        typing = TelegramTyping(TelegramSender(http, settings), directory)
        handler = forwarder.Forwarder(
            settings,
            producer=producer,
            directory=directory,
            gateway=GatewayClient(http, settings),
            indicator=typing,
        )
        try:
            await run_until_signalled(forwarder.build_worker(settings, handler, producer))
        finally:
            await typing.close()


async def run_delivery(settings: Settings) -> None:
    """Run the delivery worker until SIGTERM/SIGINT."""
    async with _resources(settings) as (producer, directory, http):
        pool = await open_pool(settings, max_size=4)  # outbound_deliveries, message_statuses
        try:
            channels: dict[str, ChannelDelivery] = {
                "telegram": telegram.build(settings, http, directory, pool),
                "whatsapp": whatsapp.build(settings, http, directory, pool, producer),
                "email": _email(settings, directory, pool),
            }
            handler = delivery.Delivery(channels)
            recorder = statuses.StatusRecorder(pool)
            workers = WorkerGroup(
                delivery.build_worker(settings, handler, producer),
                statuses.build_worker(settings, recorder, producer),
            )
            await run_until_signalled(workers)
        finally:
            await pool.close()


def _email(settings: Settings, directory: Directory, pool: AsyncConnectionPool) -> EmailSender:
    """Email replies through the SMTP relay (each recorded in outbound_deliveries, so a
    redelivered reply is not mailed twice), or drafts for tenants in approve mode."""
    return EmailSender(
        settings, directory=directory, drafts=DraftStore(settings), deliveries=PgDeliveryLog(pool)
    )


async def run_until_signalled(worker: Stoppable) -> None:
    """`worker.run()` with SIGTERM/SIGINT mapped to `worker.stop()` (graceful drain)."""
    with on_stop_signals(worker.stop):
        await worker.run()


@asynccontextmanager
async def _resources(
    settings: Settings,
) -> AsyncIterator[tuple[EventProducer, Directory, aiohttp.ClientSession]]:
    setup_logging(settings.log_level)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    producer = EventProducer(settings)
    directory = Directory(settings)
    try:
        await directory.start()
        # No connector cap: the worker bounds in-flight requests (per lane and per tenant).
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            yield producer, directory, http
    finally:
        await directory.stop()
        await asyncio.get_running_loop().run_in_executor(None, producer.close)
