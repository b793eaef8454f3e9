"""Billing lifecycle on the real broker, database and a real Docker engine.

Signed Stripe events enter the real ingress, travel tenants.lifecycle to the lifecycle
service (in process, with a clock the test moves), which writes PostgreSQL and drives a
real dockerd (Debian's docker.io, private socket, started here) running real OpenClaw
gateway containers built from the cached Node + OpenClaw install. A stub LLM listens on
all addresses of this test's network namespace; containers reach it as
host.docker.internal. Two gateway containers at most: one dedicated, one pool.

Where no engine can start (not root, docker.io missing), the tests skip with the reason,
except under CI (CI=true), where they fail: the engine is part of the contract there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import docker
import pytest

from agents_bridge.provision import gateway_config as gc
from agents_bridge.provision.billing_store import agent_id_for
from agents_bridge.provision.policy_check import PolicyReading, read_policy
from agents_bridge.provision.provisioner import Provisioner
from agents_bridge.provision.units_store import Unit
from common import agent_policy
from common.settings import Settings
from common.telemetry import GATEWAY_TOOL_POLICY
from control.processes import ServiceGroup
from devstack.docker_engine import DockerEngine, engine_problem, ensure_gateway_image
from devstack.probes import eventually
from devstack.stub_llm import StubLLM
from devstack.telegram_api import TelegramApiStandIn
from ingress.stripe_payload import tenant_id_for
from streams.metering.outputs import NOTICE_TEXT
from tests.integration.billing_rig import (
    GATEWAY_WAIT_S,
    MIB,
    billing_rig,
    chat,
    limits,
    one,
    tenant_row,
)
from tests.stripe_events import checkout_completed, invoice, subscription

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def docker_engine() -> Iterator[DockerEngine]:
    problem = engine_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"no Docker engine in CI: {problem}")
        pytest.skip(f"no Docker engine here: {problem}")
    with DockerEngine() as eng:
        with contextlib.closing(eng.client(timeout=300)) as client:
            ensure_gateway_image(client)
        yield eng


@pytest.fixture(scope="module")
def engine(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    with contextlib.closing(docker_engine.client(timeout=300)) as client:
        yield client


@pytest.fixture(scope="module")
def llm() -> Iterator[StubLLM]:
    with StubLLM(host="0.0.0.0") as stub:  # test netns only
        yield stub


@pytest.fixture
async def billing(
    settings: Settings, docker_engine: DockerEngine, engine: docker.DockerClient, llm: StubLLM
) -> AsyncIterator[dict[str, Any]]:
    async with billing_rig(settings, docker_engine, engine, llm) as rig:
        yield rig


async def test_business_checkout_upgrade_suspension_and_deletion(
    billing: dict[str, Any], tmp_path: Path
) -> None:
    # the rest of the pipeline (metering, forwarder, delivery) starts while we provision
    group = ServiceGroup(billing["settings"], ("streams", "forwarder", "delivery"), tmp_path)
    await asyncio.to_thread(group.start)
    try:
        await _business_story(billing, group)
    finally:
        await asyncio.to_thread(group.stop)


async def _business_story(billing: dict[str, Any], group: ServiceGroup) -> None:
    s: Settings = billing["settings"]
    post, clock, engine = billing["post"], billing["clock"], billing["engine"]
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    tenant = tenant_id_for(customer)
    now = int(time.time())
    bot_token = f"{700_000_000 + now % 100_000_000}:{uuid.uuid4().hex}AAbb"
    telegram: TelegramApiStandIn = billing["telegram"]
    bot_id = telegram.register_bot(bot_token)
    checkout = checkout_completed(
        customer, plan="business", created=now, telegram_bot_token=bot_token
    )

    # bad or missing signatures change nothing
    assert await post(checkout, signature="t=1,v1=00") == 400
    assert await post(checkout, signature="") == 400
    assert await post(checkout) == 200
    assert await post(checkout) == 200  # Stripe's redelivery

    async def serving() -> dict[str, Any] | None:
        row = await tenant_row(s, tenant)
        return row if row and row["base_url"] else None

    row = await eventually(serving, timeout=GATEWAY_WAIT_S + 60, what="dedicated gateway")
    assert (row["status"], row["plan_id"], row["mode"]) == ("active", "business", "dedicated")
    name = f"{s.provisioner_prefix}d-{agent_id_for(tenant)}"
    assert limits(engine, name) == (1536 * MIB, 1_000_000_000, "running")
    assert engine.networks.get(f"{name}-net") and engine.volumes.get(f"{name}-data")
    reply = await asyncio.to_thread(chat, s, row, "hello business")
    assert reply == "STUB-REPLY #1 to: hello business"

    # the bot bought with the checkout points at our webhook, and a Telegram message
    # travels ingress -> metering -> forwarder -> this container -> delivery -> Telegram
    async def hooked() -> dict[str, Any] | None:
        hook = telegram.webhook(bot_token)
        return hook or None

    hook = await eventually(hooked, timeout=60, what="setWebhook")
    assert hook["url"] == f"{s.public_base_url}/webhooks/telegram/{bot_id}"
    update: dict[str, Any] = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": now,
            "text": "hi from telegram",
            "from": {"id": 4242, "is_bot": False, "first_name": "U"},
            "chat": {"id": 4242, "type": "private", "first_name": "U"},
        },
    }

    http: aiohttp.ClientSession = billing["http"]

    async def accepted(body: dict[str, Any] = update) -> bool:
        async with http.post(
            f"{s.public_base_url}/webhooks/telegram/{bot_id}",
            json=body,
            headers={"X-Telegram-Bot-Api-Secret-Token": hook["secret_token"]},
        ) as resp:
            return resp.status == 200

    # until the ingress directory has the new binding
    await eventually(accepted, timeout=30, what="telegram update accepted")
    try:
        calls = await telegram.wait_for(
            lambda calls: any(c.method == "sendMessage" for c in calls), timeout=300
        )
    except TimeoutError:
        raise AssertionError(
            "no reply; logs:\n"
            + "\n".join(group.log_tail(n) for n in ("streams", "forwarder", "delivery"))
        ) from None
    [sent] = [c for c in calls if c.method == "sendMessage"]
    assert (sent.chat_id, sent.text) == ("4242", "STUB-REPLY #1 to: hi from telegram")

    # an older plan arriving late changes nothing; the upgrade resizes in place
    assert await post(subscription(customer, plan="individual", created=now - 60)) == 200
    assert await post(subscription(customer, plan="enterprise", created=now + 5)) == 200

    async def upgraded() -> dict[str, Any] | None:
        r = await tenant_row(s, tenant)
        big = limits(engine, name)[:2] == (4096 * MIB, 2_000_000_000)
        return r if r and r["plan_id"] == "enterprise" and big else None

    row = await eventually(upgraded, timeout=120, what="enterprise limits")
    assert row["msg_limit"] is None  # the quota moved with the plan, at once

    # payment fails: grace, then (clock + 8 days) suspended, then (+ 31 days) deleted
    assert await post(invoice(customer, "in_1", paid=False, created=now + 10)) == 200

    async def status(want: str) -> bool:
        r = await tenant_row(s, tenant)
        return bool(r and r["status"] == want)

    await eventually(lambda: status("grace"), timeout=60, what="grace")
    assert limits(engine, name)[2] == "running"
    clock.now += timedelta(days=8)
    await billing["service"].tick()
    assert await status("suspended")
    assert limits(engine, name)[2] == "exited"

    # while suspended, a message is held (its sender gets the polite notice), not forwarded
    later = {**update, "update_id": 2}
    later["message"] = {**update["message"], "message_id": 2, "text": "while suspended"}

    assert await accepted(later)
    await telegram.wait_for(
        lambda calls: any(c.method == "sendMessage" and c.text == NOTICE_TEXT for c in calls),
        timeout=120,
    )

    async def held_one() -> bool:  # the queue row and the notice are written concurrently
        held = await one(
            s,
            "SELECT count(*) AS n FROM held_messages WHERE tenant_id = %s AND released_at IS NULL",
            tenant,
        )
        return held is not None and held["n"] == 1

    await eventually(held_one, timeout=30, what="one held message")
    assert not any("while suspended" in (c.text or "") for c in telegram.calls)

    # paying restores the gateway, and the held message is answered
    assert await post(invoice(customer, "in_1", paid=True, created=now + 20)) == 200

    async def restored() -> bool:
        return await status("active") and limits(engine, name)[2] == "running"

    await eventually(restored, timeout=120, what="active and running again")
    try:
        await telegram.wait_for(
            lambda calls: any("to: while suspended" in (c.text or "") for c in calls),
            timeout=GATEWAY_WAIT_S,
        )
    except TimeoutError:
        raise AssertionError(
            "held message not answered; logs:\n"
            + "\n".join(group.log_tail(n) for n in ("streams", "forwarder", "delivery"))
        ) from None

    # a second failure: its grace has already run out on the moved clock, so suspended at
    # once (the gateway stopped again), then deleted
    assert await post(invoice(customer, "in_2", paid=False, created=now + 30)) == 200

    async def stopped_again() -> bool:
        return await status("suspended") and limits(engine, name)[2] == "exited"

    await eventually(stopped_again, timeout=60, what="suspended and stopped again")
    clock.now += timedelta(days=23)
    await billing["service"].tick()
    assert await status("deleted")
    # the bot no longer points at us, and is free for another tenant
    assert [c.method for c in telegram.calls if c.method.endswith("Webhook")][-1] == "deleteWebhook"
    assert telegram.webhook(bot_token) == {}
    bound = await one(s, "SELECT count(*) AS n FROM channel_bindings WHERE tenant_id = %s", tenant)
    assert bound is not None and bound["n"] == 0
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(name)
    with pytest.raises(docker.errors.NotFound):
        engine.volumes.get(f"{name}-data")
    gone = await tenant_row(s, tenant)
    assert gone is not None and gone["base_url"] is None


async def test_two_individual_checkouts_share_one_pool_gateway(billing: dict[str, Any]) -> None:
    s: Settings = billing["settings"]
    post, engine = billing["post"], billing["engine"]
    customers = [f"cus_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    now = int(time.time())
    for customer in customers:
        assert await post(checkout_completed(customer, plan="individual", created=now)) == 200
    tenants = [tenant_id_for(c) for c in customers]

    async def both_serving() -> list[dict[str, Any]] | None:
        rows = [await tenant_row(s, t) for t in tenants]
        return rows if all(r and r["base_url"] for r in rows) else None  # type: ignore[return-value]

    rows = await eventually(both_serving, timeout=GATEWAY_WAIT_S + 60, what="pool agents")
    assert rows[0]["base_url"] == rows[1]["base_url"]  # one pool container
    assert {r["mode"] for r in rows} == {"shared_pool"}
    assert [r["agent_id"] for r in rows] == [agent_id_for(t) for t in tenants]
    pools = engine.containers.list(filters={"name": f"{s.provisioner_prefix}pool-"})
    assert len(pools) == 1
    cat = pools[0].exec_run(["cat", "/home/node/.openclaw/openclaw.json"], user="1000")
    config = json.loads(cat.output)
    assert config["tools"] == agent_policy.tools_policy()
    assert config["commands"]["text"] is False
    assert sorted(config["agents"]["entries"]) == sorted(agent_id_for(t) for t in tenants)
    await _a_pool_on_the_open_policy_is_converged(billing, pools[0], tenants)
    for i, r in enumerate(rows):
        assert (
            await asyncio.to_thread(chat, s, r, f"hi from {i}") == f"STUB-REPLY #1 to: hi from {i}"
        )
    # replaying the checkouts converges to the same single container
    for customer in customers:
        assert await post(checkout_completed(customer, plan="individual", created=now)) == 200
    await billing["service"].tick()
    assert len(engine.containers.list(filters={"name": f"{s.provisioner_prefix}pool-"})) == 1


class OpenPolicyProvisioner(Provisioner):
    """Renders the policy the platform had before `common.agent_policy` (a broken upgrade)."""

    def _config(self, unit: Unit) -> bytes:
        cfg = json.loads(super()._config(unit))
        cfg.pop("commands")
        return gc.config_bytes({**cfg, "tools": {"profile": "messaging"}})


async def _a_pool_on_the_open_policy_is_converged(
    billing: dict[str, Any], pool: Any, tenants: list[str]
) -> None:
    """A gateway still on the open policy is taken off traffic until it reads back right;
    the start-up audit (the first recheck) converges it."""
    s: Settings = billing["settings"]
    units, provisioner = billing["units"], billing["provisioner"]
    unit = units.unit_of(tenants[0])
    agents = [agent_id_for(t) for t in tenants]

    async def reading(ok: bool) -> PolicyReading | None:
        got = await asyncio.to_thread(read_policy, unit.base_url, unit.token.value, agents)
        return got if got.ok == ok else None

    open_policy = OpenPolicyProvisioner(
        Settings.from_env({}, **{**vars(s), "gateway_policy_timeout_s": 10.0}),
        billing["engine"],
        units,
    )

    written = [0.0]

    async def open_live() -> PolicyReading | None:
        # Written in place as the provisioner does, again every few seconds (a write before
        # the gateway's watcher is up is not seen); a reading taken while the reload lands
        # is partial, so wait for the whole open policy.
        if time.monotonic() - written[0] > 5:
            await asyncio.to_thread(open_policy._write_config, pool, unit)
            written[0] = time.monotonic()
        got = await reading(False)
        full = got is not None and all(f"{a}/sessions_list" in got.reachable for a in agents)
        return got if full else None

    leaky = await eventually(open_live, timeout=90, what="the open policy live", interval=0.5)
    assert f"{agents[0]}/sessions_list" in leaky.reachable
    assert await asyncio.to_thread(open_policy.converge_all) == {unit.name: False}
    assert GATEWAY_TOOL_POLICY.labels(unit.name)._value.get() == 0
    for t in tenants:  # off traffic: the bridge has no route to it
        assert (await tenant_row(s, t) or {}).get("base_url") is None
    assert (await asyncio.to_thread(provisioner.recheck))[unit.name] is True
    assert await reading(True) is not None
    assert GATEWAY_TOOL_POLICY.labels(unit.name)._value.get() == 1
    for t in tenants:  # routes back
        assert (await tenant_row(s, t) or {}).get("base_url") == unit.base_url
