"""The narrow interfaces the bridge needs from the kernel, so tests can pass fakes.

`common.kafka.EventProducer` satisfies `EventSink`; `common.directory.Directory`
satisfies `TenantLookup`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from common.directory import Tenant
from common.kafka import EventSink as EventSink


class TenantLookup(Protocol):
    def tenant(self, tenant_id: str) -> Tenant | None: ...


def epoch_ms(value: datetime | int | float) -> int:
    """A timestamp-millis field as the codec wants it (decode yields datetimes)."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)
