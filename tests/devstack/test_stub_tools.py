"""The stub model's tool scripts: pure decisions, and over HTTP."""

from __future__ import annotations

import json
from typing import Any

from devstack._proc import http_request
from devstack.stub_llm import StubBehaviour, StubLLM
from devstack.stub_tools import (
    RESULTS_PREFIX,
    RESULTS_SEPARATOR,
    ToolScript,
    ToolStep,
    applies,
    next_step,
    offered_tools,
    results_text,
)

SCRIPT = ToolScript("GO", (ToolStep("tool_call", {"id": "sessions_list"}), ToolStep("x")))
INTERNAL = {"role": "user", "content": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> ..."}


def _body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"messages": list(messages), "tools": [{"type": "function", "function": {"name": "a"}}]}


def test_a_turn_without_the_trigger_is_not_scripted() -> None:
    body = _body({"role": "user", "content": "GO earlier"}, {"role": "user", "content": "hi"})
    assert not applies(body, SCRIPT)


def test_steps_follow_the_tool_results_then_the_reply_quotes_them() -> None:
    user = {"role": "user", "content": "[Sun 2026-11-22 15:11 UTC] GO now"}
    first = _body(user, INTERNAL)
    assert applies(first, SCRIPT)
    assert next_step(first, SCRIPT) == (0, SCRIPT.steps[0])
    call = {"role": "assistant", "content": None}
    second = _body(user, INTERNAL, call, {"role": "tool", "content": "r1"})
    assert next_step(second, SCRIPT) == (1, SCRIPT.steps[1])
    done = _body(
        user,
        INTERNAL,
        call,
        {"role": "tool", "content": "r1"},
        call,
        {"role": "tool", "content": [{"type": "text", "text": "r2"}]},
    )
    assert next_step(done, SCRIPT) is None
    assert results_text(done, SCRIPT) == RESULTS_PREFIX + RESULTS_SEPARATOR.join(["r1", "r2"])
    assert offered_tools(done) == ["a"]


def test_the_stub_streams_a_tool_call() -> None:
    with StubLLM() as stub:
        stub.behaviour = StubBehaviour(tool_script=SCRIPT)
        body = {"stream": True, "messages": [{"role": "user", "content": "GO"}]}
        status, data = http_request(
            stub.port, "POST", "/v1/chat/completions", body=json.dumps(body).encode(), timeout=5
        )
        assert status == 200
        chunks = [
            json.loads(line[6:])
            for line in data.decode().splitlines()
            if line.startswith("data: {")
        ]
        [call] = chunks[0]["choices"][0]["delta"]["tool_calls"]
        assert call["function"] == {"name": "tool_call", "arguments": '{"id": "sessions_list"}'}
        assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
        assert list(stub.requests) == [body]
