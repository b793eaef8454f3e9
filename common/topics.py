"""Logical topic names. Code never spells a topic as a string literal: it uses `Topic`.

`schemas/topics.yaml` is the contract; `tests/common/test_topics.py` checks both agree.
"""

from __future__ import annotations

from enum import StrEnum

from schemas import codec


class Topic(StrEnum):
    INBOUND = "messages.inbound"
    ADMITTED = "messages.admitted"
    HELD = "messages.held"
    OUTBOUND = "messages.outbound"
    SESSION_EVENTS = "session.events"
    USAGE = "usage.records"
    ALERTS = "quota.alerts"
    LIFECYCLE = "tenants.lifecycle"
    INBOUND_DLQ = "messages.inbound.dlq"
    ADMITTED_DLQ = "messages.admitted.dlq"
    HELD_DLQ = "messages.held.dlq"
    OUTBOUND_DLQ = "messages.outbound.dlq"
    SESSION_EVENTS_DLQ = "session.events.dlq"
    LIFECYCLE_DLQ = "tenants.lifecycle.dlq"
    CHANNEL_STATUSES = "channel.statuses"
    CHANNEL_STATUSES_DLQ = "channel.statuses.dlq"
    RELEASES = "quota.releases"
    USAGE_DLQ = "usage.records.dlq"
    ALERTS_DLQ = "quota.alerts.dlq"
    RELEASES_DLQ = "quota.releases.dlq"

    @property
    def schema(self) -> str:
        """The value schema's name (file stem) from the manifest."""
        return str(codec.manifest()["topics"][self.value]["schema"])

    @property
    def dlq(self) -> Topic | None:
        """This topic's dead-letter topic, if it has one."""
        name = codec.manifest()["topics"][self.value]["dlq"]
        return Topic(name) if name else None
