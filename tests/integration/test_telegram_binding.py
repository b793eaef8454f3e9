"""Telegram at the operator's end, on the real PostgreSQL and the Bot API stand-in.

`openclaw-saas tenant create` sets the bot's webhook (URL, secret token, allowed
updates), reports a failed `setWebhook` with exit code 3 while keeping the tenant,
`tenant set-webhook` recovers with a new secret, `tenant unbind-telegram` deletes the
webhook before the binding; and delivery results land in `outbound_deliveries`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from agents_bridge.deliver.log import FAILED, SENT, DeliveryResult, PgDeliveryLog
from common.db import open_pool
from common.secrets import token_hash
from common.settings import Settings
from control.tenants import NewTenant, create_tenant
from devstack import Stack
from devstack import telegram_payloads as tg_payloads
from devstack.telegram_api import TelegramApiStandIn

pytestmark = pytest.mark.integration
PUBLIC = "https://bots.example.test"


@dataclass
class Cli:
    code: int
    out: dict[str, Any]
    err: str


async def _cli(settings: Settings, *args: str) -> Cli:
    env = {**os.environ, **settings.to_env(), "PUBLIC_BASE_URL": PUBLIC}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "control.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Cli(proc.returncode, json.loads(out) if out.strip() else {}, err.decode())


async def _create(settings: Settings, stack: Stack, token: str, *extra: str) -> Cli:
    assert stack.gateway is not None
    return await _cli(
        settings,
        "tenant",
        "create",
        "--name",
        f"tg-{secrets.token_hex(3)}",
        "--owner-email",
        "tg@example.test",
        "--telegram-bot-token",
        token,
        "--gateway-url",
        stack.gateway.base_url,
        "--gateway-token",
        stack.gateway.token,
        *extra,
    )


def _binding(settings: Settings, tenant_id: str) -> dict[str, Any] | None:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT external_id, secret_hash FROM channel_bindings"
            " WHERE tenant_id = %s::uuid AND channel = 'telegram'",
            (tenant_id,),
        ).fetchone()


@pytest.fixture
async def telegram(settings: Settings) -> AsyncIterator[tuple[TelegramApiStandIn, Settings]]:
    api = TelegramApiStandIn()
    base = await api.start()
    yield api, Settings.from_env({}, **{**vars(settings), "telegram_api_base": base})
    await api.stop()


async def test_tenant_create_sets_the_webhook_and_unbind_deletes_it(
    telegram: tuple[TelegramApiStandIn, Settings], stack: Stack
) -> None:
    api, settings = telegram
    token = tg_payloads.bot_token()
    api.register_bot(token)
    created = await _create(settings, stack, token)
    assert created.code == 0, created.err
    tg = created.out["telegram"]
    assert tg["webhook_set"] is True
    assert tg["webhook_url"] == f"{PUBLIC}/webhooks/telegram/{tg['bot_id']}"
    assert api.webhook(token) == {
        "url": tg["webhook_url"],
        "secret_token": tg["secret_token"],
        "allowed_updates": ["message"],
    }
    binding = _binding(settings, created.out["tenant_id"])
    assert binding is not None
    assert bytes(binding["secret_hash"]) == token_hash(tg["secret_token"])
    assert token.split(":")[1] not in created.err + json.dumps(created.out).replace(
        tg["secret_token"], ""
    )

    api.fail_next(1, status=400, method="deleteWebhook", description="Bad Request: try later")
    kept = await _cli(settings, "tenant", "unbind-telegram", created.out["agent_id"])
    assert kept.code == 3
    assert "deleteWebhook: Telegram answered 400: Bad Request: try later" in kept.err
    assert _binding(settings, created.out["tenant_id"]) is not None  # retry possible

    unbound = await _cli(settings, "tenant", "unbind-telegram", created.out["agent_id"])
    assert unbound.code == 0, unbound.err
    assert unbound.out["webhook_deleted"] is True and unbound.out["unbound"] is True
    assert api.webhook(token) == {}
    assert [c.method for c in api.calls] == ["setWebhook", "deleteWebhook"]
    assert _binding(settings, created.out["tenant_id"]) is None
    again = await _cli(settings, "tenant", "unbind-telegram", created.out["tenant_id"])
    assert again.code == 2 and "no tenant" in again.err


async def test_a_failed_set_webhook_keeps_the_tenant_and_set_webhook_recovers(
    telegram: tuple[TelegramApiStandIn, Settings], stack: Stack
) -> None:
    api, settings = telegram
    token = tg_payloads.bot_token()  # not registered yet: the stand-in answers 401
    created = await _create(settings, stack, token)
    assert created.code == 3
    tg = created.out["telegram"]
    assert tg["webhook_set"] is False
    assert tg["webhook_error"] == "setWebhook: Telegram answered 401: Unauthorized"
    assert f"openclaw-saas tenant set-webhook {created.out['tenant_id']}" in created.err
    assert token.split(":")[1] not in created.err
    assert _binding(settings, created.out["tenant_id"]) is not None  # the tenant exists

    api.register_bot(token)
    reset = await _cli(settings, "tenant", "set-webhook", created.out["tenant_id"])
    assert reset.code == 0, reset.err
    fresh = reset.out["telegram"]["secret_token"]
    assert fresh != tg["secret_token"]
    assert api.webhook(token)["secret_token"] == fresh
    assert api.webhook(token)["url"] == f"{PUBLIC}/webhooks/telegram/{tg['bot_id']}"
    binding = _binding(settings, created.out["tenant_id"])
    assert binding is not None and bytes(binding["secret_hash"]) == token_hash(fresh)


async def test_no_webhook_flag_skips_telegram(
    telegram: tuple[TelegramApiStandIn, Settings], stack: Stack
) -> None:
    api, settings = telegram
    created = await _create(settings, stack, tg_payloads.bot_token(), "--no-webhook")
    assert created.code == 0, created.err
    assert "webhook_set" not in created.out["telegram"]
    assert api.calls == [] and api.failures == []


async def test_delivery_results_are_recorded_idempotently(settings: Settings, stack: Stack) -> None:
    assert stack.gateway is not None
    tenant = create_tenant(
        settings,
        NewTenant(
            name="deliveries",
            plan="business",
            owner_email="d@example.test",
            telegram_bot_token=None,
            gateway_url=stack.gateway.base_url,
            gateway_token=stack.gateway.token,
        ),
    )
    event_id = f"reply:telegram:{secrets.token_hex(4)}:1"

    def result(chunk: int, status: str, **kw: Any) -> DeliveryResult:
        return DeliveryResult(
            event_id, tenant["tenant_id"], "telegram", "42", chunk, 2, status, **kw
        )

    pool = await open_pool(settings, max_size=2)
    try:
        log = PgDeliveryLog(pool)
        await log.record(result(0, SENT, provider_message_id="7"))
        await log.record(result(1, FAILED, error="telegram_unavailable: telegram_500"))
        assert await log.sent(event_id) == {0: "7"}
        await log.record(result(1, SENT, provider_message_id="8"))  # replaces the failure
        await log.record(result(0, FAILED, error="late"))  # never overwrites a send
        await log.record(result(0, SENT, provider_message_id="99"))  # a replay: no change
        assert await log.sent(event_id) == {0: "7", 1: "8"}
        bogus = DeliveryResult("reply:x", "not-a-uuid", "telegram", "42", 0, 1, SENT)
        await log.record(bogus)  # logged and skipped, never wedges the conversation
    finally:
        await pool.close()
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT chunk, chunks, status, provider_message_id, error, channel, conversation_id"
            " FROM outbound_deliveries WHERE event_id = %s ORDER BY chunk",
            (event_id,),
        ).fetchall()
    assert rows == [
        {
            "chunk": 0,
            "chunks": 2,
            "status": "sent",
            "provider_message_id": "7",
            "error": None,
            "channel": "telegram",
            "conversation_id": "42",
        },
        {
            "chunk": 1,
            "chunks": 2,
            "status": "sent",
            "provider_message_id": "8",
            "error": None,
            "channel": "telegram",
            "conversation_id": "42",
        },
    ]
