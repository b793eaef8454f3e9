"""WhatsApp delivery against the Graph API stand-in: split, template fallback, backoff, DLQ."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from agents_bridge.deliver.log import FAILED, SENT
from agents_bridge.deliver.telegram import TelegramDelivery
from agents_bridge.deliver.telegram_api import TelegramSender
from agents_bridge.deliver.whatsapp import WhatsAppDelivery, template_text
from agents_bridge.deliver.whatsapp_api import GraphClient, RateLimited
from agents_bridge.deliver.worker import Delivery
from common.consumer import Event
from common.directory import Binding, Tenant
from common.errors import InvalidEvent
from common.retry import RetryPolicy
from common.settings import Secret, Settings
from common.topics import Topic
from devstack.graph_api import GraphApiStandIn
from tests.agents_bridge.bridge_fakes import (
    FakeDeliveryLog,
    FakeDirectory,
    outbound_event,
    tenant,
)
from tests.fakes import FakeClock, FakeProducer

PNID, TOKEN, USER = "106540352242922", "EAA-test-token", "16505551234"
EVENT_ID = f"reply:whatsapp:{PNID}:wamid.IN"
TWO_CHUNKS = "A" * 3000 + "\n\n" + "B" * 3000


def whatsapp_tenant(tenant_id: str = "t-1", *, template: bool = True, token: str = TOKEN) -> Tenant:
    options = {"template": {"name": "reply_later", "language": "en_US", "text_param": True}}
    binding = Binding(
        tenant_id=tenant_id,
        channel="whatsapp",
        external_id=PNID,
        secret_hash=hashlib.sha256(b"verify").digest(),
        credentials={"access_token": Secret(token), "app_secret": Secret("s")},
        settings=options if template else {},
    )
    return dataclasses.replace(tenant(tenant_id, bot_token=None), bindings=(binding,))


def outbound(
    text: str = "the answer",
    *,
    tenant_id: str = "t-1",
    reply_route: dict[str, str] | None = None,
) -> Event:
    route = {"phone_number_id": PNID, "to": USER, "message_id": "wamid.IN"}
    return outbound_event(
        text,
        event_id=EVENT_ID,
        tenant_id=tenant_id,
        channel="whatsapp",
        conversation_id=USER,
        reply_route=route if reply_route is None else reply_route,
    )


@dataclass
class Rig:
    api: GraphApiStandIn
    delivery: Delivery
    clock: FakeClock
    log: FakeDeliveryLog
    statuses: FakeProducer
    directory: FakeDirectory
    client: GraphClient


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    api = GraphApiStandIn()
    api.register_number(PNID, TOKEN)
    api.register_template("reply_later", "en_US", params=1)
    await api.start()
    directory = FakeDirectory()
    directory.add(whatsapp_tenant("t-1"))
    directory.add(whatsapp_tenant("t-notemplate", template=False))
    directory.add(whatsapp_tenant("t-badtoken", token="EAA-wrong"))
    directory.add(tenant("t-none", bot_token=None))
    clock = FakeClock()
    settings = Settings(whatsapp_graph_base=api.base_url, sender_attempts=3)
    policy = RetryPolicy(attempts=settings.sender_attempts, clock=clock, rand=lambda: 0.5)
    log, statuses = FakeDeliveryLog(), FakeProducer()
    async with aiohttp.ClientSession() as http:
        whatsapp_client = GraphClient(http, settings)
        whatsapp = WhatsAppDelivery(
            directory=directory,
            client=whatsapp_client,
            policy=policy,
            deliveries=log,
            statuses=statuses,
        )
        telegram = TelegramDelivery(
            directory=directory,
            sender=TelegramSender(http, settings),
            policy=RetryPolicy(attempts=settings.sender_attempts),
        )
        delivery = Delivery({"telegram": telegram, "whatsapp": whatsapp})
        yield Rig(api, delivery, clock, log, statuses, directory, whatsapp_client)
    await api.stop()


async def test_reply_goes_to_the_right_number_and_user(rig: Rig) -> None:
    await rig.delivery.handle(outbound("the answer"))
    [call] = rig.api.messages()
    assert (call.phone_number_id, call.to, call.text) == (PNID, USER, "the answer")
    assert call.body["messaging_product"] == "whatsapp"
    assert rig.log.rows[(EVENT_ID, 0)].provider_message_id == call.wamid
    assert rig.log.rows[(EVENT_ID, 0)].status == SENT
    [accepted] = rig.statuses.records(Topic.CHANNEL_STATUSES)
    assert accepted["message_id"] == call.wamid
    assert (accepted["status"], accepted["kind"], accepted["chunk"]) == ("accepted", "text", 0)
    assert accepted["reply_event_id"] == EVENT_ID


async def test_long_reply_is_split_at_4096(rig: Rig) -> None:
    await rig.delivery.handle(outbound(TWO_CHUNKS))
    texts = [c.text for c in rig.api.messages(PNID, USER)]
    assert [t[0] for t in texts] == ["A", "B"]
    assert all(len(t) <= 4096 for t in texts)
    assert sorted(c for _e, c in rig.log.rows) == [0, 1]


async def test_window_closed_falls_back_to_the_template(rig: Rig) -> None:
    rig.api.close_window(PNID, USER)
    await rig.delivery.handle(outbound("line one\n\nline two"))
    [call] = rig.api.messages()
    assert call.type == "template"
    template = call.body["template"]
    assert template["name"] == "reply_later"
    assert template["language"] == {"code": "en_US"}
    assert template["components"][0]["parameters"][0]["text"] == "line one line two"
    [accepted] = rig.statuses.records(Topic.CHANNEL_STATUSES)
    assert accepted["kind"] == "template"
    assert [f.error_code for f in rig.api.failures] == [131047]


async def test_window_closed_without_a_template_dead_letters(rig: Rig) -> None:
    rig.api.close_window(PNID, USER)
    with pytest.raises(InvalidEvent, match="whatsapp_window_closed"):
        await rig.delivery.handle(outbound(tenant_id="t-notemplate"))
    assert rig.log.rows[(EVENT_ID, 0)].status == FAILED


async def test_rate_limit_backs_off_then_sends(rig: Rig) -> None:
    rig.api.fail_next(2, code=131056)
    await rig.delivery.handle(outbound("hi"))
    assert len(rig.api.messages()) == 1
    assert rig.clock.sleeps == [6.0, 6.0]


async def test_rate_limit_that_persists_stays_retryable(rig: Rig) -> None:
    """Not dead-lettered: the worker keeps backing off; nothing is sent twice later."""
    rig.api.fail_next(3, code=130429)
    with pytest.raises(RateLimited) as err:
        await rig.delivery.handle(outbound(TWO_CHUNKS))
    assert err.value.retry_after == 2.0
    assert not rig.delivery.delivered(EVENT_ID)
    await rig.delivery.handle(outbound(TWO_CHUNKS))
    assert len(rig.api.messages()) == 2


async def test_transient_errors_dead_letter_after_the_attempts(rig: Rig) -> None:
    rig.api.fail_next(3, code=131000)
    with pytest.raises(InvalidEvent, match="whatsapp_unavailable: whatsapp_131000"):
        await rig.delivery.handle(outbound())
    assert len(rig.api.failures) == 3


async def test_expired_token_dead_letters_at_once(rig: Rig) -> None:
    with pytest.raises(InvalidEvent, match="whatsapp_190") as err:
        await rig.delivery.handle(outbound(tenant_id="t-badtoken"))
    assert "EAA-wrong" not in err.value.reason
    assert len(rig.api.failures) == 1


async def test_a_replayed_reply_sends_only_the_chunks_not_sent(rig: Rig) -> None:
    rig.api.fail_next(1, code=100, after=1)  # the second chunk is refused for good
    with pytest.raises(InvalidEvent, match="whatsapp_100"):
        await rig.delivery.handle(outbound(TWO_CHUNKS))
    assert [(c, r.status) for (_e, c), r in sorted(rig.log.rows.items())] == [
        (0, SENT),
        (1, FAILED),
    ]
    await rig.delivery.handle(outbound(TWO_CHUNKS))  # replayed from the dead-letter topic
    assert [c.text[0] for c in rig.api.messages()] == ["A", "B"]


async def test_a_new_process_resumes_from_the_delivery_log(rig: Rig) -> None:
    rig.api.fail_next(1, code=100, after=1)
    with pytest.raises(InvalidEvent):
        await rig.delivery.handle(outbound(TWO_CHUNKS))
    fresh = WhatsAppDelivery(
        directory=rig.directory,
        client=rig.client,
        policy=RetryPolicy(attempts=1, clock=rig.clock),
        deliveries=rig.log,
    )
    await fresh.deliver(outbound(TWO_CHUNKS).value)
    assert [c.text[0] for c in rig.api.messages()] == ["A", "B"]


async def test_a_redelivered_reply_is_not_sent_twice(rig: Rig) -> None:
    await rig.delivery.handle(outbound())
    await rig.delivery.handle(outbound())
    assert len(rig.api.messages()) == 1


async def test_unknown_tenant_and_missing_binding(rig: Rig) -> None:
    with pytest.raises(InvalidEvent, match="unknown_tenant"):
        await rig.delivery.handle(outbound(tenant_id="t-ghost"))
    with pytest.raises(InvalidEvent, match="no_whatsapp_binding"):
        await rig.delivery.handle(outbound(tenant_id="t-none"))


async def test_email_has_no_deliverer_yet_in_this_rig(rig: Rig) -> None:
    event = outbound_event("x", channel="email", conversation_id="<a@b>")
    with pytest.raises(InvalidEvent, match="channel_not_supported_yet"):
        await rig.delivery.handle(event)


def test_template_text_is_one_line_and_bounded() -> None:
    assert template_text("a\n\nb\tc     d") == "a b c d"
    long = template_text("word " * 1000, limit=50)
    assert len(long) <= 50 and long.endswith("…") and "  " not in long
