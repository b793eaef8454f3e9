"""Channel setup at provisioning: point a tenant's Telegram bot at our webhook.

A bot bought with the checkout is bound by the lifecycle (`channel_bindings`, settings
`{"webhook": "pending"}`, no secret yet: ingress refuses its updates, fail closed). Once
the tenant's gateway serves, `TelegramWebhooks.ensure` calls `setWebhook` on
TELEGRAM_API_BASE with `PUBLIC_BASE_URL/webhooks/telegram/<bot id>` and a fresh secret
token, then stores only the token's hash. Idempotent: a set webhook is not set again.
When the tenant is deleted, `TelegramWebhooks.release` calls `deleteWebhook` for each bot
whose webhook we set, so Telegram stops posting updates nobody will answer, and removes the
binding (the bot may serve another tenant later). The bot token is in the request path: it
never appears in a log line or an error.
"""

from __future__ import annotations

import json
import logging
import secrets
import urllib.error
import urllib.request
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from common.errors import RetryableError
from common.secrets import SecretBox, token_hash
from common.settings import Settings

log = logging.getLogger(__name__)


class TelegramWebhooks:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._box = SecretBox(settings)

    def ensure(self, tenant_id: str) -> int:
        """Set every pending webhook of this tenant; returns how many were set now."""
        with psycopg.connect(self._settings.database_url, row_factory=dict_row) as conn:
            done = 0
            for row, token in self._bots(conn, tenant_id, webhook="pending"):
                secret = secrets.token_urlsafe(32)
                url = (
                    f"{self._settings.public_base_url.rstrip('/')}"
                    f"/webhooks/telegram/{row['external_id']}"
                )
                outcome = self._set_webhook(token, url, secret)
                if outcome is None:  # accepted
                    conn.execute(
                        "UPDATE channel_bindings SET secret_hash = %s,"
                        " settings = settings || %s WHERE id = %s",
                        (
                            token_hash(secret),
                            Jsonb({"webhook": "set", "webhook_url": url}),
                            row["id"],
                        ),
                    )
                    done += 1
                else:  # refused for good (bad token...): record it, do not retry forever
                    log.warning("tenant %s: setWebhook refused: %s", tenant_id, outcome)
                    conn.execute(
                        "UPDATE channel_bindings SET settings = settings || %s WHERE id = %s",
                        (Jsonb({"webhook": "refused", "reason": outcome}), row["id"]),
                    )
                conn.commit()
        return done

    def release(self, tenant_id: str) -> int:
        """`deleteWebhook` for each bot of this tenant whose webhook we set; returns how many."""
        with psycopg.connect(self._settings.database_url, row_factory=dict_row) as conn:
            done = 0
            for row, token in self._bots(conn, tenant_id, webhook="set"):
                outcome = self._call(token, "deleteWebhook", {"drop_pending_updates": True})
                if outcome is None:  # the bot is free again: another tenant may bind it
                    conn.execute("DELETE FROM channel_bindings WHERE id = %s", (row["id"],))
                    done += 1
                else:  # kept, so an operator sees it (`tenant show`) and can retry
                    log.warning("tenant %s: deleteWebhook refused: %s", tenant_id, outcome)
                    conn.execute(
                        "UPDATE channel_bindings SET settings = settings || %s WHERE id = %s",
                        (Jsonb({"webhook": "delete_refused", "reason": outcome}), row["id"]),
                    )
                conn.commit()
        return done

    def _bots(
        self, conn: psycopg.Connection[dict[str, Any]], tenant_id: str, *, webhook: str
    ) -> list[tuple[dict[str, Any], str]]:
        """The tenant's Telegram bindings whose webhook is in state `webhook`, with tokens."""
        rows = conn.execute(
            "SELECT id, external_id, credentials FROM channel_bindings WHERE tenant_id = %s"
            " AND channel = 'telegram' AND settings->>'webhook' = %s",
            (tenant_id, webhook),
        ).fetchall()
        return [(row, self._box.open(bytes(row["credentials"])).value) for row in rows]

    def _set_webhook(self, token: str, url: str, secret: str) -> str | None:
        """None when Telegram accepted; the reason when it refused for good."""
        params = {"url": url, "secret_token": secret, "allowed_updates": ["message"]}
        return self._call(token, "setWebhook", params)

    def _call(self, token: str, method: str, params: dict[str, Any]) -> str | None:
        """One Bot API call: None when accepted; the reason when refused for good.

        429, 5xx and network errors raise RetryableError (the lifecycle event is retried)."""
        request = urllib.request.Request(  # noqa: S310 (the configured Bot API base)
            f"{self._settings.telegram_api_base.rstrip('/')}/bot{token}/{method}",
            data=json.dumps(params).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self._settings.telegram_timeout_s
            ) as resp:
                answer: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as err:
            description = _description(err)
            if err.code == 429 or err.code >= 500:
                raise RetryableError(f"telegram {method} {err.code}: {description}") from None
            return f"{err.code} {description}"
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise RetryableError(f"telegram {method}: {type(err).__name__}") from None
        if answer.get("ok") is True:
            return None
        return str(answer.get("description") or "not ok")[:200]


def _description(err: urllib.error.HTTPError) -> str:
    try:
        return str(json.load(err).get("description", ""))[:200]
    except (ValueError, OSError, AttributeError):
        return ""
