"""What every metering path shares (`MeterCore`, the base of `streams.metering.handler.Metering`):
its collaborators, the one lock, the state cache, tenant lookups and decision counts.

The state cache: the parsed states of recently seen tenants are kept in memory
(`STATE_CACHE`, least recently used dropped first). Every write of the table goes through
here (`_put`), and `_settle` waits until the writes so far are durable (acknowledged by the
broker, see `streams.metering.faust_private.ChangelogAcks`) before any output is sent. The
cache is dropped whenever partitions move (`forget`: Faust then rebuilds the table from its
changelog).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from common.consumer import Event
from common.directory import Tenant
from common.retry import Clock, SystemClock
from common.telemetry import QUOTA_DECISIONS
from streams.boundary import Producer
from streams.metering.held_store import HeldQueue
from streams.metering.state import MeterState

#: Reload the directory on an unknown tenant (a tenant created a moment ago) at most this often.
REFRESH_INTERVAL_S = 10.0
#: Parsed tenant states kept in memory (least recently used dropped first).
STATE_CACHE = 4096

#: Makes an event the one the table's writes belong to (its partition); see `agent.register`.
Scope = Callable[[Event], AbstractContextManager[Any]]


class Tenants(Protocol):
    def tenant(self, tenant_id: str) -> Tenant | None: ...


class StateTable(Protocol):
    """The `meter_state` faust Table, or a dict in tests."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...


def _no_scope(_: Event) -> AbstractContextManager[None]:
    return nullcontext()


class MeterCore:
    """The state and collaborators the handlers share; see the module docstring."""

    def __init__(
        self,
        tenants: Tenants,
        table: StateTable | MutableMapping[str, Any],
        producer: Producer,
        held: HeldQueue,
        *,
        refresh: Callable[[], Awaitable[None]] | None = None,
        clock: Clock | None = None,
        durable: Callable[[], Awaitable[None]] | None = None,
        scope: Scope = _no_scope,
        cache_size: int = STATE_CACHE,
        dump: Callable[[MeterState], Any] = MeterState.to_json,
        load: Callable[[Any], MeterState] = MeterState.from_json,
    ) -> None:
        self._tenants = tenants
        self._table = table
        self._producer = producer
        self._held = held
        self._refresh = refresh
        self._clock = clock or SystemClock()  # the decisions' dates, the refresh interval
        self._durable = durable  # waits until the table's changelog writes are acknowledged
        self._scope = scope
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()  # one writer of the table at a time
        self._unflushed = False  # table writes not yet known durable
        self._cache: OrderedDict[str, MeterState] = OrderedDict()
        self._cache_size = cache_size
        self._decisions: dict[tuple[str, str], Any] = {}  # metric children by labels
        self._dump = dump  # a state as the table stores it
        self._load = load

    # -- state --------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop the parsed states (the table may have changed: partitions moved)."""
        self._cache.clear()

    def _forget(self, tenant_ids: Iterable[str]) -> None:
        for tenant_id in tenant_ids:
            self._cache.pop(tenant_id, None)

    def _state(self, tenant_id: str) -> MeterState:
        state = self._cache.get(tenant_id)
        if state is not None:
            self._cache.move_to_end(tenant_id)
            return state
        state = self._load(self._table.get(tenant_id))
        self._remember(tenant_id, state)
        return state

    def _remember(self, tenant_id: str, state: MeterState) -> None:
        if self._cache_size <= 0:
            return
        self._cache[tenant_id] = state
        self._cache.move_to_end(tenant_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _put(self, tenant_id: str, state: MeterState) -> None:
        """Write the tenant's state to the table (not yet durable: see `_settle`)."""
        self._cache.pop(tenant_id, None)
        self._unflushed = True
        self._table[tenant_id] = self._dump(state)
        self._remember(tenant_id, state)

    async def _settle(self) -> None:
        """Wait until every table write so far is durable (before any output)."""
        if self._unflushed:
            if self._durable is not None:
                await self._durable()
            self._unflushed = False

    async def _write(self, tenant_id: str, old: MeterState, new: MeterState) -> None:
        """Store the tenant's new state and wait until it is durable (before any output)."""
        if new != old:
            self._put(tenant_id, new)
        await self._settle()

    async def _tenant(self, tenant_id: str) -> Tenant | None:
        tenant = self._tenants.tenant(tenant_id)
        stale = self._clock.monotonic() - self._refreshed_at >= REFRESH_INTERVAL_S
        if tenant is None and self._refresh is not None and stale:
            await self._refresh()  # a failure here is retried, not dead-lettered
            self._refreshed_at = self._clock.monotonic()
            tenant = self._tenants.tenant(tenant_id)
        return tenant

    def _count(self, plan: str, outcome: str, n: int = 1) -> None:
        child = self._decisions.get((plan, outcome))
        if child is None:
            child = self._decisions[(plan, outcome)] = QUOTA_DECISIONS.labels(plan, outcome)
        child.inc(n)
