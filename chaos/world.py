"""The far ends of a chaos run and its tenants.

Every tenant (Business plan: 10,000 messages a month, so no quota interferes) has its own
Telegram bot, WhatsApp number, email address and gateway (`chaos.gateways`, one port for
all). The end users' side: the Telegram Bot API stand-in, the Graph API stand-in and the
SMTP relay sink, all in this process, record every reply they get.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.world import World
from chaos.gateways import StubGateways
from common.settings import Settings
from control.email_admin import bind_email
from control.migrate import migrate
from control.processes import ServiceGroup
from control.tenants import NewTenant, create_tenant
from control.whatsapp import WhatsAppNumber, bind_whatsapp
from devstack import Stack
from devstack import telegram_payloads as tg_payloads
from devstack._proc import free_port
from devstack.graph_api import GraphApiStandIn
from devstack.smtp_relay import RelaySink
from devstack.telegram_api import TelegramApiStandIn

MAIL_DOMAIN = "agents.chaos.test"


@dataclass(frozen=True)
class ChaosTenant:
    index: int
    gateway: str  # its gateway's name in StubGateways, t000...
    tenant_id: str
    bot_id: str
    secret_token: str
    phone_number_id: str
    app_secret: str
    address: str  # agent-<id>@MAIL_DOMAIN


class StampedRelay(RelaySink):
    """The relay sink, also noting when each mail arrived (`arrived[i]` for `received[i]`)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):  # no await in between: stays aligned with `received`
            self.arrived.append(time.time())
        return answer


@dataclass
class FarEnd:
    """The stand-ins for the channels' APIs and the tenants' gateways."""

    telegram: TelegramApiStandIn = field(default_factory=TelegramApiStandIn)
    graph: GraphApiStandIn = field(default_factory=GraphApiStandIn)
    relay: StampedRelay = field(default_factory=StampedRelay)
    gateways: StubGateways = field(default_factory=StubGateways)
    _seen: dict[str, int] = field(default_factory=dict)  # replies read, per source
    _replies: list[tuple[str, str, float]] = field(default_factory=list)

    async def start(self) -> None:
        await self.telegram.start()
        await self.graph.start()
        await self.gateways.start()
        self.relay.start()

    async def stop(self) -> None:
        self.relay.stop()
        await self.gateways.stop()
        await self.graph.stop()
        await self.telegram.stop()

    def replies(self) -> list[tuple[str, str, float]]:
        """Every reply an end user got: (channel, text, wall-clock arrival).

        Incremental: each reply is read (a mail parsed) once, so calling this often does
        not stall the event loop that serves the stand-ins and the gateways.
        """
        t0, w0, e0 = (self._seen.get(k, 0) for k in ("t", "w", "e"))
        calls, graph = self.telegram.calls[t0:], self.graph.calls[w0:]
        mails = list(zip(self.relay.received[e0:], self.relay.arrived[e0:], strict=False))
        self._seen.update(t=t0 + len(calls), w=w0 + len(graph), e=e0 + len(mails))
        self._replies += [("telegram", c.text, c.at) for c in calls if c.method == "sendMessage"]
        self._replies += [("whatsapp", c.text, c.at) for c in graph if c.wamid]
        self._replies += [("email", m.text, at) for m, at in mails]
        return self._replies


class ChaosWorld:
    """Settings, tenants and services of one run, on a devstack Kafka and PostgreSQL."""

    def __init__(self, stack: Stack, state_dir: Path, far: FarEnd, plan_timeout_s: float) -> None:
        self.stack = stack
        self.state_dir = state_dir
        self.far = far
        self.bench = World(stack, state_dir)  # settings per topic prefix, services
        self.bench.stub_url = far.telegram.base_url
        self.run_id = uuid.uuid4().hex[:6]
        self.settings: Settings | None = None
        self.tenants: list[ChaosTenant] = []
        self._gateway_timeout_s = plan_timeout_s

    def configure(self, gateway_attempts: int, log_level: str) -> Settings:
        migrate(self.bench.database_url)
        settings = self.bench.settings(
            f"chaos{self.run_id}.",
            whatsapp_graph_base=self.far.graph.base_url,
            smtp_port=free_port(),
            smtp_relay_port=self.far.relay.port,
            mail_domain=MAIL_DOMAIN,
            gateway_timeout_s=self._gateway_timeout_s,
            gateway_attempts=gateway_attempts,
            directory_refresh_s=5.0,
        )
        self.settings = Settings.from_env({}, **{**vars(settings), "log_level": log_level})
        return self.settings

    async def create_tenants(self, count: int) -> list[ChaosTenant]:
        slots = asyncio.Semaphore(4)

        async def one(i: int) -> ChaosTenant:
            async with slots:
                return await self._tenant(i)

        self.tenants = list(await asyncio.gather(*(one(i) for i in range(count))))
        return self.tenants

    async def _tenant(self, i: int) -> ChaosTenant:
        settings = self.settings
        assert settings is not None
        far = self.far
        gateway, gateway_token = f"t{i:03d}", f"gw-{secrets.token_urlsafe(18)}"
        bot_token = tg_payloads.bot_token()
        far.telegram.register_bot(bot_token)
        number = WhatsAppNumber(
            phone_number_id=str(10**14 + secrets.randbelow(10**14)),
            access_token=f"EAA{secrets.token_urlsafe(24)}",
            app_secret=secrets.token_hex(16),
            verify_token=secrets.token_urlsafe(12),
        )
        far.graph.register_number(
            number.phone_number_id, number.access_token, app_secret=number.app_secret, statuses=()
        )
        name = f"chaos-{self.run_id}-{gateway}"
        new = NewTenant(
            name=name,
            plan="business",
            owner_email=f"{name}@owner.test",
            telegram_bot_token=bot_token,
            gateway_url=far.gateways.add(gateway, gateway_token),
            gateway_token=gateway_token,
            gateway_agent_id=gateway,
        )
        created = await asyncio.to_thread(create_tenant, settings, new)
        await asyncio.to_thread(bind_whatsapp, settings, created["tenant_id"], number)
        mail = await asyncio.to_thread(bind_email, settings, created["agent_id"])
        return ChaosTenant(
            index=i,
            gateway=gateway,
            tenant_id=created["tenant_id"],
            bot_id=created["telegram"]["bot_id"],
            secret_token=created["telegram"]["secret_token"],
            phone_number_id=number.phone_number_id,
            app_secret=number.app_secret,
            address=mail["address"],
        )

    def start_services(self, names: tuple[str, ...]) -> ServiceGroup:
        assert self.settings is not None
        return self.bench.services(self.settings, names)
