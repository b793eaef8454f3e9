"""The ingress baseline: a bare aiohttp server whose one handler answers 200 doing nothing.

python -m bench.bare --port 18998
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def nothing(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/webhooks/telegram/{bot_id}", nothing)
    app.router.add_get("/readyz", nothing)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
