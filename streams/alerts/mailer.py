"""Quota alerts by email to the tenant owner, through the SMTP relay.

`AlertMailer.deliver(alert)` records the alert in PostgreSQL `quota_alerts` (one row per
`alert_id`), finds the owner's address (`tenants.user_id` → `users.email`), sends the mail
through `SMTP_RELAY_HOST`:`SMTP_RELAY_PORT` (stdlib `smtplib` in a worker thread) and then
stamps `emailed_at`. An alert already stamped is not mailed again, so replays of
quota.alerts send nothing; a crash between the relay's 250 and the stamp sends it once more,
with the same `Message-ID` (derived from the alert id), which mail clients collapse.

Errors: a 5xx from the relay (recipient or sender refused) or a tenant without an owner
address is `InvalidEvent`; a 4xx, a refused connection or a timeout is retryable.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from common.errors import InvalidEvent, RetryableError
from common.settings import Settings

SMTP_TIMEOUT_S = 30.0
SUBJECTS = {
    "soft": "You've used 80% of your messages this period",
    "hard": "You've hit your message limit",
}


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """Sends through the relay with `smtplib`, in a thread (the loop never blocks)."""

    def __init__(self, host: str, port: int, *, timeout: float = SMTP_TIMEOUT_S) -> None:
        self._host, self._port, self._timeout = host, port, timeout

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as err:
            codes = [code for code, _ in err.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise InvalidEvent(f"relay refused the recipient: {codes}") from err
            raise RetryableError(f"relay deferred the recipient: {codes}") from err
        except smtplib.SMTPResponseException as err:
            if err.smtp_code >= 500:
                raise InvalidEvent(f"relay refused the mail: {err.smtp_code}") from err
            raise RetryableError(f"relay deferred the mail: {err.smtp_code}") from err
        except (OSError, smtplib.SMTPException) as err:
            raise RetryableError(f"relay unavailable: {type(err).__name__}: {err}") from err


class AlertLedger(Protocol):
    async def owner_to_mail(self, alert: Mapping[str, Any]) -> str | None:
        """Record the alert; the owner's address if it still needs its email."""
        ...

    async def mark_emailed(self, alert_id: str, to: str) -> None: ...


_RECORD = """
INSERT INTO quota_alerts (alert_id, tenant_id, plan_id, level, used, msg_limit,
                          period_start, message, created_at)
VALUES (%(alert_id)s, %(tenant_id)s, %(plan_id)s, %(level)s, %(used)s, %(limit)s,
        %(period_start)s, %(message)s, %(created_at)s)
ON CONFLICT (alert_id) DO NOTHING
"""
_OWNER = """
SELECT a.emailed_at, u.email FROM quota_alerts a
JOIN tenants t ON t.id = a.tenant_id
LEFT JOIN users u ON u.id = t.user_id
WHERE a.alert_id = %s
"""
_MARK = "UPDATE quota_alerts SET emailed_at = NOW(), emailed_to = %s WHERE alert_id = %s"


class PgAlertLedger:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def owner_to_mail(self, alert: Mapping[str, Any]) -> str | None:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(_RECORD, dict(alert))
                row = await (await conn.execute(_OWNER, (alert["alert_id"],))).fetchone()
        except (psycopg.IntegrityError, psycopg.DataError) as err:
            raise InvalidEvent(f"rejected by PostgreSQL: {err.sqlstate}: {err}") from err
        if row is None or row[0] is not None:
            return None
        if not row[1]:
            raise InvalidEvent("tenant has no owner email")
        return str(row[1])

    async def mark_emailed(self, alert_id: str, to: str) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(_MARK, (to, alert_id))


def alert_email(alert: Mapping[str, Any], to: str, settings: Settings) -> EmailMessage:
    """The owner's email for one QuotaAlert."""
    domain = settings.mail_domain
    message = EmailMessage()
    message["From"] = formataddr(("OpenClaw", f"notifications@{domain}"))
    message["To"] = to
    message["Subject"] = SUBJECTS.get(str(alert["level"]), "Your message quota")
    digest = hashlib.sha256(str(alert["alert_id"]).encode()).hexdigest()[:32]
    message["Message-ID"] = f"<quota-{digest}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-OpenClaw-Alert-Id"] = str(alert["alert_id"])
    message.set_content(
        f"{alert['message']}\n\n"
        f"Messages used this period: {int(alert['used']):,} of {int(alert['limit']):,}.\n"
    )
    return message


class AlertMailer:
    """Handles one QuotaAlert: record it, mail the owner once."""

    def __init__(self, settings: Settings, ledger: AlertLedger, mailer: Mailer) -> None:
        self._settings = settings
        self._ledger = ledger
        self._mailer = mailer

    async def deliver(self, alert: Mapping[str, Any]) -> bool:
        """True when an email went out now."""
        to = await self._ledger.owner_to_mail(alert)
        if to is None:
            return False
        await self._mailer.send(alert_email(alert, to, self._settings))
        await self._ledger.mark_emailed(str(alert["alert_id"]), to)
        return True
