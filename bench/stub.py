"""The stub at the far end of the pipeline for the benchmarks, in its own process.

It answers, on one port, like an OpenClaw gateway (`POST /v1/chat/completions`, a plain
OpenAI-style `chat.completion` reply at once) and like the Telegram Bot API
(`POST /bot<token>/<method>`, `{"ok": true}`). It records the CLOCK_MONOTONIC arrival time
of each gateway request by the number in its text (`bench <n>`), which the load generator
also stamps, so the pipeline's added latency is measured across processes with one clock.
`GET /_stats` returns {"gateway": {n: ns}, "sends": count}.

    python -m bench.stub --port 18999
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from aiohttp import web

_NUMBER = re.compile(r"bench (\d+)")
_GATEWAY: web.AppKey[dict[int, int]] = web.AppKey("gateway", dict)
_SENDS: web.AppKey[list[int]] = web.AppKey("sends", list)


async def completions(request: web.Request) -> web.Response:
    arrived = time.monotonic_ns()
    body: dict[str, Any] = await request.json()
    text = str(body["messages"][-1]["content"])
    match = _NUMBER.search(text)
    if match:
        request.app[_GATEWAY].setdefault(int(match.group(1)), arrived)
    return web.json_response(
        {
            "id": f"chatcmpl-{arrived}",
            "object": "chat.completion",
            "model": body.get("model", "stub"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"ok: {text[:64]}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )


async def telegram(request: web.Request) -> web.Response:
    method = request.match_info["method"].lower()
    if method == "sendmessage":
        request.app[_SENDS][0] += 1
        result: Any = {"message_id": request.app[_SENDS][0], "date": int(time.time())}
    else:
        result = True
    return web.json_response({"ok": True, "result": result})


async def stats(request: web.Request) -> web.Response:
    gateway = {str(n): at for n, at in request.app[_GATEWAY].items()}
    return web.json_response({"gateway": gateway, "sends": request.app[_SENDS][0]})


def create_app() -> web.Application:
    app = web.Application()
    app[_GATEWAY] = {}
    app[_SENDS] = [0]
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/bot{token}/{method}", telegram)
    app.router.add_get("/_stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
