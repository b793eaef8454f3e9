"""Every failure leaves as a small JSON body, {"error": {"code", "message"}}, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

log = logging.getLogger(__name__)

# Codes for the errors aiohttp raises itself (no route, wrong method, body over the limit).
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}
# Headers of an aiohttp HTTPException worth keeping (e.g. Allow on a 405).
_KEPT_HEADERS = ("Allow", "Retry-After")


class ApiError(Exception):
    """A deliberate non-2xx answer; `outcome` is the INGRESS_REQUESTS label it counts as."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        outcome: str = "rejected",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.outcome = outcome
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message, err.headers)
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and friends are not errors
            raise
        kept = {h: exc.headers[h] for h in _KEPT_HEADERS if h in exc.headers}
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason, kept)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, up to `limit` bytes, read from the stream (so a route may allow more or
    less than the app-wide `client_max_size`): 413 beyond it, 400 when the body cannot be
    read as sent (a `Content-Encoding` it does not match, a truncated chunked body)."""
    too_large = ApiError(413, "too_large", f"body exceeds {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except RequestPayloadError as err:
        raise ApiError(400, "bad_body", "the body cannot be read as sent") from err
    return b"".join(chunks)
