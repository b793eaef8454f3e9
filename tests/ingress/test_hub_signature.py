"""X-Hub-Signature-256 and the verify-token check: exact bytes, constant time, fail closed."""

from __future__ import annotations

import hashlib
import hmac

from devstack.whatsapp_payloads import sign
from ingress.signatures import hub_signature_ok, hub_signature_well_formed, verify_token_ok

SECRET = "0123456789abcdef0123456789abcdef"
BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_a_correct_signature_verifies() -> None:
    header = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert header == sign(BODY, SECRET)
    assert hub_signature_ok(header, BODY, SECRET)
    assert hub_signature_ok(header.upper().replace("SHA256=", "sha256="), BODY, SECRET)


def test_the_signature_covers_the_raw_bytes() -> None:
    header = sign(BODY, SECRET)
    reserialised = b'{"object": "whatsapp_business_account", "entry": []}'  # same JSON
    assert not hub_signature_ok(header, reserialised, SECRET)
    assert not hub_signature_ok(header, BODY + b" ", SECRET)


def test_wrong_secret_missing_or_malformed_header_fail() -> None:
    assert not hub_signature_ok(sign(BODY, "other"), BODY, SECRET)
    assert not hub_signature_ok(None, BODY, SECRET)
    assert not hub_signature_ok(sign(BODY, SECRET), BODY, "")
    for bad in ("", "sha256=", "sha1=" + "0" * 40, "sha256=" + "z" * 64, sign(BODY, SECRET)[:-1]):
        assert not hub_signature_well_formed(bad)
        assert not hub_signature_ok(bad, BODY, SECRET)


def test_verify_token_matches_any_stored_hash() -> None:
    hashes = [hashlib.sha256(t.encode()).digest() for t in ("tok-a", "tok-b")]
    assert verify_token_ok("tok-b", hashes)
    assert not verify_token_ok("tok-c", hashes)
    assert not verify_token_ok("", hashes)
    assert not verify_token_ok(None, hashes)
    assert not verify_token_ok("tok-a", [b""])
