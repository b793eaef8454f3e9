"""The tool policy read-back against a local HTTP server that answers like a gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agents_bridge.provision.policy_check import classify, read_policy
from common.agent_policy import PROBE_TOOLS, public_agent_config
from common.errors import RetryableError


class Gateway:
    """Answers POST /tools/invoke with `status_of(agent, tool)`; records the bodies."""

    def __init__(self) -> None:
        self.status_of: Any = lambda agent, tool: 404
        self.bodies: list[dict[str, Any]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body["auth"] = self.headers.get("Authorization")
                gateway.bodies.append(body)
                self.send_response(gateway.status_of(body["agentId"], body["tool"]))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    thread = threading.Thread(target=gw.server.serve_forever, daemon=True)
    thread.start()
    yield gw
    gw.server.shutdown()
    gw.server.server_close()


def test_every_tool_refused_reads_ok(gateway: Gateway) -> None:
    reading = read_policy(gateway.url, "tok", ["a", "b"])
    assert reading.ok
    assert [(b["agentId"], b["tool"]) for b in gateway.bodies] == [
        (agent, tool) for agent in ("a", "b") for tool in PROBE_TOOLS
    ]
    assert {b["auth"] for b in gateway.bodies} == {"Bearer tok"}


def test_a_reachable_tool_is_named(gateway: Gateway) -> None:
    gateway.status_of = lambda agent, tool: 200 if (agent, tool) == ("b", "sessions_list") else 404
    reading = read_policy(gateway.url, "tok", ["a", "b"])
    assert not reading.ok
    assert reading.reachable == ("b/sessions_list",)


@pytest.mark.parametrize("status", [401, 500, 503])
def test_a_probe_without_verdict_is_retried_not_passed(gateway: Gateway, status: int) -> None:
    gateway.status_of = lambda agent, tool: status
    with pytest.raises(RetryableError):
        read_policy(gateway.url, "tok", ["a"])


def test_an_unreachable_gateway_is_retried() -> None:
    with pytest.raises(RetryableError):
        read_policy("http://127.0.0.1:1", "tok", ["a"], timeout_s=1)


def test_classify() -> None:
    assert classify(404) is False
    assert classify(200) is True
    assert classify(400) is True  # the tool exists and validated its arguments
    assert classify(401) is None


def test_the_policy_offers_nothing_and_narrows_every_reach() -> None:
    cfg = public_agent_config()
    assert cfg["tools"]["deny"] == ["*"]
    assert cfg["tools"]["sessions"] == {"visibility": "self"}
    assert cfg["tools"]["agentToAgent"] == {"enabled": False}
    assert "allow" not in cfg["tools"]
    assert not any(cfg["commands"].values())
