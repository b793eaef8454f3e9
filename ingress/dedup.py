"""A bounded, expiring set of the updates this process already acknowledged.

Telegram redelivers an update when our answer was lost or late; remembering the
(bot_id, update_id) pairs we acknowledged lets us answer 200 again without producing a
second event. It is an optimisation, not the guarantee: downstream stages are idempotent
on `event_id`, so a duplicate that slips past (another replica, a restart) is harmless.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

UpdateKey = tuple[str, int]

# Telegram keeps undelivered updates for at most 24 hours.
DEFAULT_TTL_S = 24 * 3600.0
DEFAULT_MAX_ENTRIES = 100_000


class RecentUpdates:
    """`key in recent` / `recent.add(key)`; oldest entries leave first (TTL, then size)."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("max_entries must be >= 1 and ttl_s > 0")
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock
        self._expiry: OrderedDict[UpdateKey, float] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple):
            return False
        expires = self._expiry.get(key)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._expiry[key]
            return False
        return True

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, key: UpdateKey) -> None:
        """Remember `key` for the TTL (refreshing it if already present)."""
        now = self._clock()
        self._expiry.pop(key, None)
        self._expiry[key] = now + self._ttl
        # One TTL for all, so insertion order is expiry order: prune from the front.
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now and len(self._expiry) <= self._max:
                break
            del self._expiry[oldest]
