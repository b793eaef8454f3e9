"""The WhatsApp part of `openclaw-saas dev` (`make run`): a Graph API stand-in and a demo number.

The stand-in (`devstack.graph_api`) accepts the demo number's sends, prints them, posts
signed delivery statuses back to the ingress, and offers `POST /_simulate/inbound`, which
sends a signed text-message webhook as if a WhatsApp user wrote to the demo number.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from common.settings import Settings
from control.whatsapp import WhatsAppNumber, bind_whatsapp

# The demo number exists only in the local Graph API stand-in.
DEMO_NUMBER = WhatsAppNumber(
    phone_number_id="106540352242922",
    access_token="EAAdemo-access-token-for-the-local-graph-standin",  # noqa: S106
    app_secret="0123456789abcdef0123456789abcdef",  # noqa: S106
    verify_token="demo-verify-token",  # noqa: S106
    template="reply_later",
)


def start_standin(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    """The Graph API stand-in on `port`, posting webhooks to the ingress."""
    n = DEMO_NUMBER
    webhook = f"http://127.0.0.1:{settings.ingress_port}/webhooks/whatsapp"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.graph_api",
            "--port",
            str(port),
            "--number",
            f"{n.phone_number_id}:{n.access_token}:{n.app_secret}",
            "--webhook-url",
            webhook,
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def bind_demo(settings: Settings, tenant_id: str) -> None:
    bind_whatsapp(settings, tenant_id, DEMO_NUMBER)


def try_it(port: int, prefix: str = "") -> str:
    """The curl that makes a simulated user write to the demo number."""
    body = {"phone_number_id": DEMO_NUMBER.phone_number_id, "from": "16505551234", "text": "hi"}
    curl = (
        f"curl -sS -X POST http://127.0.0.1:{port}/_simulate/inbound"
        f" -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}"
    )
    return (
        "Or write to the demo WhatsApp number (the Graph API stand-in signs the webhook and\n"
        "prints the reply; delivery statuses land in PostgreSQL, table message_statuses):\n\n"
        f"  {prefix}{curl}\n"
    )
