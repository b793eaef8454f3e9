"""`openclaw-saas whatsapp bind|unbind`: validation, sealed credentials, the directory routes it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from common.directory import Directory
from common.secrets import SecretBox, token_hash
from common.settings import Settings
from control.cli import main
from control.tenants import TenantError
from control.whatsapp import WhatsAppNumber, bind_whatsapp, unbind_whatsapp, validate
from tests.pg_schemas import migrated_schema

NUMBER = WhatsAppNumber(
    phone_number_id="106540352242922",
    access_token="EAA-access-token",
    app_secret="0123456789abcdef",
    verify_token="verify-me",
    template="reply_later",
)


@pytest.mark.parametrize(
    "change",
    [
        {"phone_number_id": "+1555"},
        {"access_token": ""},
        {"app_secret": "has space"},
        {"verify_token": "x" * 3000},
        {"template": "Reply Later"},
        {"template_language": "english"},
    ],
)
def test_validation(change: dict[str, str]) -> None:
    with pytest.raises(TenantError):
        validate(WhatsAppNumber(**{**NUMBER.__dict__, **change}))


@pytest.fixture
def settings(database_url: str) -> Iterator[Settings]:
    """A schema of its own with the migrations and two tenants; DATABASE_URL points into it."""
    with migrated_schema(database_url, "test_wa", [(None, "acme"), (None, "other")]) as url:
        yield Settings(database_url=url)


async def test_bind_seals_credentials_and_the_directory_routes_it(settings: Settings) -> None:
    out = bind_whatsapp(settings, "acme", NUMBER)
    assert out["whatsapp"]["webhook_url"].endswith("/webhooks/whatsapp")
    assert out["whatsapp"]["rebound"] is False
    assert "EAA-access-token" not in json.dumps(out)
    with psycopg.connect(settings.database_url) as conn:
        secret_hash, sealed = conn.execute(
            "SELECT secret_hash, credentials FROM channel_bindings WHERE channel = 'whatsapp'"
        ).fetchone() or (None, None)
    assert bytes(secret_hash) == token_hash("verify-me")
    assert b"EAA-access-token" not in bytes(sealed)
    opened = json.loads(SecretBox(settings).open(bytes(sealed)).value)
    assert opened == {
        "access_token": "EAA-access-token",
        "app_secret": "0123456789abcdef",
        "verify_token": "verify-me",
    }
    directory = Directory(settings)
    await directory.reload()
    found = directory.by_binding("whatsapp", NUMBER.phone_number_id)
    assert found is not None
    tenant, binding = found
    assert tenant.agent_id == "acme"
    assert binding.credentials["app_secret"].value == "0123456789abcdef"
    assert binding.settings["template"] == {
        "name": "reply_later",
        "language": "en_US",
        "text_param": True,
    }


def test_rebind_rotates_and_another_tenant_is_refused(settings: Settings) -> None:
    bind_whatsapp(settings, "acme", NUMBER)
    again = bind_whatsapp(
        settings, "acme", WhatsAppNumber(**{**NUMBER.__dict__, "app_secret": "new"})
    )
    assert again["whatsapp"]["rebound"] is True
    with pytest.raises(TenantError, match="bound to another tenant"):
        bind_whatsapp(settings, "other", NUMBER)
    with pytest.raises(TenantError, match="no tenant"):
        bind_whatsapp(settings, "ghost", NUMBER)


def test_cli_bind_and_unbind(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    args = ["whatsapp", "bind", "acme", "--phone-number-id", "42", "--access-token", "t"]
    args += ["--app-secret", "s", "--verify-token", "v", "--no-template-text-param"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["whatsapp"]["phone_number_id"] == "42"
    assert out["whatsapp"]["template"] is None
    assert main(["whatsapp", "unbind", "acme", "42"]) == 0
    assert main(["whatsapp", "unbind", "acme", "42"]) == 2
    with pytest.raises(TenantError):
        unbind_whatsapp(settings, "acme", "42")
