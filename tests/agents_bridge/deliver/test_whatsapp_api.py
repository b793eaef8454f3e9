"""Graph API answers → wamid, window closed, rate limited, retryable or permanent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents_bridge.deliver.whatsapp_api import RateLimited, WindowClosed, classify
from common.errors import InvalidEvent, RetryableError
from common.settings import Secret


def graph_error(code: int, message: str = "boom", details: str = "") -> bytes:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return json.dumps({"error": error}).encode()


def test_success_returns_the_wamid() -> None:
    body = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
        "messages": [{"id": "wamid.OK"}],
    }
    assert classify(200, json.dumps(body).encode()) == "wamid.OK"


def test_success_without_an_id_is_retryable() -> None:
    with pytest.raises(RetryableError, match="without a message id"):
        classify(200, b"{}")


def test_window_closed() -> None:
    with pytest.raises(WindowClosed, match="whatsapp_131047") as err:
        classify(400, graph_error(131047, "(#131047) Re-engagement message", "24 hours"))
    assert isinstance(err.value, InvalidEvent)  # unhandled, it dead-letters with the reason


@pytest.mark.parametrize(
    ("status", "code", "wait"),
    [(429, 130429, 2.0), (400, 131056, 6.0), (400, 80007, 60.0), (400, 4, 60.0)],
)
def test_rate_limits_back_off(status: int, code: int, wait: float) -> None:
    with pytest.raises(RateLimited) as err:
        classify(status, graph_error(code))
    assert err.value.retry_after == wait


def test_a_bare_429_is_a_rate_limit() -> None:
    with pytest.raises(RateLimited):
        classify(429, b"Too Many Requests")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, graph_error(131000, "Something went wrong")),
        (503, graph_error(131016)),
        (400, graph_error(2, "Service temporarily unavailable")),
        (502, b"<html>bad gateway</html>"),
        (408, b""),
    ],
)
def test_transient_failures_are_retryable(status: int, body: bytes) -> None:
    with pytest.raises(RetryableError) as err:
        classify(status, body)
    assert not isinstance(err.value, RateLimited)


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, 190), (400, 100), (400, 131026), (400, 131048), (404, 132001), (400, 368)],
)
def test_permanent_refusals_dead_letter_with_the_reason(status: int, code: int) -> None:
    with pytest.raises(InvalidEvent, match=f"whatsapp_{code}: msg") as err:
        classify(status, graph_error(code, "msg", "why"))
    assert not isinstance(err.value, WindowClosed)
    assert "(why)" in err.value.reason


def test_the_token_never_reaches_a_reason() -> None:
    token = Secret("EAAsecret-token")
    with pytest.raises(InvalidEvent) as err:
        classify(401, graph_error(190, "token EAAsecret-token is expired"), token)
    assert "EAAsecret-token" not in err.value.reason
