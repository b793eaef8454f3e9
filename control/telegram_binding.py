"""A tenant's Telegram bot at Telegram's end: its webhook is set and deleted from here.

- After `tenant create` with a bot token: `setWebhook` with the tenant's webhook URL
  (`PUBLIC_BASE_URL/webhooks/telegram/<bot_id>`), the generated `secret_token` (Telegram
  echoes it in `X-Telegram-Bot-Api-Secret-Token`, the ingress checks it) and
  `allowed_updates: ["message"]`.
- `set_webhook` again (`tenant set-webhook`): a new secret token, `setWebhook`, then the
  new token's hash is stored. The way to recover when the first `setWebhook` failed,
  since the secret token is shown only once.
- `unbind` (`tenant unbind-telegram`): `deleteWebhook`, then the binding row goes. If
  Telegram cannot be told, the binding is kept (so the command can be retried) unless
  `force`.

Calls go to `settings.telegram_api_base` (a local stand-in in tests and `make run`) with
the standard library's HTTP client; 429 (`retry_after`), 5xx and connection errors are
retried a few times, other refusals are final. The bot token is never printed: error
texts are scrubbed of it.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from common.secrets import SecretBox, token_hash
from common.settings import Settings
from control.tenants import TenantError

ALLOWED_UPDATES = ["message"]
_ATTEMPTS = 3
_MAX_RETRY_AFTER_S = 10.0

_BINDING_SQL = """
SELECT t.id::text AS tenant_id, t.agent_id, b.external_id AS bot_id, b.credentials
FROM tenants t JOIN channel_bindings b ON b.tenant_id = t.id AND b.channel = 'telegram'
WHERE t.id::text = %s OR t.agent_id = %s
"""


class BotApiError(RuntimeError):
    """Telegram did not do what we asked; `reason` is safe to print (no token)."""

    def __init__(self, reason: str, *, retryable: bool = False, retry_after: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def webhook_url(settings: Settings, bot_id: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/webhooks/telegram/{bot_id}"


def set_webhook(
    settings: Settings,
    bot_token: str,
    bot_id: str,
    secret_token: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """`setWebhook` for `bot_id`; returns the URL set. Raises `BotApiError`."""
    url = webhook_url(settings, bot_id)
    params = {"url": url, "secret_token": secret_token, "allowed_updates": ALLOWED_UPDATES}
    bot_api(settings, bot_token, "setWebhook", params, sleep=sleep)
    return url


def register_created(settings: Settings, created: dict[str, Any], bot_token: str) -> None:
    """After `create_tenant`: set the webhook; the outcome goes into `created["telegram"]`.

    Raises `BotApiError` after noting it (`webhook_set: false`, `webhook_error`), so the
    caller can print the tenant (it exists) and still fail.
    """
    tg = created["telegram"]
    try:
        set_webhook(settings, bot_token, tg["bot_id"], tg["secret_token"])
    except BotApiError as err:
        tg.update(webhook_set=False, webhook_error=err.reason)
        raise
    tg["webhook_set"] = True


def reset_webhook(settings: Settings, tenant: str) -> dict[str, Any]:
    """A new secret token, `setWebhook` with it, then store its hash; returns both."""
    row, token = _binding(settings, tenant)
    secret_token = secrets.token_urlsafe(32)
    url = set_webhook(settings, token, row["bot_id"], secret_token)
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "UPDATE channel_bindings SET secret_hash = %s"
            " WHERE tenant_id = %s::uuid AND channel = 'telegram'",
            (token_hash(secret_token), row["tenant_id"]),
        )
    return {
        "tenant_id": row["tenant_id"],
        "agent_id": row["agent_id"],
        "telegram": {
            "bot_id": row["bot_id"],
            "webhook_url": url,
            "secret_token": secret_token,
            "webhook_set": True,
        },
    }


def unbind(settings: Settings, tenant: str, *, force: bool = False) -> dict[str, Any]:
    """`deleteWebhook`, then remove the binding (kept when Telegram fails, unless `force`)."""
    row, token = _binding(settings, tenant)
    out: dict[str, Any] = {
        "tenant_id": row["tenant_id"],
        "agent_id": row["agent_id"],
        "bot_id": row["bot_id"],
    }
    try:
        bot_api(settings, token, "deleteWebhook", {"drop_pending_updates": False})
        out["webhook_deleted"] = True
    except BotApiError as err:
        if not force:
            raise
        out.update(webhook_deleted=False, webhook_error=err.reason)
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "DELETE FROM channel_bindings WHERE tenant_id = %s::uuid AND channel = 'telegram'",
            (row["tenant_id"],),
        )
    out["unbound"] = True
    return out


def _binding(settings: Settings, tenant: str) -> tuple[dict[str, Any], str]:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        row = conn.execute(_BINDING_SQL, (tenant, tenant)).fetchone()
    if row is None:
        raise TenantError(f"no tenant {tenant!r} with a Telegram binding")
    token = SecretBox(settings).open(bytes(row["credentials"])).value
    return row, token


def bot_api(
    settings: Settings,
    bot_token: str,
    method: str,
    params: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """One Bot API method with a few retries; returns `result` or raises `BotApiError`."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return _call_once(settings, bot_token, method, params)
        except BotApiError as err:
            if not err.retryable or attempt == _ATTEMPTS:
                raise
            sleep(max(0.5 * attempt, min(err.retry_after, _MAX_RETRY_AFTER_S)))
    raise AssertionError("unreachable")


def _call_once(settings: Settings, token: str, method: str, params: dict[str, Any]) -> Any:
    url = f"{settings.telegram_api_base.rstrip('/')}/bot{token}/{method}"
    request = urllib.request.Request(  # noqa: S310 (http(s) from settings)
        url,
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.telegram_timeout_s) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:  # connection refused, DNS, timeout
        reason = getattr(err, "reason", err)
        raise BotApiError(
            f"{method}: cannot reach the Telegram API: {_scrub(str(reason), token)}",
            retryable=True,
        ) from None
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if 200 <= status < 300 and body.get("ok") is True:
        return body.get("result")
    description = _scrub(str(body.get("description") or f"HTTP {status}"), token)[:300]
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    retry_after = parameters.get("retry_after") if parameters else None
    raise BotApiError(
        f"{method}: Telegram answered {status}: {description}",
        retryable=status == 429 or status >= 500,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else 0.0,
    )


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
