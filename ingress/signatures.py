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


# Meta signs every WhatsApp webhook POST: `sha256=<hex HMAC-SHA256(app secret, raw body)>`.
HUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
_HUB_PREFIX = "sha256="


def hub_signature_well_formed(header: str | None) -> bool:
    """Whether `header` can be a signature at all (checked before the body is parsed)."""
    if header is None or not header.startswith(_HUB_PREFIX):
        return False
    digest = header[len(_HUB_PREFIX) :]
    return len(digest) == 64 and all(c in "0123456789abcdefABCDEF" for c in digest)


def hub_signature_ok(header: str | None, body: bytes, app_secret: str) -> bool:
    """Whether `header` is the HMAC-SHA256 of the exact `body` bytes under `app_secret`.

    The expected digest is computed over the raw bytes (never re-serialised JSON) and
    compared with `hmac.compare_digest` (constant time). No header or no secret: False.
    """
    if not app_secret or not hub_signature_well_formed(header):
        return False
    assert header is not None
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header[len(_HUB_PREFIX) :].lower().encode(), expected.encode())


def verify_token_ok(presented: str | None, token_hashes: list[bytes]) -> bool:
    """Whether `presented` is a verify token whose sha256 is one of `token_hashes`.

    Every stored hash is compared (constant time each, no early exit), so the answer's
    timing does not depend on which binding, if any, matched.
    """
    if not presented:
        return False
    digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
    matched = False
    for stored in token_hashes:
        matched |= bool(stored) and hmac.compare_digest(digest, stored)
    return matched
