"""Two tenants bound on every channel at once, for the fuzz, signature and isolation tests.

Tenant A and tenant B each own a Telegram bot, a WhatsApp number (with its own app secret
and verify token) and an email agent address; `AllChannelsDirectory` answers every lookup
ingress makes (`by_telegram_bot`, `by_binding`, `tenants`), in memory like the real one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

from common.directory import Binding, TelegramBinding, Tenant
from common.secrets import token_hash
from common.settings import Secret
from tests.tenants import a_tenant


@dataclass(frozen=True)
class Party:
    """Everything one fake tenant is bound with (its secrets included, for signing)."""

    tenant_id: str
    bot_id: str
    bot_secret: str
    pnid: str
    app_secret: str
    verify_token: str
    access_token: str
    email_agent: str


def _party(tag: str, n: int, tenant_id: str, email_agent: str) -> Party:
    """A tenant's ids and secrets, told apart from the other's by `tag` ("A") and `n` (1)."""
    return Party(
        tenant_id=tenant_id,
        bot_id=f"700000000{n}",
        bot_secret=f"tg-secret-{tag}_{n}123456789",
        pnid=f"1065403522429{n + 1}{n + 1}",
        app_secret=f"app-secret-{tag}-{n}f9e1c",
        verify_token=f"verify-{tag}-{n}d1b",
        access_token=f"EAA-access-{tag}-{str(n) * 5}",
        email_agent=email_agent,
    )


A = _party("A", 1, "0b7c2f5e-8a51-4a8e-9d0e-3f1c2b4a5d6e", "alpha")
B = _party("B", 2, "5d2e9a10-1f3b-4c6d-8e7f-9a0b1c2d3e4f", "bravo")
MAIL_DOMAIN = "agents.example.test"


def tenant_of(party: Party, *, status: str = "active") -> Tenant:
    whatsapp = Binding(
        tenant_id=party.tenant_id,
        channel="whatsapp",
        external_id=party.pnid,
        secret_hash=hashlib.sha256(party.verify_token.encode()).digest(),
        credentials={
            "access_token": Secret(party.access_token),
            "app_secret": Secret(party.app_secret),
            "verify_token": Secret(party.verify_token),
        },
        settings={},
    )
    email = Binding(
        tenant_id=party.tenant_id,
        channel="email",
        external_id=party.email_agent,
        secret_hash=b"",
        credentials={},
        settings={},
    )
    return a_tenant(
        party.tenant_id,
        agent_id=f"agent-{party.email_agent}",
        status=status,
        gateway_url=f"http://127.0.0.1:1/{party.email_agent}",
        gateway_token=Secret(f"gw-token-{party.email_agent}"),
        telegram=TelegramBinding(
            bot_id=party.bot_id,
            secret_hash=token_hash(party.bot_secret),
            bot_token=Secret(f"{party.bot_id}:AA-bot-token-{party.email_agent}"),
        ),
        bindings=(whatsapp, email),
    )


class AllChannelsDirectory:
    """The in-memory lookups of `common.directory.Directory`, over a fixed set of tenants."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self.loaded = asyncio.Event()
        self.loaded.set()
        self.swap(tenants)

    def swap(self, tenants: Iterable[Tenant]) -> None:
        """Replace every tenant at once, as a directory reload does."""
        self._tenants = {t.tenant_id: t for t in tenants}

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def tenants(self) -> list[Tenant]:
        return list(self._tenants.values())

    def by_telegram_bot(self, bot_id: str) -> Tenant | None:
        for t in self._tenants.values():
            if t.telegram is not None and t.telegram.bot_id == bot_id:
                return t
        return None

    def by_binding(self, channel: str, external_id: str) -> tuple[Tenant, Binding] | None:
        for t in self._tenants.values():
            for b in t.bindings:
                if (b.channel, b.external_id) == (channel, external_id):
                    return t, b
        return None

    def __len__(self) -> int:
        return len(self._tenants)


def two_tenants() -> AllChannelsDirectory:
    return AllChannelsDirectory([tenant_of(A), tenant_of(B)])


def rotated(party: Party, **changes: str) -> Party:
    """`party` with some of its secrets replaced (a rebind or a new webhook secret)."""
    return replace(party, **changes)
