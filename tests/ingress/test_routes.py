"""Probes and metrics: /healthz, /readyz, /metrics."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from ingress.typedefs import LIFECYCLE
from tests.ingress.ingress_fakes import FakeDirectory

Client = TestClient[Any, Any]


async def test_healthz(client: Client) -> None:
    resp = await client.get("/healthz")
    assert (resp.status, await resp.json()) == (200, {"ok": True})


async def test_ready_when_directory_loaded_and_producer_open(client: Client) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {
        "ready": True,
        "directory": True,
        "producer": True,
        "accepting": True,
    }


async def test_not_ready_until_the_directory_is_loaded(
    client: Client, directory: FakeDirectory
) -> None:
    directory.loaded.clear()
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["directory"] is False


async def test_not_ready_while_stopping(client: Client) -> None:
    client.app[LIFECYCLE].stopping = True
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["accepting"] is False


async def test_metrics_exposes_the_ingress_counters(client: Client) -> None:
    await client.get("/healthz")
    await client.post("/webhooks/telegram/1", data=b"{}")  # one rejection, so the series exist
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'ingress_requests_total{channel="telegram",outcome="rejected"}' in text
    assert 'ingress_rejections_total{channel="telegram",reason="unknown_bot"}' in text


async def test_every_channel_webhook_is_routed(client: Client) -> None:
    routes = {(route.method, route.resource.canonical) for route in client.app.router.routes()}
    assert {
        ("POST", "/webhooks/telegram/{bot_id}"),
        ("POST", "/webhooks/stripe"),
        ("GET", "/webhooks/whatsapp"),
        ("POST", "/webhooks/whatsapp"),
    } <= routes
