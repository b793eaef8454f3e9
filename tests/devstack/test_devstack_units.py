"""Fast checks of devstack's pure parts and of the stub LLM (no real servers)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from devstack import netns
from devstack.__main__ import _strip_dashes, _without_netns, build_parser
from devstack._proc import StartupError, cache_dir, http_request, wait_until
from devstack.kafka import KafkaBroker, random_cluster_id
from devstack.openclaw import LlmProvider, gateway_config
from devstack.stub_llm import StubBehaviour, StubLLM, reply_text, user_texts


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENCLAW_SAAS_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("OPENCLAW_SAAS_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "openclaw-saas"


def test_wait_until_times_out_with_message() -> None:
    with pytest.raises(StartupError, match="thing: not ready"):
        wait_until(lambda: False, what="thing", timeout=0.2, interval=0.05)


def test_reply_strips_openclaw_envelope() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "[Sun 2026-11-22 15:11 UTC] first\n\nRuntime: agent=main"},
            {"role": "assistant", "content": "x"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "[Mon 2026-11-23 09:00 UTC] hi"}],
            },
            {"role": "user", "content": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> stuff"},
        ]
    }
    assert user_texts(body) == ["first", "hi"]
    assert reply_text(body) == "STUB-REPLY #2 to: hi"
    assert (
        reply_text({"messages": [{"role": "user", "content": "a] b"}]}) == "STUB-REPLY #1 to: a] b"
    )


def _post(stub: StubLLM, body: Mapping[str, object]) -> tuple[int, bytes]:
    return http_request(
        stub.port, "POST", "/v1/chat/completions", body=json.dumps(body).encode(), timeout=5
    )


def test_stub_streams_sse_with_usage() -> None:
    body = {"model": "stub-model", "stream": True, "messages": [{"role": "user", "content": "yo"}]}
    with StubLLM() as stub:
        status, data = _post(stub, body)
        assert status == 200
        events = [line[6:] for line in data.decode().split("\n\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[0]["choices"][0]["delta"]["content"] == "STUB-REPLY #1 to: yo"
        assert chunks[1]["choices"][0]["finish_reason"] == "stop"
        assert chunks[2]["usage"] == {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
        }
        assert stub.request_count == 1
        assert stub.last_request == body


def test_stub_failure_hook_and_reset() -> None:
    with StubLLM() as stub:
        stub.behaviour = StubBehaviour(fail_status=500, fail_count=1)
        body = {"messages": [{"role": "user", "content": "a"}]}
        assert _post(stub, body)[0] == 500
        status, data = _post(stub, body)
        assert status == 200
        assert json.loads(data)["choices"][0]["message"]["content"] == "STUB-REPLY #1 to: a"
        assert stub.request_count == 2
        stub.reset()
        assert stub.request_count == 0


def test_gateway_config_shape(tmp_path: Path) -> None:
    provider = LlmProvider("http://127.0.0.1:1/v1", "k", "m", provider_id="stub")
    cfg = gateway_config(
        port=1234, token="t", provider=provider, log_file=tmp_path / "l", agents=["main", "a"]
    )
    assert cfg["gateway"]["auth"] == {"mode": "token", "token": "t"}
    assert cfg["gateway"]["http"]["endpoints"]["chatCompletions"]["enabled"] is True
    assert cfg["models"]["catalogRefresh"]["enabled"] is False
    assert cfg["update"]["checkOnStart"] is False
    assert cfg["tools"]["deny"] == ["*"]
    assert cfg["tools"]["sessions"] == {"visibility": "self"}
    assert cfg["agents"]["defaults"]["model"]["primary"] == "stub/m"
    assert cfg["agents"]["entries"] == {"main": {}, "a": {}}
    single = gateway_config(port=1, token="t", provider=provider, log_file=tmp_path / "l")
    assert "entries" not in single["agents"]


def test_llm_provider_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("API_KEY", "BASE_URL", "MODEL"):
        monkeypatch.delenv(f"OPENCLAW_SAAS_LLM_{key}", raising=False)
    assert LlmProvider.from_env() is None
    monkeypatch.setenv("OPENCLAW_SAAS_LLM_API_KEY", "k")
    monkeypatch.setenv("OPENCLAW_SAAS_LLM_BASE_URL", "https://llm.example/v1")
    monkeypatch.setenv("OPENCLAW_SAAS_LLM_MODEL", "gpt-x")
    assert LlmProvider.from_env() == LlmProvider("https://llm.example/v1", "k", "gpt-x")


def test_kafka_properties(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path, port=19092, controller_port=19093)
    props = dict(
        line.split("=", 1) for line in broker.server_properties().splitlines() if "=" in line
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["auto.create.topics.enable"] == "false"
    assert props["min.insync.replicas"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert broker.bootstrap == "127.0.0.1:19092"
    voters = KafkaBroker(tmp_path, port=1, controller_port=2, standalone_format=False)
    assert "controller.quorum.voters=1@127.0.0.1:2" in voters.server_properties()
    cid = random_cluster_id()
    assert len(cid) == 22 and not cid.startswith("-")


def test_netns_helpers() -> None:
    assert netns.loopback_netns_argv(["pytest", "-x"]) == [
        "unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", "pytest", "-x",
    ]  # fmt: skip
    assert "lo" in netns.interfaces()
    assert isinstance(netns.in_loopback_netns(), bool)


def test_cli_parsing() -> None:
    args = build_parser().parse_args(["up", "--state-dir", "d", "--", "pytest", "--", "x"])
    assert args.state_dir == "d"
    assert _strip_dashes(args.command) == ["pytest", "--", "x"]
    argv = ["devstack", "up", "--netns", "--", "cmd", "--netns"]
    assert _without_netns(argv) == ["up", "--", "cmd", "--netns"]
