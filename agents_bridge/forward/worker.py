"""The forwarder process: the `messages.admitted` handler (`Forwarder`) and its consumer;
the flow and its failure rules are told in `agents_bridge.forward`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from agents_bridge.forward.gateway_client import (
    GatewayReply,
    GatewayTarget,
    GatewayUnavailable,
    session_user,
)
from agents_bridge.forward.typing_indicator import NoIndicator, WorkIndicator
from agents_bridge.ports import EventSink, TenantLookup
from common import timeconv
from common.consumer import Event, KafkaWorker
from common.errors import InvalidEvent, RetryableError
from common.kafka import EventProducer
from common.records import value_of
from common.settings import Settings
from common.tenant_status import IN_SERVICE
from common.timeconv import epoch_ms
from common.topics import Topic
from schemas import records
from schemas.outgoing import OutboundReplyOut, SessionEventOut, UsageRecordOut
from schemas.types import AdmittedMessage, InboundMessage

log = logging.getLogger(__name__)

STAGE = "forwarder"
GROUP = "agents_bridge.forwarder"  # the consumer group (committed offsets): keep the name
_KEEP_ANSWERS = 1024
#: How long a message waits for its tenant's gateway to be provisioned (a cold gateway
#: container takes ~20 s to get ready, minutes on a busy host).
PROVISIONING_WAIT_S = 900.0


class Gateway(Protocol):
    """What the forwarder needs from `GatewayClient`."""

    async def complete(self, target: GatewayTarget, *, user: str, text: str) -> GatewayReply: ...


def conversation_lane(event: Event) -> str:
    """One lane per conversation: its gateway turns run one at a time, in order."""
    msg = value_of(event, AdmittedMessage)["message"]
    return f"{msg['tenant_id']}:{msg['channel']}:{msg['conversation_id']}"


class Forwarder:
    """The `messages.admitted` handler."""

    def __init__(
        self,
        settings: Settings,
        *,
        producer: EventSink,
        directory: TenantLookup,
        gateway: Gateway,
        now_ms: Callable[[], int] = timeconv.now_ms,
        indicator: WorkIndicator | None = None,
    ) -> None:
        self._indicator = indicator or NoIndicator()
        self._per_tenant = settings.gateway_concurrency_per_tenant
        self._producer = producer
        self._directory = directory
        self._gateway = gateway
        self._now_ms = now_ms
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._answers: OrderedDict[str, tuple[str, GatewayReply]] = OrderedDict()

    async def handle(self, event: Event) -> None:
        admitted = value_of(event, AdmittedMessage)
        msg = admitted["message"]
        event_id = msg["event_id"]
        kept = self._answers.get(event_id)
        if kept is None:
            target = self._target(msg["tenant_id"], admitted.get("metered_at"))
            async with self._indicator.working(msg):
                reply = await self._ask(target, msg)
            kept = (target.agent_id, reply)
            self._keep(event_id, kept)
        agent_id, reply = kept
        await self._publish(admitted, agent_id, reply)
        self._answers.pop(event_id, None)

    def _target(self, tenant_id: str, metered_at: Any) -> GatewayTarget:
        tenant = self._directory.tenant(tenant_id)
        if tenant is None:
            raise InvalidEvent("unknown_tenant")
        if not tenant.gateway_url or not tenant.gateway_token:
            waited_s = (self._now_ms() - _metered_ms(metered_at)) / 1000
            if tenant.status in IN_SERVICE and waited_s < PROVISIONING_WAIT_S:
                raise RetryableError("gateway_not_ready: being provisioned", retry_after=5.0)
            raise InvalidEvent("no_gateway: tenant has no gateway URL or token")
        return GatewayTarget(
            url=tenant.gateway_url,
            token=tenant.gateway_token,
            agent_id=tenant.gateway_agent_id or tenant.agent_id,
        )

    async def _ask(self, target: GatewayTarget, msg: InboundMessage) -> GatewayReply:
        tenant_id = msg["tenant_id"]
        slots = self._slots.get(tenant_id)
        if slots is None:
            slots = self._slots[tenant_id] = asyncio.Semaphore(self._per_tenant)
        user = session_user(tenant_id, msg["channel"], msg["conversation_id"])
        async with slots:
            try:
                return await self._gateway.complete(target, user=user, text=msg["text"])
            except GatewayUnavailable as err:
                raise InvalidEvent(f"gateway_unavailable: {err.reason}") from err

    def _keep(self, event_id: str, kept: tuple[str, GatewayReply]) -> None:
        self._answers[event_id] = kept
        while len(self._answers) > _KEEP_ANSWERS:
            self._answers.popitem(last=False)

    async def _publish(self, admitted: AdmittedMessage, agent_id: str, reply: GatewayReply) -> None:
        msg = admitted["message"]
        tenant_id = msg["tenant_id"]
        now = self._now_ms()
        sends = [
            self._producer.send(Topic.SESSION_EVENTS, tenant_id, session_event(msg, reply, now)),
            self._producer.send(Topic.USAGE, tenant_id, usage_record(admitted, reply, now)),
        ]
        if reply.text.strip():
            record = outbound_reply(msg, agent_id, reply, now)
            sends.insert(0, self._producer.send(Topic.OUTBOUND, tenant_id, record))
        else:  # the agent chose to stay silent; nothing to deliver
            log.info("%s: empty reply to %s, nothing to deliver", STAGE, msg["event_id"])
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def outbound_reply(
    msg: InboundMessage, agent_id: str, reply: GatewayReply, now: int
) -> OutboundReplyOut:
    return records.reply(
        msg,
        event_id="reply:" + msg["event_id"],
        text=reply.text,
        agent_id=agent_id,
        gateway_response_id=reply.response_id,
        input_tokens=reply.input_tokens or 0,
        output_tokens=reply.output_tokens or 0,
        created_at=now,
    )


def session_event(msg: InboundMessage, reply: GatewayReply, now: int) -> SessionEventOut:
    return records.message_out(
        msg,
        text=reply.text,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        model=reply.model,
        occurred_at=now,
    )


def usage_record(admitted: AdmittedMessage, reply: GatewayReply, now: int) -> UsageRecordOut:
    return records.token_usage(
        admitted["message"],
        plan_id=admitted["plan_id"],
        period_start=epoch_ms(admitted["period_start"]),
        period_end=epoch_ms(admitted["period_end"]),
        input_tokens=reply.input_tokens or 0,
        output_tokens=reply.output_tokens or 0,
        recorded_at=now,
    )


def build_worker(settings: Settings, forwarder: Forwarder, producer: EventProducer) -> KafkaWorker:
    """The forwarder's consumer: lanes per conversation, in-flight well above one tenant's cap."""
    return KafkaWorker(
        settings,
        stage=STAGE,
        group=GROUP,
        topics=[Topic.ADMITTED],
        handler=forwarder.handle,
        producer=producer,
        lane_of=conversation_lane,
        # Queued events count too: room for a hung tenant's backlog while others flow.
        max_in_flight=max(10_000, 16 * settings.gateway_concurrency_per_tenant),
    )


def _metered_ms(value: Any) -> int:
    """`metered_at` in epoch ms; 0 when absent or not a timestamp."""
    return epoch_ms(value) if isinstance(value, datetime | int | float) else 0
