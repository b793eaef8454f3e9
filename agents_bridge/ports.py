"""The narrow interfaces the bridge needs from the kernel, so tests can pass fakes.

`common.kafka.EventProducer` satisfies `EventSink`; `common.directory.Directory`
satisfies `TenantLookup`.
"""

from __future__ import annotations

from typing import Protocol

from common.directory import Tenant
from common.kafka import EventSink as EventSink


class TenantLookup(Protocol):
    def tenant(self, tenant_id: str) -> Tenant | None: ...
