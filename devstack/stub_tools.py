"""Tool-calling for the stub LLM: a scripted model that calls the tools a gateway offers.

A :class:`ToolScript` makes the stub behave like a prompt-injected model: when the last
user text contains ``trigger``, the stub answers with the script's tool calls one turn at
a time (OpenClaw runs each call and sends its result back as a ``tool`` message), then
with a text reply that quotes every tool result it got (``TOOL-RESULTS: ...``), the way
an injected model would hand stolen data to the person who asked. Pure: the stub server
(`devstack/stub_llm.py`) does the HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RESULTS_PREFIX = "TOOL-RESULTS: "
RESULTS_SEPARATOR = "\n<<<TOOL-RESULT>>>\n"
INTERNAL = "<<<BEGIN_OPENCLAW_INTERNAL"


@dataclass(frozen=True)
class ToolStep:
    """One tool call: ``name`` is the function as offered (``tool_call``, ``sessions_list``)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolScript:
    """Tool calls made, in order, in any turn whose user text contains ``trigger``."""

    trigger: str
    steps: tuple[ToolStep, ...]


def text_of(content: Any) -> str:
    """The text of a chat message's `content` (a string, or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (p.get("text", "") for p in content if isinstance(p, dict))
        return "".join(str(p) for p in parts)
    return ""


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body.get("messages") or [] if isinstance(m, dict)]


def _turn_start(messages: Sequence[Mapping[str, Any]], trigger: str) -> int | None:
    """Index of the turn's user message when it carries ``trigger`` (None: not scripted).

    The turn's user message is the last one that is not OpenClaw's internal context.
    """
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") != "user":
            continue
        text = text_of(messages[i].get("content"))
        if text.startswith(INTERNAL):
            continue
        return i if trigger in text else None
    return None


def turn_results(body: Mapping[str, Any], trigger: str) -> list[str] | None:
    """The tool results of the current scripted turn, or None when it is not one."""
    messages = _messages(body)
    start = _turn_start(messages, trigger)
    if start is None:
        return None
    return [text_of(m.get("content")) for m in messages[start + 1 :] if m.get("role") == "tool"]


def next_step(body: Mapping[str, Any], script: ToolScript) -> tuple[int, ToolStep] | None:
    """The script's next call for this request (with its index), None when all are done."""
    results = turn_results(body, script.trigger) or []
    if len(results) >= len(script.steps):
        return None
    return len(results), script.steps[len(results)]


def applies(body: Mapping[str, Any], script: ToolScript) -> bool:
    """Whether this request belongs to a scripted turn."""
    return turn_results(body, script.trigger) is not None


def results_text(body: Mapping[str, Any], script: ToolScript) -> str:
    """The final reply: every tool result of the turn, quoted."""
    results = turn_results(body, script.trigger) or []
    return RESULTS_PREFIX + RESULTS_SEPARATOR.join(results)


def tool_call_delta(index: int, step: ToolStep) -> dict[str, Any]:
    """An assistant ``delta`` that calls ``step`` (OpenAI streaming shape)."""
    call = {
        "index": 0,
        "id": f"call_stub_{index}",
        "type": "function",
        "function": {"name": step.name, "arguments": json.dumps(dict(step.arguments))},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def offered_tools(body: Mapping[str, Any]) -> list[str]:
    """Names of the tools a request offers the model."""
    names = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            names.append(str(tool["function"].get("name")))
    return names
