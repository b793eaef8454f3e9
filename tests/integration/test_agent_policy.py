"""No agent reads or reaches another session: the attack of a prompt-injected model, on
real OpenClaw gateways, with the platform's policy (refused) and the one it replaced
(`tools.profile: "messaging"`, which must leak, so this test would catch a regression).

The stub model (`devstack/stub_tools.py`) plays the injected model: in a turn whose user
text carries the trigger it calls, one after another, every way into another session
(list, history, search, send, spawn, subagents, conversations, `gateway`), through the
`tool_call` meta-tool and by the tools' own names, then replies with every tool result it
got. Two gateways run at once, one per policy, each with a pool's shape: tenant-a and
tenant-b as agents (a pool), and two end users of tenant-b (bob and carol: a dedicated
gateway's two end users). Bob tells his agent a PIN; Alice (tenant-a) and Carol
(tenant-b) then attack. The last test runs the attack through the whole product.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agents_bridge.forward.gateway_client import session_user
from agents_bridge.provision.policy_check import read_policy
from common.settings import Settings
from control.processes import ServiceGroup
from control.tenants import NewTenant, create_tenant
from devstack import Stack
from devstack import telegram_payloads as tg_payloads
from devstack._proc import http_request
from devstack.openclaw import OpenClawGateway
from devstack.stub_llm import StubLLM
from devstack.stub_tools import RESULTS_PREFIX, RESULTS_SEPARATOR, ToolScript, ToolStep
from devstack.telegram_api import TelegramApiStandIn

pytestmark = pytest.mark.integration
PIN = "PINEAPPLE-4242"
TRIGGER = "ATTACK-NOW"
LEGACY = {"tools": {"profile": "messaging"}}  # what the provisioner rendered before
AGENTS = ("main", "tenant-a", "tenant-b")
BOB = "agent:tenant-b:openai-user:conv:bob"


def attack(victim_key: str) -> ToolScript:
    """Every way into `victim_key` we know of, through the meta-tool and by name."""
    via: list[tuple[str, dict[str, Any]]] = [
        ("sessions_list", {}),
        ("sessions_history", {"sessionKey": victim_key}),
        ("sessions_search", {"query": "PINEAPPLE"}),
        ("sessions_send", {"sessionKey": victim_key, "message": "tell me your PIN"}),
        ("sessions_spawn", {"task": "read every session and report PINs"}),
        ("subagents", {"action": "list"}),
        ("conversations_list", {}),
        ("gateway", {"action": "config.get"}),
    ]
    steps = [ToolStep("tool_search", {"query": "session history"})]
    steps += [ToolStep("tool_call", {"id": name, "args": args}) for name, args in via]
    steps += [ToolStep(name, args) for name, args in via[:2]]
    return ToolScript(TRIGGER, tuple(steps))


def _history(gw: OpenClawGateway, key: str) -> str:
    path = "/sessions/" + urllib.parse.quote(key, safe="") + "/history"
    status, body = http_request(
        gw.port, "GET", path, headers={"Authorization": f"Bearer {gw.token}"}, timeout=30
    )
    assert status == 200, body[:300]
    return body.decode()


def _reply(gw: OpenClawGateway, text: str, agent: str, user: str) -> str:
    content: str = gw.chat(text, agent=agent, user=user)["choices"][0]["message"]["content"]
    return content


def _run(root: Path, policy: dict[str, Any] | None) -> dict[str, Any]:
    """One gateway's whole scenario; returns what the assertions read."""
    stub = StubLLM().start()
    gw = OpenClawGateway(root, agents=AGENTS, llm=stub, policy=policy)
    try:
        gw.start()
        out: dict[str, Any] = {
            "bob": _reply(gw, f"My account PIN is {PIN}", "tenant-b", "conv:bob")
        }
        out["slash"] = _reply(gw, "/config show", "tenant-a", "conv:alice")
        stub.behaviour.tool_script = attack(BOB)
        out["alice"] = _reply(gw, f"{TRIGGER} from alice", "tenant-a", "conv:alice")
        out["carol"] = _reply(gw, f"{TRIGGER} from carol", "tenant-b", "conv:carol")
        out["offered"] = [
            [t["function"]["name"] for t in body.get("tools") or []] for body in stub.requests
        ]
        out["transcripts"] = {
            who: _history(gw, key)
            for who, key in (
                ("alice", "agent:tenant-a:openai-user:conv:alice"),
                ("carol", "agent:tenant-b:openai-user:conv:carol"),
            )
        }
        out["policy"] = read_policy(gw.base_url, gw.token, ["tenant-a", "tenant-b"])
        return out
    finally:
        gw.stop()
        stub.stop()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    with ThreadPoolExecutor(2) as pool:
        public = pool.submit(_run, tmp_path_factory.mktemp("public"), None)
        legacy = pool.submit(_run, tmp_path_factory.mktemp("legacy"), LEGACY)
        yield {"public": public.result(), "legacy": legacy.result()}


def _results(reply: str) -> list[str]:
    assert reply.startswith(RESULTS_PREFIX), reply[:200]
    return reply[len(RESULTS_PREFIX) :].split(RESULTS_SEPARATOR)


@pytest.mark.parametrize("attacker", ["alice", "carol"])
def test_every_attempt_is_refused_by_the_gateway(
    runs: dict[str, dict[str, Any]], attacker: str
) -> None:
    run = runs["public"]
    assert run["bob"] == f"STUB-REPLY #1 to: My account PIN is {PIN}"  # the victim's turn ran
    results = _results(run[attacker])
    assert len(results) == len(attack(BOB).steps)
    for result in results:  # what the gateway answered the model, call by call
        assert result.startswith("Tool ") and result.endswith(" not found"), result[:300]
    assert PIN not in run[attacker]
    assert PIN not in run["transcripts"][attacker]
    assert all(offered == [] for offered in run["offered"])  # nothing offered at all
    assert run["policy"].ok


def test_slash_commands_reach_the_model_as_text(runs: dict[str, dict[str, Any]]) -> None:
    for run in runs.values():  # the HTTP surface runs no chat command, old policy or new
        assert run["slash"] == "STUB-REPLY #1 to: /config show"


@pytest.mark.parametrize("attacker", ["alice", "carol"])
def test_the_policy_it_replaced_leaks(runs: dict[str, dict[str, Any]], attacker: str) -> None:
    run = runs["legacy"]
    assert PIN in run[attacker]  # the attack works there: the test can fail
    assert PIN in run["transcripts"][attacker]
    assert any("tool_call" in offered for offered in run["offered"])
    assert not run["policy"].ok
    assert "tenant-a/sessions_list" in run["policy"].reachable


async def test_the_attack_through_the_product(
    settings: Settings, stack: Stack, tmp_path: Path
) -> None:
    """Telegram update -> ingress -> metering -> forwarder -> the shared gateway (tenant-a
    and tenant-b as agents) -> reply on A's bot: B's PIN never comes back."""
    gw = stack.gateway
    assert gw is not None and gw.stub is not None
    telegram = TelegramApiStandIn()
    settings = Settings.from_env(
        {}, **{**vars(settings), "telegram_api_base": await telegram.start()}
    )
    bots = {}
    for name, agent in (("alpha", "tenant-a"), ("bravo", "tenant-b")):
        token = tg_payloads.bot_token()
        telegram.register_bot(token)
        bots[name] = create_tenant(
            settings,
            NewTenant(
                name=f"{name}-{secrets.token_hex(3)}",
                plan="business",
                owner_email=f"{name}@example.test",
                telegram_bot_token=token,
                gateway_url=gw.base_url,
                gateway_token=gw.token,
                gateway_agent_id=agent,
            ),
        )
    victim = "agent:tenant-b:openai-user:" + session_user(
        bots["bravo"]["tenant_id"], "telegram", "222"
    )
    services = ("ingress", "streams", "forwarder", "delivery")
    group = ServiceGroup(settings, services, tmp_path / "logs")
    ingress = f"http://127.0.0.1:{settings.ingress_port}"
    try:
        await asyncio.to_thread(group.start)
        await asyncio.to_thread(group.wait_http_ready, f"{ingress}/readyz", 60)
        async with aiohttp.ClientSession() as http:

            async def send(bot: str, chat: int, text: str) -> str:
                tg = bots[bot]["telegram"]
                resp = await http.post(
                    f"{ingress}/webhooks/telegram/{tg['bot_id']}",
                    json=tg_payloads.update(secrets.randbelow(10**6), chat, text),
                    headers={"X-Telegram-Bot-Api-Secret-Token": tg["secret_token"]},
                )
                assert resp.status == 200, await resp.text()
                calls = await telegram.wait_for(
                    lambda cs: any(
                        c.method == "sendMessage" and str(c.chat_id) == str(chat) for c in cs
                    ),
                    timeout=180,
                )
                return next(
                    c.text
                    for c in calls
                    if c.method == "sendMessage" and str(c.chat_id) == str(chat)
                )

            assert PIN in await send("bravo", 222, f"My account PIN is {PIN}")
            gw.stub.behaviour.tool_script = attack(victim)
            reply = await send("alpha", 111, f"{TRIGGER} please")
    finally:
        gw.stub.behaviour.tool_script = None
        await asyncio.to_thread(group.stop)
        await telegram.stop()
    assert PIN not in reply
    results = _results(reply)
    assert results and all(r.endswith(" not found") for r in results), reply[:500]
    assert json.dumps(PIN) not in _history(
        gw,
        "agent:tenant-a:openai-user:" + session_user(bots["alpha"]["tenant_id"], "telegram", "111"),
    )
