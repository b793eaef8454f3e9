"""decide(): limits, periods, and exact counting when events are replayed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidEvent
from common.timeconv import to_ms
from streams.metering.decide import InboundRef, Kind, decide
from streams.metering.state import RECENT_EVENTS, MeterState, Outcome
from tests.streams.streams_fakes import NOW, PERIOD_END, PERIOD_START, tenant


def run(
    refs: list[InboundRef], *, limit: int | None = 3, state: MeterState | None = None
) -> tuple[MeterState, list[tuple[Kind, Outcome | None, int]]]:
    out = []
    t = tenant(msg_limit=limit)
    for ref in refs:
        state, d = decide(state, ref, t, NOW)
        v = d.verdict
        out.append((d.kind, v.outcome if v else None, v.count_in_period if v else 0))
    assert state is not None
    return state, out


def refs(n: int, *, partition: int = 0, start: int = 0) -> list[InboundRef]:
    return [InboundRef(f"e{i}", partition, i) for i in range(start, start + n)]


def test_under_the_limit_admits_and_counts() -> None:
    state, out = run(refs(2))
    assert out == [(Kind.NEW, Outcome.ADMITTED, 1), (Kind.NEW, Outcome.ADMITTED, 2)]
    assert state.count == 2
    assert state.last_offset == {0: 1}
    assert state.period_start_ms == to_ms(PERIOD_START)


def test_at_the_limit_holds_without_counting() -> None:
    state, out = run(refs(5), limit=3)
    assert [o[1] for o in out] == [Outcome.ADMITTED] * 3 + [Outcome.HELD] * 2
    assert out[3] == (Kind.NEW, Outcome.HELD, 0)
    assert state.count == 3
    assert state.last_offset == {0: 4}


def test_a_zero_limit_holds_everything() -> None:
    _, out = run(refs(2), limit=0)
    assert [o[1] for o in out] == [Outcome.HELD, Outcome.HELD]


def test_an_unlimited_plan_admits_everything() -> None:
    state, out = run(refs(150), limit=None)
    assert all(o[1] is Outcome.ADMITTED for o in out)
    assert out[-1][2] == 150
    assert state.count == 150


def test_the_verdict_carries_plan_period_and_time() -> None:
    _, d = decide(None, InboundRef("e0", 0, 0), tenant(), NOW)
    assert d.verdict is not None
    assert d.verdict.plan_id == "individual"
    assert d.verdict.period_start_ms == to_ms(PERIOD_START)
    assert d.verdict.period_end_ms == to_ms(PERIOD_END)
    assert d.verdict.metered_at_ms == to_ms(NOW)


def test_a_new_period_restarts_the_count() -> None:
    state, _ = run(refs(3), limit=3)
    assert state.count == 3
    nxt = tenant(msg_limit=3, period_start=PERIOD_END, period_end=PERIOD_END + timedelta(days=30))
    state2, d = decide(state, InboundRef("e3", 0, 3), nxt, NOW)
    assert d.verdict is not None
    assert (d.kind, d.verdict.outcome, d.verdict.count_in_period) == (
        Kind.NEW,
        Outcome.ADMITTED,
        1,
    )
    assert state2.count == 1
    assert state2.period_start_ms == to_ms(PERIOD_END)


def test_replay_by_offset_resends_the_same_verdict_and_counts_nothing() -> None:
    state, _ = run(refs(4), limit=3)
    for i, expected in [(1, (Outcome.ADMITTED, 2)), (3, (Outcome.HELD, 0))]:
        again, d = decide(state, InboundRef(f"e{i}", 0, i), tenant(msg_limit=3), NOW)
        assert d.kind is Kind.REPLAY
        assert d.verdict is not None
        assert (d.verdict.outcome, d.verdict.count_in_period) == expected
        assert again == state  # nothing to write


def test_replay_keeps_the_first_verdict_even_after_the_plan_changed() -> None:
    state, _ = run(refs(4), limit=3)
    upgraded = tenant(msg_limit=None, plan_id="business")
    _, d = decide(state, InboundRef("e3", 0, 3), upgraded, NOW + timedelta(hours=1))
    assert d.verdict is not None
    assert (d.kind, d.verdict.outcome, d.verdict.plan_id) == (
        Kind.REPLAY,
        Outcome.HELD,
        "individual",
    )
    assert d.verdict.metered_at_ms == to_ms(NOW)


def test_a_replayed_offset_older_than_the_window_is_done() -> None:
    state, _ = run(refs(RECENT_EVENTS + 5), limit=None)
    again, d = decide(state, InboundRef("e0", 0, 0), tenant(msg_limit=None), NOW)
    assert d == type(d)(Kind.DONE, None)
    assert again == state
    assert len(state.recent) == RECENT_EVENTS
    assert state.recent[0].event_id == "e5"


def test_a_republished_event_id_at_a_new_offset_is_not_counted_again() -> None:
    state, _ = run(refs(2))
    again, d = decide(state, InboundRef("e1", 0, 7), tenant(msg_limit=3), NOW)
    assert d.kind is Kind.REPLAY
    assert d.verdict is not None
    assert d.verdict.count_in_period == 2
    assert again.count == 2
    assert again.last_offset == {0: 7}  # the new offset is recorded, in the same one write


def test_offsets_are_tracked_per_partition() -> None:
    state, _ = run(refs(2, partition=0))
    state, out = run([InboundRef("x0", 1, 0)], state=state)
    assert out == [(Kind.NEW, Outcome.ADMITTED, 3)]
    assert state.last_offset == {0: 1, 1: 0}


def test_unknown_tenant_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="unknown tenant"):
        decide(None, InboundRef("e0", 0, 0), None, NOW)


def test_tenant_without_subscription_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="no subscription"):
        decide(None, InboundRef("e0", 0, 0), tenant(plan_id=None, period_start=None), NOW)


def test_state_survives_a_json_round_trip() -> None:
    state, _ = run(refs(5), limit=3)
    wire = json.loads(json.dumps(state.to_json()))
    assert MeterState.from_json(wire) == state
    assert MeterState.from_json(None) == MeterState()


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=40),
    limit=st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
    crashes=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60))),
    duplicates=st.lists(st.integers(0, 39), max_size=5),
)
def test_crashes_and_replays_never_change_the_count(
    n: int, limit: int | None, crashes: list[tuple[int, int, int]], duplicates: list[int]
) -> None:
    """Model at-least-once: a crash loses the state writes after the durable changelog
    prefix and redelivers from the committed offset (committed <= durable <= processed);
    ingress may also publish an event id twice. Every event must keep one verdict and the
    count must equal the number of admitted ids."""
    ids = [f"e{i}" for i in range(n)] + [f"e{d}" for d in duplicates if d < n]
    t = tenant(msg_limit=limit)
    history: list[MeterState | None] = [None]  # state after each offset (index = offset + 1)
    verdicts: dict[str, tuple[Outcome, int]] = {}
    offset = 0
    plan = list(crashes)
    while offset < len(ids):
        state, d = decide(history[offset], InboundRef(ids[offset], 0, offset), t, NOW)
        if d.verdict is not None:
            first = verdicts.setdefault(ids[offset], (d.verdict.outcome, d.verdict.count_in_period))
            assert first == (d.verdict.outcome, d.verdict.count_in_period)
        history = history[: offset + 1] + [state]
        offset += 1
        if plan and plan[0][0] <= offset:
            _, durable_back, commit_back = plan.pop(0)
            durable = max(0, offset - durable_back)
            committed = max(0, durable - commit_back)
            # state as recovered from the changelog, then redelivery from `committed`
            recovered = history[durable]
            history = history[:committed] + [recovered]
            offset = committed
    final = history[-1]
    assert final is not None
    admitted = sorted(c for o, c in verdicts.values() if o is Outcome.ADMITTED)
    assert len(verdicts) == n
    assert final.count == len(admitted)
    assert admitted == list(range(1, len(admitted) + 1))
    expected = n if limit is None else min(n, limit)
    assert final.count == expected


def test_a_suspended_tenant_has_every_message_held_without_a_quota_alert() -> None:
    state = None
    suspended = tenant(msg_limit=None, status="suspended")
    verdicts = []
    for ref in refs(3):
        state, d = decide(state, ref, suspended, NOW)
        assert d.verdict is not None
        verdicts.append(d.verdict)
    assert state is not None
    assert [v.outcome for v in verdicts] == [Outcome.HELD] * 3
    assert all(v.alerts == () for v in verdicts)
    assert (state.count, state.held) == (0, 3)


def test_a_deleted_tenant_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="deleted"):
        decide(None, InboundRef("e0", 0, 0), tenant(status="deleted"), NOW)
