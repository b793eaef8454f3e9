"""Typed application state: the AppKeys and the collaborator interfaces ingress depends on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from common.directory import Tenant
from common.kafka import EventSink
from common.settings import Settings
from ingress.dedup import RecentUpdates

#: What ingress needs of `common.kafka.EventProducer`.
Producer = EventSink


class RoutingDirectory(Protocol):
    """What ingress needs of `common.directory.Directory`: in-memory lookups only."""

    loaded: asyncio.Event

    def by_telegram_bot(self, bot_id: str) -> Tenant | None: ...


@dataclass
class Lifecycle:
    """Mutable process state the readiness probe reports."""

    stopping: bool = False
    producer_open: bool = True


SETTINGS = web.AppKey("settings", Settings)
PRODUCER = web.AppKey[Producer]("producer")
DIRECTORY = web.AppKey[RoutingDirectory]("directory")
RECENT_UPDATES = web.AppKey("recent_updates", RecentUpdates)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
