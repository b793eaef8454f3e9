"""What a provisioned gateway container receives: config without secrets, limits, workspace."""

from __future__ import annotations

import io
import json
import tarfile

from agents_bridge.provision import gateway_config as gc
from common import agent_policy
from common.settings import Secret, Settings

SETTINGS = Settings.from_env(
    {},
    gateway_llm_base_url="http://llm.example/v1",
    gateway_llm_model="m1",
    gateway_llm_api_key=Secret("sk-very-secret"),
)


def test_config_lists_enabled_agents_only_and_holds_no_secret() -> None:
    agents = [
        gc.AgentEntry("t-b", "Bee"),
        gc.AgentEntry("t-a", "Ay"),
        gc.AgentEntry("t-c", "C", False),
    ]
    cfg = gc.gateway_config(SETTINGS, agents)
    assert list(cfg["agents"]["entries"]) == ["t-a", "t-b"]
    assert cfg["agents"]["entries"]["t-a"]["workspace"] == "/home/node/.openclaw/workspaces/t-a"
    assert cfg["tools"] == agent_policy.tools_policy()
    assert cfg["commands"] == agent_policy.commands_policy()
    assert cfg["gateway"]["bind"] == "lan"
    assert cfg["gateway"]["auth"]["token"] == "${OPENCLAW_GATEWAY_TOKEN}"
    text = gc.config_bytes(cfg).decode()
    assert "sk-very-secret" not in text
    assert "${OPENCLAW_LLM_API_KEY}" in text


def test_secrets_go_to_the_environment() -> None:
    env = gc.container_env(SETTINGS, "gw-token")
    assert env["OPENCLAW_GATEWAY_TOKEN"] == "gw-token"
    assert env["OPENCLAW_LLM_API_KEY"] == "sk-very-secret"
    assert env["OPENCLAW_STATE_DIR"] == gc.STATE_DIR


def test_limits_from_plan() -> None:
    limits = gc.container_limits(gc.PlanLimits(memory_mb=1536, cpus=1.5, pids_limit=512))
    assert limits == {
        "mem_limit": 1536 * 1024 * 1024,
        "memswap_limit": 1536 * 1024 * 1024,
        "nano_cpus": 1_500_000_000,
        "pids_limit": 512,
    }


def test_workspace_files_render_settings_with_defaults() -> None:
    files = gc.workspace_files("Acme", {"persona": "dry and witty", "tools_notes": "CRM lookup"})
    assert set(files) == {"SOUL.md", "AGENTS.md", "TOOLS.md"}
    assert "Acme" in files["SOUL.md"] and "dry and witty" in files["SOUL.md"]
    assert "CRM lookup" in files["TOOLS.md"]
    assert "Answer the customer's questions." in files["AGENTS.md"]


def test_state_archive_is_owned_by_the_gateway_user() -> None:
    raw = gc.state_archive({"openclaw.json": b"{}", "workspaces/t-a/SOUL.md": "hi"})
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {
            "openclaw.json",
            "workspaces",
            "workspaces/t-a",
            "workspaces/t-a/SOUL.md",
        }
        assert {m.uid for m in members.values()} == {gc.GATEWAY_UID}
        soul = tar.extractfile("workspaces/t-a/SOUL.md")
        assert soul is not None and soul.read() == b"hi"
    assert json.loads(b"{}") == {}
