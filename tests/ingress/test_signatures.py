"""signatures.py: the Telegram secret-token check."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from common.secrets import token_hash
from ingress.signatures import telegram_secret_ok

TOKEN = "Zx9_-abcDEF0123456789"


def test_the_right_token_passes() -> None:
    assert telegram_secret_ok(TOKEN, token_hash(TOKEN))


@pytest.mark.parametrize("header", [None, "", TOKEN.lower(), TOKEN + " ", TOKEN[1:], "é\udcff"])
def test_anything_else_fails(header: str | None) -> None:
    assert not telegram_secret_ok(header, token_hash(TOKEN))


def test_a_binding_without_a_stored_hash_never_passes() -> None:
    assert not telegram_secret_ok("", b"")
    assert not telegram_secret_ok(TOKEN, b"")


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    assert telegram_secret_ok(TOKEN, token_hash(TOKEN))
    assert calls == [(hashlib.sha256(TOKEN.encode()).digest(), token_hash(TOKEN))]
