"""Tenant isolation and secrecy, proven on the real broker and database with every service.

Two tenants, alpha and bravo, each with its own Telegram bot, WhatsApp number (own app
secret, access token, verify token) and its own gateway (a recording stub per tenant, its
own URL and token: `chaos/gateways.py`). Besides their legitimate messages, the run
throws every misrouting we could think of at the platform:

- a Telegram update posted to alpha's bot URL with bravo's secret token (and back);
- a WhatsApp body naming bravo's number signed with alpha's app secret, and a body that
  mixes both numbers signed with alpha's;
- an InboundMessage put straight on messages.inbound that claims tenant bravo but comes
  from alpha's bot (its event id and reply route name alpha's bot), and one for a tenant
  that does not exist;
- `openclaw-saas usage show` for each tenant, by tenant id and by agent id.

Then it checks that nothing of one tenant reached the other: gateway requests (and with
which token), replies sent by each bot and number, `messages` rows and usage.

Secrets (the second test's subject, same run): every secret used — bot tokens, Telegram
secret tokens, WhatsApp app secrets, access and verify tokens, gateway tokens, the
SECRETS_KEY — must be absent from every byte the run let out: each service's log, each
`/metrics` page, every dead letter on every DLQ topic, every HTTP answer of ingress
(rejections included) and the CLI's output. `test_telegram_round_trip.py` checks the logs
of a clean run; this one adds the other outputs and a run full of failures.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from common.kafka import EventProducer
from common.settings import Settings
from common.timeconv import now_ms
from common.topics import Topic
from control.dlq import DeadLetterEntry, read_dead_letters
from devstack import Stack
from devstack import whatsapp_payloads as wa
from devstack.probes import eventually
from tests.integration.isolation_rig import (
    Party,
    Run,
    isolation_run,
    post,
    query_rows,
    run_cli,
    update,
)

pytestmark = pytest.mark.integration
TG_HEADER = "X-Telegram-Bot-Api-Secret-Token"
USER = "16505550000"


@pytest.fixture
async def run(settings: Settings, stack: Stack, tmp_path: Path) -> AsyncIterator[Run]:
    async with isolation_run(settings, tmp_path) as r:
        yield r


async def _misroute_and_send(r: Run) -> None:
    """The legitimate messages, then every forgery; checks each answer on the way."""
    a, b = r.alpha, r.bravo
    async with aiohttp.ClientSession() as http:
        for p, chat in ((a, 111), (b, 222)):
            body = json.dumps(update(1, chat, f"legit telegram {p.name}")).encode()
            headers = {TG_HEADER: p.secret_token, "Content-Type": "application/json"}
            assert await post(r, http, f"/webhooks/telegram/{p.bot_id}", body, headers) == 200
        # Alpha's bot URL with bravo's secret token, and the other way round.
        for url_of, secret_of in ((a, b), (b, a)):
            body = json.dumps(update(2, 333, f"forged {secret_of.name}→{url_of.name}")).encode()
            headers = {TG_HEADER: secret_of.secret_token}
            assert await post(r, http, f"/webhooks/telegram/{url_of.bot_id}", body, headers) == 401
        for p in (a, b):
            raw = wa.encode(wa.text_message(p.number.phone_number_id, USER, f"legit wa {p.name}"))
            headers = {wa.SIGNATURE_HEADER: wa.sign(raw, p.number.app_secret)}
            assert await post(r, http, "/webhooks/whatsapp", raw, headers) == 200
        # Bravo's number, signed with alpha's app secret; then both numbers in one body.
        forged = wa.encode(wa.text_message(b.number.phone_number_id, USER, "forged wa to bravo"))
        headers = {wa.SIGNATURE_HEADER: wa.sign(forged, a.number.app_secret)}
        assert await post(r, http, "/webhooks/whatsapp", forged, headers) == 401
        mixed = wa.text_message(a.number.phone_number_id, USER, "mixed wa for alpha")
        mixed["entry"] += wa.text_message(b.number.phone_number_id, USER, "mixed wa for bravo")[
            "entry"
        ]
        raw = wa.encode(mixed)
        headers = {wa.SIGNATURE_HEADER: wa.sign(raw, a.number.app_secret)}
        assert await post(r, http, "/webhooks/whatsapp", raw, headers) == 401
        # Every other way a request can be refused, for the secrets check.
        assert await post(r, http, f"/webhooks/telegram/{a.bot_id}", b"{", {}) == 401
        headers = {TG_HEADER: a.secret_token}
        assert await post(r, http, f"/webhooks/telegram/{a.bot_id}", b"{", headers) == 400
        assert await post(r, http, "/webhooks/telegram/1", b"{}", headers) == 404
        params = f"hub.mode=subscribe&hub.challenge=1&hub.verify_token={a.number.verify_token}x"
        async with http.get(f"{r.ingress}/webhooks/whatsapp?{params}") as resp:
            r.answers.append(await resp.text())
            assert resp.status == 403
    # Straight onto messages.inbound, past ingress: a record that claims bravo but comes
    # from alpha's bot, and one for a tenant nobody created.
    producer = EventProducer(r.settings)
    try:
        received_ms = now_ms()
        for tenant_id, text in ((b.tenant_id, "forged topic"), (str(uuid.uuid4()), "no one")):
            record = {
                "event_id": f"telegram:{a.bot_id}:{900 + len(text)}",
                "tenant_id": tenant_id,
                "channel": "telegram",
                "conversation_id": "444",
                "sender_id": "444",
                "sender_name": "Mallory",
                "text": text,
                "received_at": received_ms,
                "channel_message_id": "1",
                "reply_route": {"chat_id": "444", "bot_id": a.bot_id},
            }
            await producer.send(Topic.INBOUND, tenant_id, record, timeout=15)
    finally:
        await asyncio.to_thread(producer.close)


async def test_no_tenant_reaches_another_tenants_gateway_sessions_usage_or_replies(
    run: Run,
) -> None:
    r, a, b = run, run.alpha, run.bravo
    await _misroute_and_send(r)

    def replied() -> bool:
        sends = [c for c in r.telegram.calls if c.method == "sendMessage"]
        return len(sends) >= 2 and len(r.graph.calls) >= 2

    async def all_replied() -> bool:
        r.group.check_alive()
        return replied()

    await eventually(all_replied, timeout=90, what="the 4 legitimate replies")

    async def usage_settled() -> list[dict[str, Any]] | None:
        rows = await query_rows(
            r.settings,
            "SELECT tenant_id::text AS tenant_id, role, content FROM messages"
            " WHERE tenant_id = ANY(%s::uuid[]) ORDER BY created_at",
            [a.tenant_id, b.tenant_id],
        )
        return rows if sum(1 for x in rows if x["role"] == "assistant") >= 4 else None

    rows = await eventually(usage_settled, timeout=60, what="the session rows of both tenants")

    # Gateways: each saw only its own tenant's messages, always with its own token.
    alpha_calls, bravo_calls = r.gateways.calls("alpha"), r.gateways.calls("bravo")
    assert {c.text for c in alpha_calls} == {"legit telegram alpha", "legit wa alpha"}
    assert all(c.authorized and c.model == "openclaw/alpha" for c in alpha_calls)
    assert all(c.authorized and c.model == "openclaw/bravo" for c in bravo_calls)
    assert not any("alpha" in c.text for c in bravo_calls), bravo_calls
    # Replies: alpha's bot and number only ever carried alpha's gateway's words.
    sends = [c for c in r.telegram.calls if c.method == "sendMessage"]
    by_bot = {
        str(bot): [c.text for c in sends if str(c.bot_id) == bot] for bot in (a.bot_id, b.bot_id)
    }
    assert by_bot[a.bot_id] == ["reply alpha: legit telegram alpha"], by_bot
    assert all(t.startswith("reply bravo: ") for t in by_bot[b.bot_id]), by_bot
    by_number = {
        p.name: [c.text for c in r.graph.calls if c.phone_number_id == p.number.phone_number_id]
        for p in (a, b)
    }
    assert by_number == {
        "alpha": ["reply alpha: legit wa alpha"],
        "bravo": ["reply bravo: legit wa bravo"],
    }
    # PostgreSQL: alpha's rows are alpha's messages and replies only.
    alpha_rows = [x["content"] for x in rows if x["tenant_id"] == a.tenant_id]
    assert sorted(alpha_rows) == sorted(
        [
            "legit telegram alpha",
            "legit wa alpha",
            "reply alpha: legit telegram alpha",
            "reply alpha: legit wa alpha",
        ]
    )
    assert not any("alpha" in x["content"] for x in rows if x["tenant_id"] == b.tenant_id)

    # Usage, through the operator CLI, by id and by agent id: each sees only its own.
    async def usage_of(p: Party) -> dict[str, Any] | None:
        shown = await asyncio.to_thread(run_cli, r, "usage", "show", "--tenant", p.tenant_id)
        return shown if shown["used"] >= 2 else None

    shown_a = await eventually(lambda: usage_of(a), timeout=30, what="alpha's usage")
    assert (shown_a["tenant_id"], shown_a["used"]) == (a.tenant_id, 2)
    shown_b = await asyncio.to_thread(run_cli, r, "usage", "show", "--tenant", b.agent_id)
    assert shown_b["tenant_id"] == b.tenant_id
    # Bravo's count includes the forged topic event only if it was admitted as bravo's.
    assert shown_b["used"] == len(bravo_calls), (shown_b, bravo_calls)

    # The record for a tenant no one created went to the dead-letter topic with a reason.
    async def unknown_dead_lettered() -> list[str] | None:
        entries = await asyncio.to_thread(_dead_letters, r.settings, Topic.INBOUND_DLQ)
        reasons = [e.record["reason"] for e in entries]
        return reasons or None

    reasons = await eventually(unknown_dead_lettered, timeout=60, what="a dead letter")
    assert all(reasons), reasons

    await _no_secret_anywhere(r)


def _dead_letters(settings: Settings, topic: Topic) -> list[DeadLetterEntry]:
    return list(read_dead_letters(settings, topic))


async def _no_secret_anywhere(r: Run) -> None:
    """Every secret of the run is absent from every output the run produced."""
    used = r.alpha.secrets() + r.bravo.secrets() + [r.settings.secrets_key.value]
    outputs: dict[str, str] = {}
    async with aiohttp.ClientSession() as http:
        pages = {"ingress": f"{r.ingress}/metrics"}
        pages |= {n: f"http://127.0.0.1:{port}/metrics" for n, port in r.metrics_ports.items()}
        for name, url in pages.items():
            async with http.get(url) as resp:
                assert resp.status == 200, url
                outputs[f"metrics:{name}"] = await resp.text()
    for topic in (t for t in Topic if t.value.endswith(".dlq")):
        entries = await asyncio.to_thread(_dead_letters, r.settings, topic)
        outputs[f"dlq:{topic.value}"] = "\n".join(repr(e.record) for e in entries)
    outputs["http answers"] = "\n".join(r.answers)
    outputs["cli"] = "\n".join(r.cli_output + [json.dumps(run_cli(r, "tenant", "list"))])
    await asyncio.to_thread(r.group.stop)  # flush every log before reading them
    outputs["logs"] = r.logs()
    assert "DEBUG" in outputs["logs"] or outputs["logs"], "no logs captured"
    leaks = {
        where: [s[:5] + "…" for s in used if s and s in text] for where, text in outputs.items()
    }
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}
