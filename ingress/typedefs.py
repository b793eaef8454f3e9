"""Typed application state: the AppKeys and the collaborator interfaces ingress depends on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from common.directory import Tenant
from common.settings import Settings
from common.topics import Topic
from ingress.dedup import RecentUpdates


class Producer(Protocol):
    """What ingress needs of `common.kafka.EventProducer`."""

    async def send(
        self,
        topic: Topic,
        key: str,
        record: Mapping[str, Any],
        *,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None: ...


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
