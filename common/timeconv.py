"""Epoch milliseconds: the unit of every timestamp-millis field on the topics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from common.retry import Clock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms(clock: Clock | None = None) -> int:
    """Now in epoch milliseconds: the system's wall clock, or `clock.now()` when given."""
    return time.time_ns() // 1_000_000 if clock is None else to_ms(clock.now())


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds (what timestamp-millis fields carry); naive datetimes are UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def epoch_ms(value: datetime | int | float) -> int:
    """A timestamp-millis field in epoch ms, decoded (a datetime) or raw (a number)."""
    return to_ms(value) if isinstance(value, datetime) else int(value)
