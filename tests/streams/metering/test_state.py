"""The meter state's storage form: the table's compact JSON bytes and the short verdicts."""

from __future__ import annotations

import json
from dataclasses import replace

from streams.metering.state import MeterState, Outcome, Verdict, state_bytes, state_from_bytes


def test_the_table_value_is_compact_json_and_reads_back() -> None:
    state = MeterState(period_start_ms=5, count=2, last_offset={1: 7})
    raw = state_bytes(state)
    assert raw.startswith(b'{"period_start":5,"count":2,')
    assert state_from_bytes(raw) == state
    assert state_from_bytes(None) == MeterState()
    assert state_from_bytes(state.to_json()) == state  # what the json serializer returned


def test_recent_verdicts_of_two_periods_survive_the_short_form() -> None:
    def verdict(i: int, start: int, plan: str = "business") -> Verdict:
        return Verdict(f"e{i}", Outcome.ADMITTED, i + 1, plan, start, start + 10**9, start + i)

    older = [verdict(i, 1_000_000) for i in range(3)]
    held = replace(verdict(3, 1_000_000), outcome=Outcome.HELD, count_in_period=0, notice=True)
    newer = [verdict(i, 2_000_000, "enterprise") for i in range(4, 6)]
    state = MeterState(period_start_ms=2_000_000, count=2, recent=(*older, held, *newer))
    wire = json.loads(json.dumps(state.to_json()))
    assert wire["recent"]["period"] == ["enterprise", 2_000_000, 2_000_000 + 10**9]
    assert [len(v) for v in wire["recent"]["verdicts"]] == [7, 7, 7, 9, 4, 4]
    assert MeterState.from_json(wire) == state


def test_a_state_written_before_the_short_form_still_loads() -> None:
    whole = ["e1", "admitted", 1, "business", 1_000_000, 2_000_000, 1_000_050]
    with_alert = ["e2", "held", 0, "business", 1_000_000, 2_000_000, 1_000_060, [], True]
    state = MeterState.from_json({"period_start": 1_000_000, "recent": [whole, with_alert]})
    assert [v.event_id for v in state.recent] == ["e1", "e2"]
    assert state.recent[0].metered_at_ms == 1_000_050
    assert state.recent[1].notice is True and state.recent[1].outcome is Outcome.HELD
    assert MeterState.from_json(json.loads(json.dumps(state.to_json()))) == state
