"""`openclaw-saas dev` (what `make run` runs): the whole pipeline on this machine.

Starts Kafka, PostgreSQL and an OpenClaw gateway (stub model unless a real provider is
configured, see devstack/openclaw.py), local stand-ins that print every reply (the
Telegram Bot API, the WhatsApp Graph API and an SMTP relay), applies migrations, creates
the topics and a demo tenant reachable on all three channels, runs every service as a child
process (each with its own metrics port) and prints how to send a message on each channel.
Ctrl-C stops everything in order.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from common.kafka import ensure_topics
from common.settings import Settings
from control import devrun_whatsapp
from control.email_admin import bind_email
from control.migrate import migrate
from control.processes import ServiceError, ServiceGroup
from control.tenants import NewTenant, create_tenant
from devstack import Stack
from devstack._proc import free_port, port_open
from devstack.netns import in_loopback_netns
from devstack.stack import fetched

# The demo bot exists only in the local Telegram stand-in.
DEMO_BOT_TOKEN = "7000000001:AAdemo-token-for-the-local-telegram-standin"  # noqa: S105
SERVICES = ("ingress", "streams", "forwarder", "delivery", "smtp")


def _say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def run_dev(base: Settings, *, state_dir: str, fresh: bool) -> int:
    missing = [name for name, ok in fetched().items() if not ok]
    if missing:
        print(f"not fetched yet: {missing}; run `make fetch` first", file=sys.stderr)
        return 2
    root = Path(state_dir).resolve()
    if fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    _say("starting Kafka, PostgreSQL and the OpenClaw gateway (about 20 s)")
    with Stack(root / "stack", agents=("demo",)) as stack:
        assert stack.kafka and stack.postgres and stack.gateway
        tg_port = free_port()
        wa_port = free_port()
        relay_port = free_port()
        ingress_port = base.ingress_port if not port_open(base.ingress_port) else free_port()
        settings = Settings.from_env(
            {},
            **{
                **vars(base),
                "kafka_bootstrap": stack.kafka.bootstrap,
                "database_url": stack.postgres.dsn,
                "telegram_api_base": f"http://127.0.0.1:{tg_port}",
                "whatsapp_graph_base": f"http://127.0.0.1:{wa_port}",
                "ingress_port": ingress_port,
                "public_base_url": f"http://127.0.0.1:{ingress_port}",
                "streams_data_dir": str(root / "streams"),
                "smtp_port": base.smtp_port if not port_open(base.smtp_port) else free_port(),
                "smtp_relay_host": "127.0.0.1",
                "smtp_relay_port": relay_port,
            },
        )
        _say("applying migrations and creating topics")
        migrate(settings.database_url)
        ensure_topics(settings)
        tenant = create_tenant(
            settings,
            NewTenant(
                name="Demo",
                plan="individual",
                owner_email="owner@demo.test",
                telegram_bot_token=DEMO_BOT_TOKEN,
                gateway_url=stack.gateway.base_url,
                gateway_token=stack.gateway.token,
                agent_id="demo",
            ),
        )
        _say("demo tenant: " + json.dumps({k: tenant[k] for k in ("tenant_id", "plan")}))
        standin = subprocess.Popen(
            [sys.executable, "-m", "devstack.telegram_api", "--port", str(tg_port)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        devrun_whatsapp.bind_demo(settings, str(tenant["tenant_id"]))
        wa_standin = devrun_whatsapp.start_standin(settings, wa_port)
        mailbox = bind_email(settings, str(tenant["tenant_id"]), reply_mode="auto")
        relay = subprocess.Popen(
            [sys.executable, "-m", "devstack.smtp_relay", "--port", str(relay_port)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        metrics = {name: free_port() for name in SERVICES if name != "ingress"}
        group = ServiceGroup(settings, SERVICES, root / "logs", metrics_ports=metrics)
        try:
            _say(f"starting {', '.join(SERVICES)} (logs in {root / 'logs'})")
            group.start()
            group.wait_http_ready(f"http://127.0.0.1:{ingress_port}/readyz", 90)
            _print_try_it(tenant, ingress_port)
            print(devrun_whatsapp.try_it(wa_port, _netns_prefix()), flush=True)
            _print_mail_it(str(mailbox["address"]), settings.smtp_port)
            _print_metrics(ingress_port, metrics)
            while not stop.wait(1.0):
                group.check_alive()
        except ServiceError as err:
            print(f"a service failed: {err}", file=sys.stderr)
            return 1
        finally:
            _say("stopping services")
            group.stop()
            standin.terminate()
            standin.wait(10)
            for helper in (wa_standin, relay):
                helper.terminate()
                helper.wait(10)
            _say("stopping Kafka, PostgreSQL and the gateway")
    return 0


def _print_try_it(tenant: dict[str, object], port: int) -> None:
    tg = tenant["telegram"]
    assert isinstance(tg, dict)
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1795360321,
            "text": "hello agent",
            "from": {"id": 42, "is_bot": False, "first_name": "You"},
            "chat": {"id": 42, "type": "private"},
        },
    }
    curl = (
        f"curl -sS -X POST http://127.0.0.1:{port}/webhooks/telegram/{tg['bot_id']}"
        f" -H 'Content-Type: application/json'"
        f" -H 'X-Telegram-Bot-Api-Secret-Token: {tg['secret_token']}'"
        f" -d {shlex.quote(json.dumps(update))}"
    )
    if in_loopback_netns():
        curl = f"nsenter --net=/proc/{os.getpid()}/ns/net {curl}"
    print(
        "\nThe pipeline is up. Send a Telegram update (change update_id for each new one):\n\n"
        f"  {curl}\n\n"
        "The agent's reply is printed below by the Telegram stand-in (sendMessage).\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )


def _print_mail_it(address: str, port: int) -> None:
    swaks = (
        f"{_netns_prefix()}swaks --server 127.0.0.1:{port} --from you@example.com"
        f" --to {address} --header 'Subject: Hello' --body 'hello agent by mail'"
    )
    print(
        f"Or mail the agent at {address} (the reply is printed by the SMTP relay stand-in):\n\n"
        f"  {swaks}\n",
        flush=True,
    )


def _print_metrics(ingress_port: int, metrics: dict[str, int]) -> None:
    ports = {"ingress": ingress_port, **metrics}
    pages = ", ".join(f"{name} :{port}/metrics" for name, port in ports.items())
    print(f"Prometheus metrics on 127.0.0.1: {pages}\n", flush=True)


def _netns_prefix() -> str:
    """How a shell outside the loopback namespace reaches the servers inside it."""
    return f"nsenter --net=/proc/{os.getpid()}/ns/net " if in_loopback_netns() else ""
