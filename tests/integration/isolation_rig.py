"""The isolation tests' rig: two tenants, alpha and bravo, each with its own bot, WhatsApp
number and stub gateway, every service running (`isolation_run`), and the ways the tests
talk to the run (webhook posts, SQL, the CLI), each answer kept for the secrecy check."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg.rows import dict_row

from chaos.gateways import StubGateways
from common.settings import Secret, Settings
from control.processes import ServiceGroup
from control.tenants import NewTenant, create_tenant
from control.whatsapp import WhatsAppNumber, bind_whatsapp
from devstack import telegram_payloads as tg_payloads
from devstack._proc import free_port
from devstack.graph_api import GraphApiStandIn
from devstack.telegram_api import TelegramApiStandIn

SERVICES = ("ingress", "streams", "forwarder", "delivery")


@dataclass
class Party:
    name: str
    tenant_id: str
    agent_id: str
    bot_id: str
    bot_token: str
    secret_token: str
    gateway_token: str
    number: WhatsAppNumber

    def secrets(self) -> list[str]:
        n = self.number
        return [
            self.bot_token,
            self.secret_token,
            self.gateway_token,
            n.access_token,
            n.app_secret,
            n.verify_token,
        ]


@dataclass
class Run:
    settings: Settings
    group: ServiceGroup
    ingress: str
    telegram: TelegramApiStandIn
    graph: GraphApiStandIn
    gateways: StubGateways
    alpha: Party
    bravo: Party
    metrics_ports: dict[str, int]
    answers: list[str]  # every HTTP answer body ingress gave in this run
    cli_output: list[str]

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.group.log_dir.glob("*.log"))


def party(
    settings: Settings,
    telegram: TelegramApiStandIn,
    graph: GraphApiStandIn,
    gateways: StubGateways,
    ingress: str,
    name: str,
) -> Party:
    bot_token = tg_payloads.bot_token()
    telegram.register_bot(bot_token)
    gateway_token = f"gw-{name}-{secrets.token_urlsafe(18)}"
    created = create_tenant(
        settings,
        NewTenant(
            name=f"{name}-{uuid.uuid4().hex[:6]}",
            plan="business",
            owner_email=f"{name}@example.test",
            telegram_bot_token=bot_token,
            gateway_url=gateways.add(name, gateway_token),
            gateway_token=gateway_token,
            gateway_agent_id=name,
        ),
    )
    number = WhatsAppNumber(
        phone_number_id=str(10**14 + secrets.randbelow(10**14)),
        access_token=f"EAA{secrets.token_urlsafe(24)}",
        app_secret=secrets.token_hex(16),
        verify_token=secrets.token_urlsafe(12),
    )
    bind_whatsapp(settings, created["tenant_id"], number)
    graph.register_number(
        number.phone_number_id,
        number.access_token,
        app_secret=number.app_secret,
        webhook_url=f"{ingress}/webhooks/whatsapp",
        statuses=(),
    )
    return Party(
        name=name,
        tenant_id=created["tenant_id"],
        agent_id=created["agent_id"],
        bot_id=created["telegram"]["bot_id"],
        bot_token=bot_token,
        secret_token=created["telegram"]["secret_token"],
        gateway_token=gateway_token,
        number=number,
    )


@contextlib.asynccontextmanager
async def isolation_run(settings: Settings, tmp_path: Path) -> AsyncIterator[Run]:
    """Every service, alpha and bravo created and bound, the stand-ins and stub gateways up."""
    telegram, graph, gateways = TelegramApiStandIn(), GraphApiStandIn(), StubGateways()
    tg_base, graph_base = await telegram.start(), await graph.start()
    await gateways.start()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = Settings.from_env(
        {},
        **{
            **vars(settings),
            "telegram_api_base": tg_base,
            "whatsapp_graph_base": graph_base,
            "secrets_key": Secret(key),
            "gateway_attempts": 1,
            "log_level": "DEBUG",  # the most talkative the services get
        },
    )
    ingress = f"http://127.0.0.1:{settings.ingress_port}"
    alpha = party(settings, telegram, graph, gateways, ingress, "alpha")
    bravo = party(settings, telegram, graph, gateways, ingress, "bravo")
    ports = {name: free_port() for name in SERVICES if name != "ingress"}
    group = ServiceGroup(settings, SERVICES, tmp_path / "logs", metrics_ports=ports)
    try:
        await asyncio.to_thread(group.start)
        await asyncio.to_thread(group.wait_http_ready, f"{ingress}/readyz", 60)
        yield Run(settings, group, ingress, telegram, graph, gateways, alpha, bravo, ports, [], [])
    finally:
        await asyncio.to_thread(group.stop)
        await telegram.stop()
        await graph.stop()
        await gateways.stop()


def update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return tg_payloads.update(update_id, chat_id, text, date=int(time.time()))


async def post(
    r: Run, http: aiohttp.ClientSession, path: str, body: bytes, headers: dict[str, str]
) -> int:
    async with http.post(f"{r.ingress}{path}", data=body, headers=headers) as resp:
        r.answers.append(await resp.text())
        return resp.status


async def query_rows(settings: Settings, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, row_factory=dict_row
    ) as conn:
        return await (await conn.execute(sql, params)).fetchall()


def run_cli(r: Run, *args: str) -> dict[str, Any]:
    env = {**os.environ, **r.settings.to_env()}
    done = subprocess.run(
        [sys.executable, "-m", "control.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    r.cli_output += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out
