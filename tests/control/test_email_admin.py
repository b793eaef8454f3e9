"""`openclaw-saas email bind|drafts|approve|discard` on a real PostgreSQL and an SMTP sink."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from agents_bridge.deliver.email import OutgoingMail
from agents_bridge.deliver.email_drafts import DraftStore
from common.directory import Directory
from common.errors import InvalidEvent
from common.settings import Settings
from control.cli import main
from control.email_admin import (
    EmailAdminError,
    approve_draft,
    bind_email,
    list_drafts,
)
from devstack.smtp_relay import RelaySink
from tests.pg_schemas import migrated_schema

DOMAIN = "agents.example.test"
MAIL = OutgoingMail(
    from_address=f"agent-acme@{DOMAIN}",
    to_address="alice@example.com",
    subject="Re: Opening hours",
    in_reply_to="<m1@example.com>",
    references="<m1@example.com>",
    message_id=f"<reply.1@{DOMAIN}>",
    body="We open at 9.",
)


@pytest.fixture
def sink() -> Iterator[RelaySink]:
    relay = RelaySink()
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture
def settings(database_url: str, sink: RelaySink) -> Iterator[Settings]:
    """A schema of its own with the migrations and two tenants; DATABASE_URL points into it."""
    with migrated_schema(database_url, "test_mail", [(None, "acme"), (None, "other")]) as url:
        yield Settings(database_url=url, mail_domain=DOMAIN, smtp_relay_port=sink.port)


def _tenant_id(settings: Settings, agent_id: str) -> str:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT id::text FROM tenants WHERE agent_id = %s", (agent_id,))
        return str((row.fetchone() or [""])[0])


async def test_bind_defaults_and_the_directory_routes_it(settings: Settings) -> None:
    out = bind_email(settings, "acme")
    assert out["address"] == f"agent-acme@{DOMAIN}"
    assert out["reply_mode"] == "auto"
    again = bind_email(settings, "acme", reply_mode="approve")
    assert (again["address"], again["reply_mode"]) == (f"agent-acme@{DOMAIN}", "approve")
    moved = bind_email(settings, "acme", address=f"Agent-Sales@{DOMAIN}")
    assert (moved["address"], moved["reply_mode"]) == (f"agent-sales@{DOMAIN}", "approve")
    directory = Directory(settings)
    await directory.reload()
    found = directory.by_binding("email", "sales")
    assert found is not None
    assert found[0].agent_id == "acme"
    assert found[1].settings == {"reply_mode": "approve"}
    assert directory.by_binding("email", "acme") is None


@pytest.mark.parametrize(
    ("tenant", "kwargs", "error"),
    [
        ("other", {"address": f"agent-acme@{DOMAIN}"}, "belongs to another tenant"),
        ("other", {"address": "agent-x@elsewhere.test"}, "must be agent-<id>@"),
        ("other", {"address": "bad id!"}, "the id must be"),
        ("other", {"reply_mode": "sometimes"}, "reply mode"),
        ("ghost", {}, "no tenant"),
    ],
)
def test_bind_refusals(settings: Settings, tenant: str, kwargs: dict[str, str], error: str) -> None:
    bind_email(settings, "acme")
    with pytest.raises(EmailAdminError, match=error):
        bind_email(settings, tenant, **kwargs)


async def test_drafts_are_stored_once_approved_once_and_sent_threaded(
    settings: Settings, sink: RelaySink
) -> None:
    tenant_id = _tenant_id(settings, "acme")
    store = DraftStore(settings)
    first = await store.save(
        tenant_id=tenant_id, event_id="reply:e1", conversation_id="<m1>", mail=MAIL
    )
    again = await store.save(
        tenant_id=tenant_id, event_id="reply:e1", conversation_id="<m1>", mail=MAIL
    )
    assert first == again  # a redelivered reply keeps its one draft
    [draft] = list_drafts(settings, tenant="acme")
    assert (draft["id"], draft["to_address"], draft["status"]) == (
        first,
        "alice@example.com",
        "pending",
    )

    sink.refuse_next("451 4.3.0 try later")
    with pytest.raises(EmailAdminError, match="451"):
        approve_draft(settings, first)
    assert list_drafts(settings)[0]["status"] == "pending"  # a refusal leaves it pending

    assert approve_draft(settings, first)["status"] == "sent"
    [sent] = sink.received
    assert sent.header("In-Reply-To") == "<m1@example.com>"
    assert sent.header("Message-ID") == MAIL.message_id
    assert sent.rcpt_tos == ("alice@example.com",)
    with pytest.raises(EmailAdminError, match="already sent"):
        approve_draft(settings, first)
    assert list_drafts(settings) == []
    assert [d["status"] for d in list_drafts(settings, status="all")] == ["sent"]


async def test_discard_and_cli(
    settings: Settings,
    sink: RelaySink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = DraftStore(settings)
    tenant_id = _tenant_id(settings, "acme")
    draft_id = await store.save(
        tenant_id=tenant_id, event_id="reply:e2", conversation_id="<m1>", mail=MAIL
    )
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    # main() would point the root logger at capsys's stream, which closes after this test.
    monkeypatch.setattr("control.cli.setup_logging", lambda level: None)
    assert main(["email", "drafts", "--tenant", "acme"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)] == [draft_id]
    assert main(["email", "discard", str(draft_id)]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": draft_id, "status": "discarded"}
    assert main(["email", "approve", str(draft_id)]) == 1
    assert "already discarded" in capsys.readouterr().err
    assert sink.received == []


async def test_a_draft_for_a_deleted_tenant_is_invalid(settings: Settings) -> None:
    with pytest.raises(InvalidEvent, match="email_draft_refused"):
        await DraftStore(settings).save(
            tenant_id=str(uuid.uuid4()), event_id="reply:e3", conversation_id="<m>", mail=MAIL
        )
