"""The 503 a webhook answers when it cannot take a request yet (directory not loaded,
broker unavailable): the sender retries."""

from __future__ import annotations

from ingress.middlewares import ApiError

#: Seconds a client should wait after a 503 (Telegram and Meta retry on their own schedule).
RETRY_AFTER_S = 5


def unavailable(code: str, message: str) -> ApiError:
    """A 503 with `code` and `message`, counted as "unavailable", with Retry-After."""
    return ApiError(
        503, code, message, outcome="unavailable", headers={"Retry-After": str(RETRY_AFTER_S)}
    )
