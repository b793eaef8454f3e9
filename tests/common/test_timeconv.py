"""common.timeconv: epoch milliseconds, exact."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from common.timeconv import epoch_ms, now_ms, to_ms
from tests.fakes import DateClock


def test_to_ms_treats_naive_datetimes_as_utc_and_keeps_milliseconds() -> None:
    aware = datetime(2026, 11, 22, 12, 0, 0, 123999, tzinfo=UTC)
    assert to_ms(aware) == to_ms(aware.replace(tzinfo=None)) == 1_795_348_800_123


def test_epoch_ms_takes_a_decoded_datetime_or_a_raw_number() -> None:
    moment = datetime(2026, 11, 22, 12, 0, 0, 1000, tzinfo=UTC)
    assert epoch_ms(moment) == 1_795_348_800_001
    assert epoch_ms(1_795_348_800_001) == 1_795_348_800_001
    assert epoch_ms(1_795_348_800_001.9) == 1_795_348_800_001


def test_now_ms_reads_the_wall_clock_or_the_clock_given() -> None:
    before = time.time_ns() // 1_000_000
    assert before <= now_ms() <= time.time_ns() // 1_000_000
    moment = datetime(2026, 11, 22, 12, 0, 0, 123999, tzinfo=UTC)
    assert now_ms(DateClock(lambda: moment)) == 1_795_348_800_123
