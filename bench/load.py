"""Load from its own process: `wrk` at saturation, or an aiohttp client at a fixed rate.

Every request is a Telegram update for one of the bench tenants (round robin), with a fresh
`update_id` and the text `bench <n>`, so the ingress produces every one (no dedup hits) and
`bench.stub` can tell which message reached the gateway when.

    python -m bench.load fixed --url URL --tenants FILE --rate R --duration S --first N --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def update(n: int, chat: int) -> dict[str, Any]:
    return {
        "update_id": n,
        "message": {
            "message_id": n,
            "date": 1795360321,
            "text": f"bench {n}",
            "from": {"id": chat, "is_bot": False, "first_name": "B"},
            "chat": {"id": chat, "type": "private"},
        },
    }


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def wrk_script(path: Path, tenants: Sequence[tuple[str, str]]) -> Path:
    """A wrk Lua script posting updates round robin over (bot_id, secret) pairs."""
    bots = ",\n".join(f'  {{"{bot}", "{secret}"}}' for bot, secret in tenants)
    path.write_text(
        f"local bots = {{\n{bots}\n}}\n"
        + """local base, n = 0, 0
function init(args) base = tonumber(args[1]) or 0 end
function request()
  n = n + 1
  local bot = bots[(n % #bots) + 1]
  local id, chat = base + n, 1000 + (n % 97)
  local body = string.format('{"update_id":%d,"message":{"message_id":%d,"date":1795360321,'
    .. '"text":"bench %d","from":{"id":%d,"is_bot":false,"first_name":"B"},'
    .. '"chat":{"id":%d,"type":"private"}}}', id, id, id, chat, chat)
  return wrk.format("POST", "/webhooks/telegram/" .. bot[1],
    {["Content-Type"] = "application/json", ["X-Telegram-Bot-Api-Secret-Token"] = bot[2]}, body)
end
"""
    )
    return path


def run_wrk(
    base_url: str, script: Path, *, seconds: float, connections: int, first_id: int
) -> WrkResult:
    """`wrk -t1` for `seconds` with `connections` connections; latency percentiles in ms."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk missing: run scripts/setup-system.sh (Debian package wrk)")
    done = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "-s", str(script)]
        + [base_url, "--", str(first_id)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return parse_wrk(done.stdout)


def parse_wrk(out: str) -> WrkResult:
    def latency(pct: str) -> float:
        match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match is None:
            raise ValueError(f"no {pct}% latency in wrk output:\n{out}")
        return float(match.group(1)) * _UNIT_MS[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(v) for v in sockets.groups()) if sockets else 0
    return WrkResult(float(rps.group(1)), latency("50"), latency("99"), int(total.group(1)), errors)


async def fixed_rate(
    url: str, tenants: list[list[str]], rate: float, duration: float, first: int
) -> dict[int, list[int]]:
    """POST `rate` updates a second for `duration` s: {n: [sent_ns, answered_ns, status]}."""
    out: dict[int, list[int]] = {}
    count = int(rate * duration)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def send(i: int) -> None:
            n = first + i
            bot, secret = tenants[i % len(tenants)]
            sent = time.monotonic_ns()
            try:
                async with http.post(
                    f"{url}/webhooks/telegram/{bot}",
                    json=update(n, 5000 + i),
                    headers={SECRET_HEADER: secret},
                ) as resp:
                    await resp.read()
                    out[n] = [sent, time.monotonic_ns(), resp.status]
            except aiohttp.ClientError:
                out[n] = [sent, time.monotonic_ns(), 0]

        start = time.monotonic()
        tasks = []
        for i in range(count):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    fixed = sub.add_parser("fixed", help="an aiohttp client at a fixed offered rate")
    fixed.add_argument("--url", required=True)
    fixed.add_argument("--tenants", type=Path, required=True, help="JSON [[bot_id, secret]...]")
    fixed.add_argument("--rate", type=float, required=True)
    fixed.add_argument("--duration", type=float, required=True)
    fixed.add_argument("--first", type=int, required=True)
    fixed.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    tenants = json.loads(args.tenants.read_text())
    out = asyncio.run(fixed_rate(args.url, tenants, args.rate, args.duration, args.first))
    args.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
