"""The billing tests' rig: the real ingress and lifecycle service on a real Docker engine
(`billing_rig`), and readers of what they wrote (tenant rows, gateway replies, container
limits)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import docker
import psycopg
from psycopg.rows import dict_row

from agents_bridge.provision.billing_store import BillingStore
from agents_bridge.provision.channel_setup import TelegramWebhooks
from agents_bridge.provision.provisioner import Provisioner
from agents_bridge.provision.units_store import UnitStore
from agents_bridge.provision.worker import LifecycleService, build_worker
from common.kafka import EventProducer
from common.secrets import SecretBox
from common.settings import Secret, Settings
from devstack._proc import free_port
from devstack.docker_engine import DockerEngine
from devstack.probes import eventually
from devstack.stub_llm import StubLLM
from devstack.telegram_api import TelegramApiStandIn
from ingress.main import run as run_ingress
from tests.fakes import DateClock
from tests.stripe_events import WEBHOOK_SECRET, body_of, sign

MIB = 1024 * 1024
GATEWAY_WAIT_S = 600.0  # a cold gateway on 1 CPU: ~20 s alone, minutes on a busy 2-core machine


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def billing_rig(
    settings: Settings, docker_engine: DockerEngine, engine: docker.DockerClient, llm: StubLLM
) -> AsyncIterator[dict[str, Any]]:
    """Ingress + lifecycle service running; yields what the test needs to drive them."""
    s = Settings.from_env(
        {},
        **{
            **vars(settings),
            "stripe_webhook_secret": Secret(WEBHOOK_SECRET),
            "docker_host": docker_engine.docker_host,
            "provisioner_prefix": f"ocs-{uuid.uuid4().hex[:6]}-",
            "gateway_llm_base_url": f"http://host.docker.internal:{llm.port}/v1",
            "gateway_llm_model": llm.model,
            "gateway_extra_hosts": "host.docker.internal:host-gateway",
            "gateway_ready_timeout_s": GATEWAY_WAIT_S,
            "ingress_port": free_port(),
            "pool_size": 5,
        },
    )
    telegram = TelegramApiStandIn()
    base = await telegram.start()
    s = Settings.from_env(
        {},
        **{
            **vars(s),
            "telegram_api_base": base,
            "public_base_url": f"http://127.0.0.1:{s.ingress_port}",
        },
    )
    clock = Clock()
    producer = EventProducer(s)
    units = UnitStore(s)
    provisioner = Provisioner(s, engine, units)
    service = LifecycleService(
        s,
        store=BillingStore(s),
        provisioner=provisioner,
        producer=producer,
        channels=TelegramWebhooks(s),
        clock=DateClock(clock),
    )
    worker = build_worker(s, service, producer)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_ingress(s, stop=stop)),
        asyncio.create_task(worker.run()),
    ]
    url = f"http://127.0.0.1:{s.ingress_port}/webhooks/stripe"
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{s.ingress_port}/readyz") as r:
                    return r.status == 200
            return False

        await eventually(up, timeout=60, what="ingress ready")

        async def post(evt: dict[str, Any], signature: str | None = None) -> int:
            body = body_of(evt)
            headers = {"Stripe-Signature": signature if signature is not None else sign(body)}
            async with http.post(url, data=body, headers=headers) as resp:
                return resp.status

        try:
            yield {
                "settings": s,
                "post": post,
                "clock": clock,
                "service": service,
                "units": units,
                "provisioner": provisioner,
                "engine": engine,
                "telegram": telegram,
                "http": http,
            }
        finally:
            stop.set()
            worker.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(producer.close)
            await telegram.stop()
            for c in engine.containers.list(all=True, filters={"name": s.provisioner_prefix}):
                c.remove(force=True)


async def one(settings: Settings, sql: str, *params: Any) -> dict[str, Any] | None:
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, row_factory=dict_row
    ) as conn:
        row: dict[str, Any] | None = await (await conn.execute(sql, params)).fetchone()
        return row


async def tenant_row(settings: Settings, tenant_id: str) -> dict[str, Any] | None:
    return await one(
        settings,
        "SELECT t.status, s.plan_id, p.msg_limit, g.base_url, g.token, g.agent_id, g.mode"
        " FROM tenants t JOIN subscriptions s ON s.tenant_id = t.id"
        " JOIN plans p ON p.id = s.plan_id"
        " LEFT JOIN tenant_gateways g ON g.tenant_id = t.id WHERE t.id = %s",
        tenant_id,
    )


def chat(settings: Settings, row: dict[str, Any], text: str) -> str:
    token = SecretBox(settings).open(bytes(row["token"])).value
    req = urllib.request.Request(  # noqa: S310 (loopback)
        row["base_url"] + "/v1/chat/completions",
        data=json.dumps(
            {
                "model": f"openclaw/{row['agent_id']}",
                "user": "conv-1",
                "messages": [{"role": "user", "content": text}],
            }
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=420) as resp:  # noqa: S310 (loopback)
        reply: str = json.load(resp)["choices"][0]["message"]["content"]
        return reply


def limits(engine: docker.DockerClient, name: str) -> tuple[int, int, str]:
    c = engine.containers.get(name)
    return c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["NanoCpus"], c.status
