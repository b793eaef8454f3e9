"""Fakes for the ingress tests: a directory from dataclasses, tenants, updates, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY

from common.directory import TelegramBinding, Tenant
from common.secrets import token_hash
from common.settings import Secret
from tests.tenants import a_tenant

TENANT_A = "0b7c2f5e-8a51-4a8e-9d0e-3f1c2b4a5d6e"
TENANT_B = "5d2e9a10-1f3b-4c6d-8e7f-9a0b1c2d3e4f"
BOT_A, SECRET_A = "7000000001", "secret-a_0123456789"
BOT_B, SECRET_B = "7000000002", "secret-b_9876543210"
TENANT_S, BOT_S, SECRET_S = "c0ffee00-0000-4000-8000-000000000003", "7000000003", "secret-s"
MAX_BODY = 4096


class FakeDirectory:
    """The lookups of `common.directory.Directory`, over a fixed list of tenants."""

    def __init__(self, tenants: Iterable[Tenant], *, loaded: bool = True) -> None:
        self._tenants = {t.tenant_id: t for t in tenants}
        self._by_bot = {t.telegram.bot_id: t for t in self._tenants.values() if t.telegram}
        self.loaded = asyncio.Event()
        if loaded:
            self.loaded.set()
        self.started = False
        self.stopped = False

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def by_telegram_bot(self, bot_id: str) -> Tenant | None:
        return self._by_bot.get(bot_id)

    def __len__(self) -> int:
        return len(self._tenants)

    async def start(self) -> None:
        self.started = True
        self.loaded.set()

    async def stop(self) -> None:
        self.stopped = True


def make_tenant(tenant_id: str, bot_id: str, secret: str, *, status: str = "active") -> Tenant:
    return a_tenant(
        tenant_id,
        status=status,
        telegram=TelegramBinding(
            bot_id=bot_id, secret_hash=token_hash(secret), bot_token=Secret(f"{bot_id}:AAtoken")
        ),
    )


def text_update(
    update_id: int = 100001,
    *,
    text: str = "hello",
    chat_id: int = 8734062810,
    user_id: int = 8734062810,
    **message_extra: Any,
) -> dict[str, Any]:
    """A Telegram text-message update shaped like the Bot API's (research/protocols.md)."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1735689600,
            "text": text,
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": "Ada",
                "username": "ada",
                "language_code": "en",
            },
            "chat": {"id": chat_id, "type": "private", "first_name": "Ada"},
            **message_extra,
        },
    }


class Metric:
    """Reads a counter sample so tests can assert on deltas."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.start = self.now()

    def now(self) -> float:
        return REGISTRY.get_sample_value(self.name, self.labels) or 0.0

    @property
    def delta(self) -> float:
        return self.now() - self.start
