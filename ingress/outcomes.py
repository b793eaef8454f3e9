"""Counting webhook outcomes: each request once in INGRESS_REQUESTS, refusals by reason too."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from common.telemetry import INGRESS_REJECTIONS, INGRESS_REQUESTS
from ingress.middlewares import ApiError

Outcome = str  # an INGRESS_REQUESTS outcome label
Handle = Callable[[web.Request], Awaitable[tuple[Outcome, dict[str, Any]]]]
Route = Callable[[web.Request], Awaitable[web.Response]]


def counted(channel: str) -> Callable[[Handle], Route]:
    """Make `handle(request) -> (outcome, body)` a route that answers `body` as JSON.

    Every request is counted once under `channel`: its outcome, an ApiError's own outcome
    (re-raised: `error_middleware` turns it into the JSON error) or "error" for anything
    else (re-raised too).
    """

    def wrap(handle: Handle) -> Route:
        @functools.wraps(handle)
        async def route(request: web.Request) -> web.Response:
            try:
                outcome, body = await handle(request)
            except ApiError as err:
                count_error(channel, err)
                raise
            except Exception:
                INGRESS_REQUESTS.labels(channel, "error").inc()
                raise
            INGRESS_REQUESTS.labels(channel, outcome).inc()
            return web.json_response(body)

        return route

    return wrap


def count_error(channel: str, err: ApiError) -> None:
    """Count an ApiError under its outcome, and a refusal ("rejected") under its code."""
    INGRESS_REQUESTS.labels(channel, err.outcome).inc()
    if err.outcome == "rejected":
        INGRESS_REJECTIONS.labels(channel, err.code).inc()
