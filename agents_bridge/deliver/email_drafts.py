"""Approve-mode email replies, kept in PostgreSQL (`email_drafts`, migration 004).

`DraftStore.save` is idempotent by the reply's event id: a redelivered reply finds its
draft and returns the same id. A short-lived connection per save is enough: approve mode
is for low-volume, human-checked mail. An unreachable database raises (the consumer
retries the event); nothing is acknowledged before the draft is committed. A row the
database refuses (the tenant was deleted) is an `InvalidEvent`.
"""

from __future__ import annotations

import psycopg

from agents_bridge.deliver.email import OutgoingMail
from common.db import connect
from common.errors import InvalidEvent
from common.settings import Settings

_INSERT = """
INSERT INTO email_drafts (tenant_id, event_id, conversation_id, from_address, to_address,
                          subject, in_reply_to, thread_references, message_id, body)
VALUES (%(tenant_id)s, %(event_id)s, %(conversation_id)s, %(from_address)s, %(to_address)s,
        %(subject)s, %(in_reply_to)s, %(references)s, %(message_id)s, %(body)s)
ON CONFLICT (event_id) DO NOTHING
RETURNING id
"""
_EXISTING = "SELECT id FROM email_drafts WHERE event_id = %s"


class DraftStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def save(
        self, *, tenant_id: str, event_id: str, conversation_id: str, mail: OutgoingMail
    ) -> int:
        """Store the draft (once per event id); returns its id."""
        params = {
            "tenant_id": tenant_id,
            "event_id": event_id,
            "conversation_id": conversation_id,
            "from_address": mail.from_address,
            "to_address": mail.to_address,
            "subject": mail.subject,
            "in_reply_to": mail.in_reply_to,
            "references": mail.references,
            "message_id": mail.message_id,
            "body": mail.body,
        }
        conn = await connect(self._settings)
        try:
            row = await (await conn.execute(_INSERT, params)).fetchone()
            if row is None:
                row = await (await conn.execute(_EXISTING, (event_id,))).fetchone()
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
            raise InvalidEvent(f"email_draft_refused: {type(err).__name__}") from None
        finally:
            await conn.close()
        assert row is not None
        return int(str(row["id"]))


def draft_mail(row: dict[str, object]) -> OutgoingMail:
    """The mail a stored draft row sends."""
    return OutgoingMail(
        from_address=str(row["from_address"]),
        to_address=str(row["to_address"]),
        subject=str(row["subject"]),
        in_reply_to=str(row["in_reply_to"]) if row["in_reply_to"] else None,
        references=str(row["thread_references"] or ""),
        message_id=str(row["message_id"]),
        body=str(row["body"]),
    )
