"""Read a running gateway's tool policy back: every probed tool must be refused.

OpenClaw's `POST /tools/invoke` runs a tool through the same policy chain as an agent
turn and answers 404 when the policy does not allow it (docs/gateway/tools-invoke-http-api.md
of the installed package). So the *effective* policy, whatever the gateway made of the
config file (a failed hot reload, an upgrade that renamed a profile), is checked by
invoking each of `common.agent_policy.PROBE_TOOLS` for each agent: 404 is the answer we
want, 200 (or a 400 about the tool's arguments) means the tool is reachable.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from common.agent_policy import PROBE_TOOLS
from common.errors import RetryableError

REFUSED = 404


@dataclass(frozen=True)
class PolicyReading:
    """What the probes found: `reachable` holds `agent/tool` pairs the policy let through."""

    reachable: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.reachable


def classify(status: int) -> bool | None:
    """True: the tool is reachable; False: refused by policy; None: no verdict (retry)."""
    if status == REFUSED:
        return False
    if status in (200, 400):  # ran, or got as far as validating its arguments
        return True
    return None


def read_policy(
    base_url: str, token: str, agent_ids: Iterable[str], *, timeout_s: float = 10.0
) -> PolicyReading:
    """Probe every tool for every agent; raises RetryableError when a probe has no verdict."""
    reachable = []
    for agent_id in agent_ids:
        for tool in PROBE_TOOLS:
            status = _invoke(base_url, token, agent_id, tool, timeout_s)
            verdict = classify(status)
            if verdict is None:
                raise RetryableError(f"tool policy probe {tool}: HTTP {status}")
            if verdict:
                reachable.append(f"{agent_id}/{tool}")
    return PolicyReading(tuple(reachable))


def _invoke(base_url: str, token: str, agent_id: str, tool: str, timeout_s: float) -> int:
    body = json.dumps({"tool": tool, "agentId": agent_id, "args": {}}).encode()
    request = urllib.request.Request(  # noqa: S310 (our own gateway)
        base_url + "/tools/invoke",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
            status: int = resp.status
            return status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError) as err:
        raise RetryableError(f"tool policy probe {tool}: {err}") from err
