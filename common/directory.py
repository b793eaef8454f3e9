"""The tenant directory: who owns which bot, plan and gateway, held in memory.

Loaded from PostgreSQL (the system of record) at start-up and reloaded whenever a
`directory_changed` notification arrives (triggers on the routing tables), plus a slow
periodic refresh as a safety net. Lookups never touch the database, so routing costs no
round trip per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag

from common.db import connect
from common.secrets import SecretBox
from common.settings import Secret, Settings

log = logging.getLogger(__name__)
#: How long a starting service waits for PostgreSQL before it gives up.
START_WAIT_S = 120.0


@dataclass(frozen=True)
class TelegramBinding:
    bot_id: str
    secret_hash: bytes
    bot_token: Secret


@dataclass(frozen=True)
class Binding:
    """Any channel binding: `external_id` is the bot id, phone_number_id or mail local part.

    `credentials` holds the opened secrets (sealed JSON object in PostgreSQL, or for
    Telegram the bot token under "bot_token"); `settings` the non-secret options.
    """

    tenant_id: str
    channel: str
    external_id: str
    secret_hash: bytes
    credentials: Mapping[str, Secret]
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    agent_id: str
    status: str
    plan_id: str | None
    msg_limit: int | None
    upgrade_to: str | None
    period_start: datetime | None
    period_end: datetime | None
    gateway_url: str | None
    gateway_token: Secret
    gateway_agent_id: str | None
    telegram: TelegramBinding | None
    bindings: tuple[Binding, ...] = ()
    # The plan upgrade_to names, for upgrade prompts (upgrade_msg_limit None: unlimited).
    upgrade_name: str | None = None
    upgrade_msg_limit: int | None = None

    def binding(self, channel: str) -> Binding | None:
        """This tenant's binding on `channel`, if it has one."""
        return next((b for b in self.bindings if b.channel == channel), None)


_TENANTS_SQL = """
SELECT t.id::text AS tenant_id, t.agent_id, t.status,
       s.plan_id, p.msg_limit, p.upgrade_to, s.current_period_start, s.current_period_end,
       g.base_url, g.token AS gateway_token, g.agent_id AS gateway_agent_id,
       up.name AS upgrade_name, up.msg_limit AS upgrade_msg_limit
FROM tenants t
LEFT JOIN subscriptions s ON s.tenant_id = t.id
LEFT JOIN plans p ON p.id = s.plan_id
LEFT JOIN plans up ON up.id = p.upgrade_to
LEFT JOIN tenant_gateways g ON g.tenant_id = t.id
"""
_BINDINGS_SQL = """
SELECT tenant_id::text AS tenant_id, channel, external_id, secret_hash, credentials, settings
FROM channel_bindings
"""


class Directory:
    """In-memory routing table kept current from PostgreSQL."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._box = SecretBox(settings)
        self._tenants: dict[str, Tenant] = {}
        self._by_bot: dict[str, Tenant] = {}
        self._by_binding: dict[tuple[str, str], tuple[Tenant, Binding]] = {}
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()
        self.version = 0

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def by_telegram_bot(self, bot_id: str) -> Tenant | None:
        return self._by_bot.get(bot_id)

    def by_binding(self, channel: str, external_id: str) -> tuple[Tenant, Binding] | None:
        """Route by any channel's external id (WhatsApp phone_number_id, mail local part)."""
        return self._by_binding.get((channel, external_id))

    def tenants(self) -> list[Tenant]:
        return list(self._tenants.values())

    def __len__(self) -> int:
        return len(self._tenants)

    async def reload(self) -> None:
        """Read the whole directory in one transaction and swap it in."""
        conn = await connect(self._settings)
        try:
            tenants_rows = await (await conn.execute(_TENANTS_SQL)).fetchall()
            binding_rows = await (await conn.execute(_BINDINGS_SQL)).fetchall()
        finally:
            await conn.close()
        self._swap(tenants_rows, binding_rows)

    def _credentials(self, channel: str, sealed: bytes | None) -> dict[str, Secret]:
        if not sealed:
            return {}
        opened = self._box.open(bytes(sealed)).value
        if channel == "telegram":  # the bot token itself is sealed
            return {"bot_token": Secret(opened)}
        return {k: Secret(str(v)) for k, v in json.loads(opened).items()}

    def _opened(self, tenant_id: str, what: str, sealed: bytes) -> Secret | None:
        """A sealed value, or None (logged, never raised) when SECRETS_KEY cannot open it:
        one row sealed under another key (a botched rotation) must not take down every
        tenant's routing, only its own binding or gateway."""
        try:
            return self._box.open(sealed)
        except (InvalidTag, ValueError) as err:
            log.error(
                "tenant %s: %s cannot be opened with SECRETS_KEY (%s); left out",
                tenant_id,
                what,
                type(err).__name__,
            )
            return None

    def _swap(self, tenant_rows: list[dict[str, Any]], binding_rows: list[dict[str, Any]]) -> None:
        bindings: dict[str, list[Binding]] = {}
        for r in binding_rows:
            try:
                credentials = self._credentials(r["channel"], r["credentials"])
            except (InvalidTag, ValueError) as err:  # sealed under another key, or not JSON
                log.error(
                    "tenant %s: %s binding's credentials cannot be opened (%s); binding left out",
                    r["tenant_id"],
                    r["channel"],
                    type(err).__name__,
                )
                continue
            bindings.setdefault(r["tenant_id"], []).append(
                Binding(
                    tenant_id=r["tenant_id"],
                    channel=r["channel"],
                    external_id=r["external_id"],
                    secret_hash=bytes(r["secret_hash"] or b""),
                    credentials=credentials,
                    settings=r["settings"] or {},
                )
            )
        telegram = {
            b.tenant_id: TelegramBinding(
                bot_id=b.external_id,
                secret_hash=b.secret_hash,
                bot_token=b.credentials.get("bot_token", Secret("")),
            )
            for bs in bindings.values()
            for b in bs
            if b.channel == "telegram"
        }
        tenants = {}
        for r in tenant_rows:
            token = r["gateway_token"]
            tenants[r["tenant_id"]] = Tenant(
                tenant_id=r["tenant_id"],
                agent_id=r["agent_id"],
                status=r["status"],
                plan_id=r["plan_id"],
                msg_limit=r["msg_limit"],
                upgrade_to=r["upgrade_to"],
                period_start=r["current_period_start"],
                period_end=r["current_period_end"],
                gateway_url=r["base_url"],
                gateway_token=(
                    self._opened(r["tenant_id"], "gateway token", bytes(token)) or Secret("")
                    if token
                    else Secret("")
                ),
                gateway_agent_id=r["gateway_agent_id"],
                telegram=telegram.get(r["tenant_id"]),
                bindings=tuple(bindings.get(r["tenant_id"], ())),
                upgrade_name=r.get("upgrade_name"),
                upgrade_msg_limit=r.get("upgrade_msg_limit"),
            )
        self._tenants = tenants
        self._by_bot = {t.telegram.bot_id: t for t in tenants.values() if t.telegram}
        self._by_binding = {
            (b.channel, b.external_id): (t, b) for t in tenants.values() for b in t.bindings
        }
        self.version += 1
        self.loaded.set()

    async def start(self, *, wait_s: float = START_WAIT_S) -> None:
        """Load once, then follow changes. PostgreSQL down at start-up (a restart, a
        failover) is waited for with backoff for up to `wait_s`, then the error is raised."""
        deadline = asyncio.get_running_loop().time() + wait_s
        delay = 0.5
        while True:
            try:
                await self.reload()
                break
            except psycopg.OperationalError as err:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise
                log.warning("directory: PostgreSQL unreachable (%s), retrying", type(err).__name__)
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 5.0)
        self._task = asyncio.create_task(self._follow(), name="directory-follow")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            try:
                conn = await connect(self._settings)
                async with conn:
                    await conn.execute("LISTEN directory_changed")
                    await self.reload()  # catch what changed while we were not listening
                    while True:
                        got = False
                        async for _n in conn.notifies(timeout=self._settings.directory_refresh_s):
                            got = True
                            break
                        await self.reload()
                        if got:
                            log.debug("directory reloaded (v%d)", self.version)
            except (psycopg.Error, OSError) as err:
                log.warning("directory follow lost PostgreSQL (%s); retrying", err)
                await asyncio.sleep(1.0)
