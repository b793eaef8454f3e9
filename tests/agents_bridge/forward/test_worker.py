"""Forwarder: the three produced events, failure mapping, and flow control per tenant."""

from __future__ import annotations

import asyncio

import pytest

from agents_bridge.forward.gateway_client import (
    GatewayRejected,
    GatewayReply,
    GatewayUnavailable,
)
from agents_bridge.forward.worker import PROVISIONING_WAIT_S, Forwarder, conversation_lane
from common.errors import InvalidEvent, KafkaUnavailable, RetryableError
from common.settings import Settings
from common.topics import Topic
from tests.agents_bridge.bridge_fakes import (
    GATEWAY_TOKEN,
    PERIOD_END,
    PERIOD_START,
    FakeDirectory,
    FakeGateway,
    admitted_event,
    tenant,
)
from tests.fakes import FakeProducer

NOW = 1_795_000_002_000


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def directory() -> FakeDirectory:
    d = FakeDirectory()
    d.add(tenant("t-1", gateway_url="http://gw-1:18789", gateway_agent_id="agent-t-1"))
    d.add(tenant("t-2", gateway_url="http://gw-2:18789"))
    return d


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


def forwarder(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway, per_tenant: int = 4
) -> Forwarder:
    settings = Settings(gateway_concurrency_per_tenant=per_tenant)
    return Forwarder(
        settings, producer=producer, directory=directory, gateway=gateway, now_ms=lambda: NOW
    )


async def test_produces_reply_session_event_and_usage(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway
) -> None:
    event = admitted_event(event_id="telegram:123456:9", conversation_id="42", text="hello")
    await forwarder(producer, directory, gateway).handle(event)

    [call] = gateway.calls
    assert call.target.url == "http://gw-1:18789"
    assert call.target.token.value == GATEWAY_TOKEN
    assert call.target.agent_id == "agent-t-1"
    assert call.user == "t-1:telegram:42"
    assert call.text == "hello"

    assert {s.key for s in producer.sent} == {"t-1"}
    assert producer.records(Topic.OUTBOUND) == [
        {
            "event_id": "reply:telegram:123456:9",
            "in_reply_to": "telegram:123456:9",
            "tenant_id": "t-1",
            "channel": "telegram",
            "conversation_id": "42",
            "text": "re: hello",
            "reply_route": {"chat_id": "42"},
            "agent_id": "agent-t-1",
            "gateway_response_id": "chatcmpl_1",
            "input_tokens": 11,
            "output_tokens": 7,
            "created_at": NOW,
        }
    ]
    assert producer.records(Topic.SESSION_EVENTS) == [
        {
            "event_id": "reply:telegram:123456:9",
            "kind": "message_out",
            "tenant_id": "t-1",
            "channel": "telegram",
            "conversation_id": "42",
            "role": "assistant",
            "text": "re: hello",
            "status": "replied",
            "in_reply_to": "telegram:123456:9",
            "input_tokens": 11,
            "output_tokens": 7,
            "model": "openclaw/agent-t-1",
            "occurred_at": NOW,
        }
    ]
    assert producer.records(Topic.USAGE) == [
        {
            "usage_id": "tok:telegram:123456:9",
            "kind": "tokens",
            "tenant_id": "t-1",
            "plan_id": "individual",
            "period_start": int(PERIOD_START.timestamp() * 1000),
            "period_end": int(PERIOD_END.timestamp() * 1000),
            "channel": "telegram",
            "messages": 0,
            "input_tokens": 11,
            "output_tokens": 7,
            "recorded_at": NOW,
        }
    ]


async def test_agent_id_falls_back_and_missing_usage_is_null(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway
) -> None:
    gateway.reply = GatewayReply("hi", None, None, None, None)
    await forwarder(producer, directory, gateway).handle(admitted_event(tenant_id="t-2"))
    assert gateway.calls[0].target.agent_id == "agent-t-2"
    [out] = producer.records(Topic.OUTBOUND)
    assert (out["gateway_response_id"], out["input_tokens"], out["output_tokens"]) == (None, 0, 0)
    [session] = producer.records(Topic.SESSION_EVENTS)
    assert (session["model"], session["input_tokens"], session["output_tokens"]) == (
        None,
        None,
        None,
    )


async def test_silent_agent_records_but_sends_nothing(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway
) -> None:
    gateway.reply = GatewayReply("  ", "id", None, 3, 0)
    await forwarder(producer, directory, gateway).handle(admitted_event())
    assert producer.records(Topic.OUTBOUND) == []
    assert len(producer.records(Topic.SESSION_EVENTS)) == 1
    assert len(producer.records(Topic.USAGE)) == 1


@pytest.mark.parametrize(
    ("tenant_id", "reason"),
    [("nobody", "unknown_tenant"), ("t-3", "no_gateway")],
)
async def test_tenant_without_gateway_is_invalid(
    producer: FakeProducer,
    directory: FakeDirectory,
    gateway: FakeGateway,
    tenant_id: str,
    reason: str,
) -> None:
    directory.add(tenant("t-3", gateway_url=None, status="suspended"))
    with pytest.raises(InvalidEvent, match=reason):
        await forwarder(producer, directory, gateway).handle(admitted_event(tenant_id=tenant_id))
    assert gateway.calls == []
    assert producer.sent == []


async def test_a_gateway_being_provisioned_is_waited_for_then_dead_lettered(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway
) -> None:
    directory.add(tenant("t-3", gateway_url=None, status="active"))
    event = admitted_event(tenant_id="t-3")  # metered 1.5 s before NOW
    with pytest.raises(RetryableError, match="gateway_not_ready") as info:
        await forwarder(producer, directory, gateway).handle(event)
    assert info.value.retry_after is not None and info.value.retry_after > 0
    late = Forwarder(
        Settings(),
        producer=producer,
        directory=directory,
        gateway=gateway,
        now_ms=lambda: NOW + int(PROVISIONING_WAIT_S * 1000),
    )
    with pytest.raises(InvalidEvent, match="no_gateway"):
        await late.handle(event)
    assert gateway.calls == [] and producer.sent == []


async def test_exhausted_gateway_becomes_a_dead_letter(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway
) -> None:
    gateway.errors = [GatewayUnavailable("gateway 502: upstream provider error")]
    with pytest.raises(InvalidEvent) as info:
        await forwarder(producer, directory, gateway).handle(admitted_event())
    assert info.value.reason == "gateway_unavailable: gateway 502: upstream provider error"
    assert producer.sent == []


async def test_rejection_is_a_dead_letter(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway
) -> None:
    gateway.errors = [GatewayRejected("gateway_rejected: 401 Unauthorized")]
    with pytest.raises(InvalidEvent, match="gateway_rejected"):
        await forwarder(producer, directory, gateway).handle(admitted_event())


async def test_produce_failure_is_retried_without_a_second_agent_turn(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway
) -> None:
    fwd = forwarder(producer, directory, gateway)
    producer.fail_next = 1
    with pytest.raises(KafkaUnavailable):
        await fwd.handle(admitted_event())
    await fwd.handle(admitted_event())  # the worker's retry
    assert len(gateway.calls) == 1
    # the retry publishes all three again; consumers deduplicate by event_id / usage_id
    assert {r["event_id"] for r in producer.records(Topic.OUTBOUND)} == {"reply:telegram:123456:1"}
    assert {r["usage_id"] for r in producer.records(Topic.USAGE)} == {"tok:telegram:123456:1"}
    await fwd.handle(admitted_event())  # a later redelivery asks again (at least once)
    assert len(gateway.calls) == 2


def test_lane_is_the_conversation() -> None:
    a = admitted_event(tenant_id="t-1", conversation_id="42")
    b = admitted_event(tenant_id="t-1", conversation_id="43")
    assert conversation_lane(a) == "t-1:telegram:42"
    assert conversation_lane(b) == "t-1:telegram:43"


async def test_hung_tenant_does_not_block_another(
    producer: FakeProducer, directory: FakeDirectory, gateway: FakeGateway
) -> None:
    """Tenant t-1 hangs on 3 conversations with 2 slots; t-2 is served meanwhile."""
    fwd = forwarder(producer, directory, gateway, per_tenant=2)
    for text in ("a1", "a2", "a3"):
        gateway.gates[text] = asyncio.Event()
    hung = [
        asyncio.create_task(fwd.handle(admitted_event(conversation_id=f"c{i}", text=f"a{i}")))
        for i in (1, 2, 3)
    ]
    await gateway.wait_for(lambda: len(gateway.calls) == 2)

    await asyncio.wait_for(fwd.handle(admitted_event(tenant_id="t-2", text="b1")), timeout=5)
    assert gateway.done == ["b1"]
    assert sorted(gateway.started()) == ["a1", "a2", "b1"]  # a3 waits for a t-1 slot

    gateway.gates["a1"].set()
    await gateway.wait_for(lambda: "a3" in gateway.started())
    gateway.gates["a2"].set()
    gateway.gates["a3"].set()
    await asyncio.wait_for(asyncio.gather(*hung), timeout=5)
    assert sorted(r["text"] for r in producer.records(Topic.OUTBOUND)) == [
        "re: a1",
        "re: a2",
        "re: a3",
        "re: b1",
    ]
