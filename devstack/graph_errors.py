"""Graph API errors as the WhatsApp Cloud API returns them (research/protocols.md §2).

`{"error": {"message", "type", "code", "error_subcode"?, "error_data": {"messaging_product",
"details"}, "fbtrace_id"}}`; message texts follow Meta's error-code reference.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

# code: (HTTP status, message, details)
KNOWN: dict[int, tuple[int, str, str]] = {
    4: (400, "(#4) Application request limit reached", "Too many API calls from this app."),
    80007: (
        400,
        "(#80007) Rate limit issues",
        "The WhatsApp Business Account has reached its rate limit.",
    ),
    130429: (429, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
    131056: (
        400,
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        "Too many messages sent from the sender phone number to the same recipient phone "
        "number in a short period of time.",
    ),
    131047: (
        400,
        "(#131047) Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
    ),
    131026: (400, "(#131026) Message Undeliverable", "Unable to deliver message."),
    131048: (
        400,
        "(#131048) Spam rate limit hit",
        "Message failed to send because there are "
        "restrictions on how many messages can be sent from this phone number.",
    ),
    131000: (
        500,
        "(#131000) Something went wrong",
        "Message failed to send due to an unknown error.",
    ),
    131016: (503, "(#131016) Service unavailable", "A service is temporarily unavailable."),
    132000: (
        400,
        "(#132000) Number of parameters does not match the expected number of params",
        "The number of variable parameter values does not match the template.",
    ),
    132001: (
        404,
        "(#132001) Template name does not exist in the translation",
        "The template does not exist in the specified language or has not been approved.",
    ),
    132018: (
        400,
        "(#132018) There was an issue with the parameters in your template.",
        "Param text cannot have new-line/tab characters or more than 4 consecutive spaces.",
    ),
    190: (401, "Invalid OAuth access token - Cannot parse access token", ""),
}


class GraphError(Exception):
    """One Graph API error answer."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        type_: str = "OAuthException",
        *,
        details: str = "",
        subcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type_
        self.details = details
        self.subcode = subcode

    @classmethod
    def for_code(cls, code: int, http_status: int | None = None) -> GraphError:
        status, message, details = KNOWN.get(code, (400, f"(#{code}) Error", ""))
        return cls(http_status or status, code, message, details=details)

    @classmethod
    def param(cls, details: str) -> GraphError:
        return cls(400, 100, "(#100) Invalid parameter", details=details)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.details:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
        return {"error": error}


def graph_error(err: GraphError) -> web.Response:
    return web.json_response(err.body(), status=err.status)
