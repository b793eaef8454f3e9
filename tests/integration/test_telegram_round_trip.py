"""End to end on the real broker, database and OpenClaw gateway.

A Telegram update POSTed to the webhook travels ingress -> metering -> forwarder ->
gateway -> delivery -> Telegram sendMessage (a local server speaking the Bot API), and
session-sync leaves the session with both messages and their token counts in PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from psycopg.rows import dict_row

from common.settings import Settings
from control.processes import ServiceGroup
from control.tenants import NewTenant, create_tenant
from devstack import Stack
from devstack import telegram_payloads as tg_payloads
from devstack.probes import eventually
from devstack.telegram_api import TelegramApiStandIn

pytestmark = pytest.mark.integration
SERVICES = ("ingress", "streams", "forwarder", "delivery")


def _tenant(
    settings: Settings, stack: Stack, telegram: TelegramApiStandIn, name: str, agent: str
) -> dict[str, Any]:
    assert stack.gateway is not None
    token = tg_payloads.bot_token()
    telegram.register_bot(token)
    created = create_tenant(
        settings,
        NewTenant(
            name=name,
            plan="business",
            owner_email=f"{name}@example.test",
            telegram_bot_token=token,
            gateway_url=stack.gateway.base_url,
            gateway_token=stack.gateway.token,
            gateway_agent_id=agent,
        ),
    )
    return {**created, "bot_token": token}


async def _rows(settings: Settings, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, row_factory=dict_row
    ) as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def test_two_tenants_round_trip(settings: Settings, stack: Stack, tmp_path: Path) -> None:
    telegram = TelegramApiStandIn()
    base = await telegram.start()
    settings = Settings.from_env({}, **{**vars(settings), "telegram_api_base": base})
    a = _tenant(settings, stack, telegram, "alpha", "tenant-a")
    b = _tenant(settings, stack, telegram, "bravo", "tenant-b")
    group = ServiceGroup(settings, SERVICES, tmp_path / "logs")
    ingress = f"http://127.0.0.1:{settings.ingress_port}"
    try:
        await asyncio.to_thread(group.start)
        await asyncio.to_thread(group.wait_http_ready, f"{ingress}/readyz", 60)
        async with aiohttp.ClientSession() as http:
            for tenant, chat, text in ((a, 111, "hello from alpha"), (b, 222, "hello from bravo")):
                tg = tenant["telegram"]
                resp = await http.post(
                    f"{ingress}/webhooks/telegram/{tg['bot_id']}",
                    json=tg_payloads.update(1, chat, text),
                    headers={"X-Telegram-Bot-Api-Secret-Token": tg["secret_token"]},
                )
                assert resp.status == 200, await resp.text()

            def both_replied(calls: list[Any]) -> bool:
                return {str(c.chat_id) for c in calls if c.method == "sendMessage"} >= {
                    "111",
                    "222",
                }

            try:
                calls = await telegram.wait_for(both_replied, timeout=120)
            except TimeoutError:
                group.check_alive()
                raise AssertionError(
                    "no replies; logs:\n" + "\n".join(group.log_tail(s) for s in SERVICES)
                ) from None
        sent = {str(c.chat_id): c for c in calls if c.method == "sendMessage"}
        assert sent["111"].text == "STUB-REPLY #1 to: hello from alpha"
        assert sent["222"].text == "STUB-REPLY #1 to: hello from bravo"
        assert str(sent["111"].bot_id) == a["telegram"]["bot_id"]
        assert str(sent["222"].bot_id) == b["telegram"]["bot_id"]
        typing = {c.chat_id for c in telegram.calls if c.method == "sendChatAction"}
        assert typing >= {"111", "222"}  # shown while each agent worked

        async def delivery_rows() -> list[dict[str, Any]] | None:
            rows = await _rows(
                settings,
                "SELECT conversation_id, chunk, status, provider_message_id"
                " FROM outbound_deliveries WHERE tenant_id = ANY(%s::uuid[])"
                " ORDER BY conversation_id",
                [a["tenant_id"], b["tenant_id"]],
            )
            return rows if len(rows) == 2 else None

        recorded = await eventually(delivery_rows, timeout=30, what="2 delivery results")
        assert recorded == [
            {
                "conversation_id": chat,
                "chunk": 0,
                "status": "sent",
                "provider_message_id": str(sent[chat].result["message_id"]),
            }
            for chat in ("111", "222")
        ]

        async def session_rows() -> list[dict[str, Any]] | None:
            rows = await _rows(
                settings,
                "SELECT m.tenant_id::text AS tenant_id, m.session_id, m.role, m.content,"
                " m.input_tokens, m.output_tokens FROM messages m"
                " WHERE m.tenant_id = ANY(%s::uuid[]) ORDER BY m.created_at, m.role DESC",
                [a["tenant_id"], b["tenant_id"]],
            )
            done = sum(1 for r in rows if r["role"] == "assistant") == 2
            return rows if done and len(rows) == 4 else None

        rows = await eventually(session_rows, timeout=60, what="4 message rows in PostgreSQL")
        for tenant, chat, text in ((a, 111, "hello from alpha"), (b, 222, "hello from bravo")):
            mine = [r for r in rows if r["tenant_id"] == tenant["tenant_id"]]
            assert [r["role"] for r in mine] == ["user", "assistant"]
            assert {r["session_id"] for r in mine} == {f"telegram:{chat}"}
            user, assistant = mine
            assert user["content"] == text
            assert user["input_tokens"] == 11
            assert assistant["content"] == f"STUB-REPLY #1 to: {text}"
            assert assistant["output_tokens"] == 7
        sessions = await _rows(
            settings,
            "SELECT tenant_id::text AS tenant_id, message_count FROM sessions"
            " WHERE tenant_id = ANY(%s::uuid[])",
            [a["tenant_id"], b["tenant_id"]],
        )
        assert sorted(s["message_count"] for s in sessions) == [2, 2]
    finally:
        codes = await asyncio.to_thread(group.stop)
        await telegram.stop()
    assert all(code in (0, -15) for code in codes.values()), codes
    assert stack.gateway is not None
    secrets_used = [a["bot_token"], b["bot_token"], stack.gateway.token]
    secrets_used += [t["telegram"]["secret_token"] for t in (a, b)]
    for log in (tmp_path / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        leaked = [s[:6] + "..." for s in secrets_used if s in text]
        assert not leaked, f"{log.name} contains secrets {leaked}"
