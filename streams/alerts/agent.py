"""Alert mail agent: consumes quota.alerts → one email per alert to the tenant owner
(`streams.alerts.mailer`: recorded in `quota_alerts`, sent through the SMTP relay once).

A relay that is down is retried with backoff (this agent waits; metering does not); a
permanent refusal is logged and counted (quota.alerts has no dead-letter topic).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import AgentT

from common.consumer import Event
from common.failure import breaker_for
from common.settings import Settings
from common.topics import Topic
from schemas.types import QuotaAlert
from streams.alerts.mailer import AlertMailer
from streams.boundary import Boundary, OnTrip, Producer
from streams.topics import decode_as, source_topic, to_event

STAGE = "alert-mail"


def register(
    app: faust.App,
    settings: Settings,
    *,
    mailer: AlertMailer,
    producer: Producer,
    boundary: Boundary | None = None,
    on_trip: OnTrip | None = None,
) -> AgentT[Any]:
    """Add the alert mail agent to `app`; returns the agent."""
    guard = boundary or Boundary(STAGE, producer, breaker=breaker_for(settings), on_trip=on_trip)

    async def handle(event: Event) -> None:
        await mailer.deliver(decode_as(event, QuotaAlert))

    async def alert_mail(stream: Any) -> None:
        manual = stream.noack()
        async for record in manual.events():
            message = record.message
            event = to_event(
                Topic.ALERTS, message.partition, message.offset, record.key, record.value
            )
            await guard.process(event, handle)
            await manual.ack(record)

    return app.agent(source_topic(app, settings, Topic.ALERTS), name=STAGE, concurrency=1)(
        alert_mail
    )
