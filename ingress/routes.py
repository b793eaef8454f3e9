"""The one route table: the channels, the probes and the metrics endpoint.

Every channel module registers its own paths and app state the same way, `setup(app)`.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ingress import stripe, telegram, whatsapp
from ingress.typedefs import DIRECTORY, LIFECYCLE

CHANNELS = (telegram, stripe, whatsapp)


def setup_routes(app: web.Application) -> None:
    for channel in CHANNELS:
        channel.setup(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the event loop answers."""
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the directory is loaded, the producer open and we are not shutting down."""
    lifecycle = request.app[LIFECYCLE]
    checks = {
        "directory": request.app[DIRECTORY].loaded.is_set(),
        "producer": lifecycle.producer_open,
        "accepting": not lifecycle.stopping,
    }
    ready = all(checks.values())
    return web.json_response({"ready": ready, **checks}, status=200 if ready else 503)


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
