"""Bind a WhatsApp Business number to a tenant (`openclaw-saas whatsapp bind|unbind`).

One `channel_bindings` row per number (channel 'whatsapp', external_id = the Graph API
phone_number_id, which the webhook names in `metadata.phone_number_id` and the sender
puts in its URL):

- `secret_hash` = sha256 of the verify token (the GET handshake compares hashes only);
- `credentials` = sealed JSON {"access_token", "app_secret", "verify_token"}: the sender
  needs the access token and the webhook's signature check needs the app secret itself,
  so both are sealed (AES-256-GCM, SECRETS_KEY), never hashed;
- `settings` = {"template": {"name", "language", "text_param"}} when the tenant configured
  the approved template the sender falls back to outside the 24-hour window.

Binding again the same number to the same tenant replaces its credentials (rotation);
a number bound to another tenant is refused. Nothing secret is printed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from common.secrets import SecretBox, token_hash
from common.settings import Settings
from control.tenants import TenantError

CHANNEL = "whatsapp"
WEBHOOK_PATH = "/webhooks/whatsapp"
_PHONE_NUMBER_ID = re.compile(r"[0-9]{1,32}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,2048}")  # printable, no spaces
_TEMPLATE = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")

_TENANT_SQL = "SELECT id::text AS id, agent_id FROM tenants WHERE id::text = %s OR agent_id = %s"
_UPSERT = """
INSERT INTO channel_bindings AS b (tenant_id, channel, external_id, secret_hash, credentials,
                                   settings)
VALUES (%s, 'whatsapp', %s, %s, %s, %s)
ON CONFLICT (channel, external_id) DO UPDATE
SET secret_hash = EXCLUDED.secret_hash, credentials = EXCLUDED.credentials,
    settings = EXCLUDED.settings
WHERE b.tenant_id = EXCLUDED.tenant_id
RETURNING (xmax <> 0) AS rebound
"""


@dataclass(frozen=True)
class WhatsAppNumber:
    """What the operator gives for one number (from Meta's App Dashboard)."""

    phone_number_id: str
    access_token: str
    app_secret: str
    verify_token: str
    template: str | None = None
    template_language: str = "en_US"
    # Pass the reply's text as the template's body parameter {{1}}.
    template_text_param: bool = True


def webhook_url(settings: Settings) -> str:
    """The one app-level callback URL every number's notifications go to."""
    return settings.public_base_url.rstrip("/") + WEBHOOK_PATH


def validate(number: WhatsAppNumber) -> None:
    """Raise `TenantError` for input that cannot be a working binding."""
    if not _PHONE_NUMBER_ID.fullmatch(number.phone_number_id):
        raise TenantError("phone_number_id must be the number's Graph API id (digits)")
    for name in ("access_token", "app_secret", "verify_token"):
        if not _TOKEN.fullmatch(getattr(number, name)):
            raise TenantError(f"{name} must be 1-2048 printable characters without spaces")
    if number.template is not None and not _TEMPLATE.fullmatch(number.template):
        raise TenantError("template must be an approved template name ([a-z0-9_])")
    if not _LANGUAGE.fullmatch(number.template_language):
        raise TenantError("template language must look like en or en_US")


def bind_whatsapp(settings: Settings, tenant_ref: str, number: WhatsAppNumber) -> dict[str, Any]:
    """Bind (or rebind) `number` to the tenant `tenant_ref` (tenant id or agent id)."""
    validate(number)
    box = SecretBox(settings)
    credentials = json.dumps(
        {
            "access_token": number.access_token,
            "app_secret": number.app_secret,
            "verify_token": number.verify_token,
        }
    )
    options: dict[str, Any] = {}
    if number.template:
        options["template"] = {
            "name": number.template,
            "language": number.template_language,
            "text_param": number.template_text_param,
        }
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn, conn.transaction():
        tenant = conn.execute(_TENANT_SQL, (tenant_ref, tenant_ref)).fetchone()
        if tenant is None:
            raise TenantError(f"no tenant {tenant_ref!r}")
        row = conn.execute(
            _UPSERT,
            (
                tenant["id"],
                number.phone_number_id,
                token_hash(number.verify_token),
                box.seal(credentials),
                Jsonb(options),
            ),
        ).fetchone()
        if row is None:  # the conflict's WHERE failed: another tenant has it
            raise TenantError(f"phone number {number.phone_number_id} is bound to another tenant")
    return {
        "tenant_id": tenant["id"],
        "agent_id": tenant["agent_id"],
        "whatsapp": {
            "phone_number_id": number.phone_number_id,
            "webhook_url": webhook_url(settings),
            "rebound": bool(row["rebound"]),
            "template": options.get("template"),
        },
    }


def unbind_whatsapp(settings: Settings, tenant_ref: str, phone_number_id: str) -> dict[str, Any]:
    """Remove the tenant's binding of `phone_number_id`; raises `TenantError` if none."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn, conn.transaction():
        tenant = conn.execute(_TENANT_SQL, (tenant_ref, tenant_ref)).fetchone()
        if tenant is None:
            raise TenantError(f"no tenant {tenant_ref!r}")
        gone = conn.execute(
            "DELETE FROM channel_bindings WHERE tenant_id = %s AND channel = 'whatsapp'"
            " AND external_id = %s",
            (tenant["id"], phone_number_id),
        ).rowcount
    if not gone:
        raise TenantError(f"tenant {tenant_ref!r} has no WhatsApp number {phone_number_id}")
    return {"tenant_id": tenant["id"], "whatsapp": {"phone_number_id": phone_number_id}}
