"""The directory's routing table built from rows (no database): what it does with rows it
cannot open."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import psycopg
import pytest

from common.directory import Directory
from common.secrets import SecretBox
from common.settings import Secret, Settings

OURS = Settings(secrets_key=Secret(base64.b64encode(b"k" * 32).decode()))
OTHER = Settings(secrets_key=Secret(base64.b64encode(b"x" * 32).decode()))


def _tenant(tenant_id: str, token: bytes | None) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "agent_id": f"agent-{tenant_id}",
        "status": "active",
        "plan_id": "business",
        "msg_limit": 10_000,
        "upgrade_to": None,
        "current_period_start": None,
        "current_period_end": None,
        "base_url": "http://127.0.0.1:1",
        "gateway_token": token,
        "gateway_agent_id": None,
    }


def _binding(tenant_id: str, channel: str, external_id: str, sealed: bytes) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "channel": channel,
        "external_id": external_id,
        "secret_hash": b"",
        "credentials": sealed,
        "settings": {},
    }


def test_rows_sealed_under_another_key_leave_out_only_what_they_seal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours, other = SecretBox(OURS), SecretBox(OTHER)
    directory = Directory(OURS)
    wa = json.dumps({"access_token": "EAA-good", "app_secret": "s"})
    with caplog.at_level(logging.ERROR, logger="common.directory"):
        directory._swap(
            [_tenant("a", ours.seal("gw-a")), _tenant("b", other.seal("gw-b"))],
            [
                _binding("a", "telegram", "111", ours.seal("111:good-token")),
                _binding("b", "telegram", "222", other.seal("222:other-key")),
                _binding("a", "whatsapp", "333", ours.seal(wa)),
                _binding("b", "whatsapp", "444", b"\x01not-a-sealed-value"),
            ],
        )
    a, b = directory.tenant("a"), directory.tenant("b")
    assert a is not None and b is not None
    assert a.gateway_token.value == "gw-a"
    assert a.telegram is not None and a.telegram.bot_token.value == "111:good-token"
    assert [x.channel for x in a.bindings] == ["telegram", "whatsapp"]
    assert b.gateway_token.value == "" and b.bindings == () and b.telegram is None
    assert directory.by_telegram_bot("222") is None
    text = caplog.text
    assert "tenant b" in text and "gateway token" in text
    assert "other-key" not in text and "gw-b" not in text  # nothing sealed leaks to logs


async def test_start_waits_for_postgresql_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    directory = Directory(OURS)
    failures = [psycopg.OperationalError("connection refused")] * 2

    async def reload() -> None:
        if failures:
            raise failures.pop()
        directory.loaded.set()

    async def follow() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(directory, "reload", reload)
    monkeypatch.setattr(directory, "_follow", follow)
    await directory.start(wait_s=30)  # two refusals, then loaded
    assert directory.loaded.is_set() and failures == []
    await directory.stop()

    down = Directory(OURS)

    async def refused() -> None:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(down, "reload", refused)
    with pytest.raises(psycopg.OperationalError):
        await down.start(wait_s=0.1)
