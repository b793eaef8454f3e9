"""Per-channel request authentication: pure functions, constant-time comparisons only."""

from __future__ import annotations

import hashlib
import hmac

# Telegram echoes the webhook's `secret_token` in this header on every update.
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)


def telegram_secret_ok(header: str | None, secret_hash: bytes) -> bool:
    """Whether `header` is the secret token whose sha256 is `secret_hash`.

    We only keep the token's hash, so we hash what the request presents and compare the
    two digests with `hmac.compare_digest` (constant time). A missing header, or a binding
    without a stored hash, never authenticates (fail closed).
    """
    if header is None or not secret_hash:
        return False
    # Telegram tokens are [A-Za-z0-9_-]; anything else cannot match, but must not raise.
    presented = hashlib.sha256(header.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(presented, secret_hash)
