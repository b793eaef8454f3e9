"""The tool and command policy of a public-facing agent (pure data, no I/O).

Every OpenClaw gateway the platform runs (pool and dedicated, and devstack's) serves end
users who are strangers to each other and to the tenant, so each gateway gets this policy
instead of a tool profile. Measured on openclaw 2026.9.6 (docs/agent-policy.md has the
run and the documentation each key rests on):

- the `messaging` profile offers `sessions_list`, `sessions_history`, `sessions_search`,
  `sessions_send`, `sessions_spawn`, `subagents`, `conversations_*` and `gateway` through
  the `tool_search`/`tool_call` meta-tools, and session visibility is gateway-wide by
  default: one tenant's agent read another tenant's transcript;
- an explicit `tools.allow` whose entries all get denied fails every turn ("No callable
  tools remain"), so "no tools" is spelled `deny: ["*"]`: the model is offered nothing
  and every call it makes anyway is answered "Tool ... not found".

The allowlist is empty today, because a customer's agent only converses. A later grant
(automations, Kintone) swaps `deny: ["*"]` for `allow: [<granted ids>]` plus a deny list
of every session, automation, runtime and file group, and extends the attack test
(tests/integration/test_agent_policy.py) to the granted tools.
"""

from __future__ import annotations

from typing import Any

#: Tools the read-back check invokes on a running gateway: each must be refused (404).
PROBE_TOOLS: tuple[str, ...] = (
    "sessions_list",
    "sessions_history",
    "sessions_search",
    "sessions_send",
    "sessions_spawn",
    "subagents",
    "conversations_list",
    "session_status",
    "message",
    "gateway",
    "cron",
    "read",
)


def tools_policy() -> dict[str, Any]:
    """`tools` of openclaw.json for a public-facing gateway."""
    return {
        "profile": "minimal",
        "deny": ["*"],
        # a session tool that a later grant lets through still sees only its own session
        "sessions": {"visibility": "self"},
        "agentToAgent": {"enabled": False},
        "message": {"crossContext": {"allowWithinProvider": False, "allowAcrossProviders": False}},
        "elevated": {"enabled": False},
    }


def commands_policy() -> dict[str, Any]:
    """`commands` of openclaw.json: no chat command surface for end users' text."""
    return {
        "text": False,
        "native": False,
        "nativeSkills": False,
        "bash": False,
        "config": False,
        "mcp": False,
        "plugins": False,
        "debug": False,
        "restart": False,
    }


def public_agent_config() -> dict[str, Any]:
    """The policy keys of openclaw.json (`tools`, `commands`), to merge into a config."""
    return {"tools": tools_policy(), "commands": commands_policy()}
