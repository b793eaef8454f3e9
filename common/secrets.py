"""Sealing secrets at rest (AES-256-GCM); the key comes from SECRETS_KEY.

Without a key (development) a fixed development key is used and a warning is logged
once; production sets SECRETS_KEY to 32 random bytes, base64-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.settings import Secret, Settings

log = logging.getLogger(__name__)
_DEV_KEY = hashlib.sha256(b"openclaw-saas development key - not for production").digest()
_VERSION = b"\x01"


class SecretBox:
    """Seal and open small secrets; the 1-byte version prefix allows key rotation."""

    def __init__(self, settings: Settings) -> None:
        raw = settings.secrets_key.value
        if raw:
            key = base64.b64decode(raw)
            if len(key) != 32:
                raise ValueError("SECRETS_KEY must be 32 bytes, base64-encoded")
        else:
            log.warning("SECRETS_KEY is not set: using the development key")
            key = _DEV_KEY
        self._aead = AESGCM(key)

    def seal(self, secret: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, secret.encode(), None)

    def open(self, sealed: bytes) -> Secret:
        if sealed[:1] != _VERSION:
            raise ValueError("unknown sealed-secret version")
        return Secret(self._aead.decrypt(sealed[1:13], sealed[13:], None).decode())


def token_hash(token: str) -> bytes:
    """What we keep of a webhook secret token: compared in constant time on every request."""
    return hashlib.sha256(token.encode()).digest()
