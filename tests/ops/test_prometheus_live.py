"""A real Prometheus scrapes every running service; the key series exist and move.

The services run as subprocesses (each worker with its own METRICS_PORT) on the
session's Kafka, PostgreSQL and OpenClaw gateway, with a local Telegram stand-in. Prometheus
runs the shipped config (targets rewritten to loopback) and the shipped alert rules. One
Telegram update goes through; every stage's counters must then be above what they were.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from common.settings import Settings
from control.processes import ServiceGroup
from control.tenants import NewTenant, create_tenant
from devstack import Stack
from devstack import telegram_payloads as tg_payloads
from devstack._proc import free_port
from devstack.probes import eventually
from devstack.telegram_api import ApiCall, TelegramApiStandIn
from tests.ops.prometheus_server import PrometheusServer

pytestmark = pytest.mark.integration
# Every process kind but the provisioner, which needs a Docker engine (its tests start one).
SERVICES = ("ingress", "streams", "forwarder", "delivery", "smtp")

# Series that must grow when one message flows through, per job.
MOVING = {
    "ingress": [
        'ingress_requests_total{channel="telegram", outcome="accepted"}',
        'kafka_produce_seconds_count{topic="messages.inbound"}',
    ],
    "streams": [
        'quota_decisions_total{decision="admitted"}',
        'stage_events_total{stage="metering", outcome="ok"}',
        'stage_events_total{stage="session-sync", outcome="ok"}',
        "postgres_write_seconds_count",
    ],
    "forwarder": [
        'gateway_request_seconds_count{outcome="ok"}',
        'stage_events_total{stage="forwarder", outcome="ok"}',
        'kafka_produce_seconds_count{topic="messages.outbound"}',
    ],
    "delivery": [
        'channel_sends_total{channel="telegram", outcome="ok"}',
        'stage_events_total{stage="delivery", outcome="ok"}',
    ],
}
# Gauges that must exist (per job): consumer lag of every consumer, the overage queue depth.
PRESENT = {
    "streams": [
        'kafka_consumer_lag_messages{topic=~".*messages.inbound"}',
        "overage_held_messages",
    ],
    "forwarder": ['kafka_consumer_lag_messages{topic=~".*messages.admitted"}'],
    "delivery": ['kafka_consumer_lag_messages{topic=~".*messages.outbound"}'],
}


def _with_job(selector: str, job: str) -> str:
    if "{" in selector:
        return selector.replace("{", f'{{job="{job}", ', 1)
    return f'{selector}{{job="{job}"}}'


def _sum(prom: PrometheusServer, selector: str, job: str) -> float:
    return prom.value(f"sum({_with_job(selector, job)})") or 0.0


def _tenant(settings: Settings, stack: Stack, telegram: TelegramApiStandIn) -> dict[str, Any]:
    assert stack.gateway is not None
    token = tg_payloads.bot_token()
    telegram.register_bot(token)
    return create_tenant(
        settings,
        NewTenant(
            name="metrics",
            plan="business",
            owner_email="metrics@example.test",
            telegram_bot_token=token,
            gateway_url=stack.gateway.base_url,
            gateway_token=stack.gateway.token,
            gateway_agent_id="main",
        ),
    )


async def test_prometheus_scrapes_every_service_and_series_move(
    settings: Settings, stack: Stack, tmp_path: Path
) -> None:
    telegram = TelegramApiStandIn()
    settings = Settings.from_env(
        {},
        **{**vars(settings), "telegram_api_base": await telegram.start(), "smtp_port": free_port()},
    )
    tenant = _tenant(settings, stack, telegram)
    metrics_ports = {name: free_port() for name in SERVICES if name != "ingress"}
    group = ServiceGroup(settings, SERVICES, tmp_path / "logs", metrics_ports=metrics_ports)
    ingress = f"http://127.0.0.1:{settings.ingress_port}"
    targets = {"ingress": settings.ingress_port, **metrics_ports}
    try:
        await asyncio.to_thread(group.start)
        await asyncio.to_thread(group.wait_http_ready, f"{ingress}/readyz", 60)
        with PrometheusServer(tmp_path / "prometheus", targets) as prom:
            await eventually(_async(prom.ready), timeout=30, what="Prometheus ready")

            async def all_up() -> bool:
                group.check_alive()
                ups = prom.api("query", query="up")["result"]
                return {r["metric"]["job"] for r in ups if r["value"][1] == "1"} >= set(targets)

            await eventually(all_up, timeout=30, what="every service scraped (up == 1)")
            before = {
                (job, s): _sum(prom, s, job) for job, series in MOVING.items() for s in series
            }

            async with aiohttp.ClientSession() as http:
                tg = tenant["telegram"]
                update = {
                    "update_id": 1,
                    "message": {
                        "message_id": 1,
                        "date": 1795360321,
                        "text": "count me",
                        "from": {"id": 77, "is_bot": False, "first_name": "M"},
                        "chat": {"id": 77, "type": "private"},
                    },
                }
                resp = await http.post(
                    f"{ingress}/webhooks/telegram/{tg['bot_id']}",
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": tg["secret_token"]},
                )
                assert resp.status == 200, await resp.text()

            def replied(calls: list[ApiCall]) -> bool:
                return any(c.method == "sendMessage" and c.chat_id == "77" for c in calls)

            try:
                await telegram.wait_for(replied, timeout=120)
            except TimeoutError:
                group.check_alive()
                raise AssertionError(
                    "no reply; logs:\n" + "\n".join(group.log_tail(s) for s in SERVICES)
                ) from None

            async def moved() -> dict[tuple[str, str], float] | None:
                now = {key: _sum(prom, key[1], key[0]) for key in before}
                return now if all(now[key] > before[key] for key in before) else None

            try:
                await eventually(moved, timeout=60, what="every key series to grow")
            except AssertionError:
                now = {f"{job} {s}": _sum(prom, s, job) for job, s in before}
                raise AssertionError(
                    f"before {json.dumps({f'{j} {s}': v for (j, s), v in before.items()})}\n"
                    f"after {json.dumps(now)}"
                ) from None

            async def present() -> bool:
                return all(
                    prom.api("query", query=_with_job(s, job))["result"]
                    for job, series in PRESENT.items()
                    for s in series
                )

            await eventually(present, timeout=30, what="consumer lag and overage depth series")

            async def rules_healthy() -> list[dict[str, Any]] | None:
                groups = prom.api("rules")["groups"]
                rules = [rule for g in groups for rule in g["rules"]]
                return rules if rules and all(r["health"] == "ok" for r in rules) else None

            rules = await eventually(rules_healthy, timeout=30, what="alert rules evaluated")
            assert {r["name"] for r in rules} >= {"ConsumerLagGrowing", "DeadLettersAppearing"}
            firing = [r["name"] for r in rules if r["state"] == "firing"]
            assert not firing, f"alerts firing on a healthy pipeline: {firing}"
            _dashboard_queries_run(prom)
    finally:
        codes = await asyncio.to_thread(group.stop)
        await telegram.stop()
    assert all(code in (0, -15) for code in codes.values()), codes


def _dashboard_queries_run(prom: PrometheusServer) -> None:
    """Every dashboard query is valid PromQL for this Prometheus."""
    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "ops/grafana/dashboards/pipeline.json").read_text()
    )
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            prom.api("query", query=target["expr"].replace("$__rate_interval", "1m"))


def _async(check: Any) -> Any:
    async def probe() -> Any:
        return check()

    return probe
