"""Metering handlers (`Metering.handle`, `handle_release`): outputs, alerts, notices, releases,
retries without double counting, dead letters."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from common.consumer import Event
from common.timeconv import to_ms
from common.topics import Topic
from schemas import codec
from streams.boundary import Boundary
from streams.metering.handler import Metering
from streams.metering.outputs import NOTICE_TEXT
from streams.metering.state import MeterState
from tests.fakes import DateClock, FakeProducer, RecordingSleep
from tests.streams.streams_fakes import (
    NOW,
    OTHER,
    PERIOD_END,
    PERIOD_START,
    RECEIVED_MS,
    TENANT,
    FakeDirectory,
    FakeHeldQueue,
    inbound_event,
    tenant,
)


class Rig:
    def __init__(self, *, limit: int | None = 2) -> None:
        self.directory = FakeDirectory(
            tenant(msg_limit=limit, upgrade_name="Business", upgrade_msg_limit=10_000)
        )
        self.table: dict[str, Any] = {}
        self.producer = FakeProducer()
        self.held = FakeHeldQueue()
        self.sleep = RecordingSleep()
        self.metering = Metering(
            self.directory,
            self.table,
            self.producer,
            self.held,
            refresh=self.directory.reload,
            clock=DateClock(lambda: NOW),
        )
        self.boundary = Boundary("metering", self.producer, clock=self.sleep)
        self.requests = 0

    async def feed(self, *events: Event) -> list[str]:
        return [await self.boundary.process(e, self.metering.handle) for e in events]

    async def request_release(self, offset: int | None = None, tenant_id: str = TENANT) -> str:
        offset = self.requests if offset is None else offset
        self.requests = max(self.requests, offset + 1)
        raw = codec.encode(
            "release_request",
            {"request_id": f"r{offset}", "tenant_id": tenant_id, "reason": "t", "requested_at": 0},
        )
        event = Event(Topic.RELEASES, 0, offset, tenant_id.encode(), raw)
        return await self.boundary.process(event, self.metering.handle_release)

    def change(self, **changes: Any) -> None:
        self.directory.tenants[TENANT] = replace(self.directory.tenants[TENANT], **changes)

    def state(self, tenant_id: str = TENANT) -> MeterState:
        return MeterState.from_json(self.table.get(tenant_id))

    def admitted(self) -> list[tuple[str, int]]:
        return [
            (a["message"]["event_id"], a["count_in_period"])
            for a in self.producer.on(Topic.ADMITTED)
        ]

    def alerts(self) -> list[tuple[str, int, int]]:
        return [(a["level"], a["used"], a["limit"]) for a in self.producer.on(Topic.ALERTS)]


def events(n: int, start: int = 0, **changes: Any) -> list[Event]:
    return [inbound_event(f"e{i}", i, **changes) for i in range(start, start + n)]


async def test_admitted_message_emits_session_event_then_admitted_and_usage() -> None:
    rig = Rig()
    assert await rig.feed(inbound_event("e0", 0)) == ["ok"]
    assert [s.topic for s in rig.producer.sent] == [
        Topic.SESSION_EVENTS,
        Topic.ADMITTED,
        Topic.USAGE,
    ]
    assert all(s.key == TENANT for s in rig.producer.sent)
    [session] = rig.producer.on(Topic.SESSION_EVENTS)
    assert session["event_id"] == "e0"
    assert (session["kind"], session["role"], session["status"]) == (
        "message_in",
        "user",
        "admitted",
    )
    assert session["text"] == "hello e0"
    assert to_ms(session["occurred_at"]) == RECEIVED_MS
    [admitted] = rig.producer.on(Topic.ADMITTED)
    assert admitted["message"]["event_id"] == "e0"
    assert admitted["message"]["reply_route"] == {"chat_id": "4242"}
    assert admitted["count_in_period"] == 1
    assert admitted["plan_id"] == "individual"
    assert admitted["period_start"] == PERIOD_START
    assert admitted["period_end"] == PERIOD_END
    assert admitted["metered_at"] == NOW
    [usage] = rig.producer.on(Topic.USAGE)
    assert usage["usage_id"] == "msg:e0"
    assert (usage["kind"], usage["messages"], usage["channel"]) == ("message", 1, "telegram")
    assert rig.state().count == 1


async def test_exactly_the_limit_is_admitted_with_one_soft_and_one_hard_alert() -> None:
    rig = Rig(limit=5)
    feed = events(8)
    feed[6] = inbound_event("e6", 6, conversation_id="77", reply_route={"chat_id": "77"})
    assert await rig.feed(*feed) == ["ok"] * 8
    assert rig.admitted() == [(f"e{i}", i + 1) for i in range(5)]
    assert rig.alerts() == [("soft", 4, 5), ("hard", 5, 5)]
    soft, hard = rig.producer.on(Topic.ALERTS)
    assert soft["alert_id"] == f"{TENANT}:{to_ms(PERIOD_START)}:soft"
    assert "4 of your 5 messages" in soft["message"]
    assert "You've hit your limit" in hard["message"]
    assert "Upgrade to Business for 10,000 messages a month." in hard["message"]
    assert rig.held.pending() == ["e5", "e6", "e7"]
    assert rig.state().held == 3
    # e5..e7 are held: the original bytes are logged, nothing is billed
    assert [s.payload for s in rig.producer.sent if s.topic is Topic.HELD] == [
        e.raw for e in feed[5:]
    ]
    assert len(rig.producer.on(Topic.USAGE)) == 5
    assert [s["status"] for s in rig.producer.on(Topic.SESSION_EVENTS)] == (
        ["admitted"] * 5 + ["held"] * 3
    )
    # one polite notice per conversation: chat 4242 (e5, e7 share it) and chat 77 (e6)
    notices = rig.producer.on(Topic.OUTBOUND)
    assert [(n["in_reply_to"], n["conversation_id"]) for n in notices] == [
        ("e5", "4242"),
        ("e6", "77"),
    ]
    assert notices[1]["reply_route"] == {"chat_id": "77"}
    assert notices[0]["text"] == NOTICE_TEXT
    assert notices[0]["event_id"] == "notice:e5"


async def test_an_upgrade_releases_the_held_messages_in_order() -> None:
    rig = Rig(limit=2)
    await rig.feed(*events(5))
    rig.producer.sent.clear()
    rig.change(plan_id="business", msg_limit=10_000, upgrade_name="Enterprise")
    assert await rig.request_release() == "ok"
    assert rig.admitted() == [("e2", 3), ("e3", 4), ("e4", 5)]
    assert [u["usage_id"] for u in rig.producer.on(Topic.USAGE)] == ["msg:e2", "msg:e3", "msg:e4"]
    assert {a["plan_id"] for a in rig.producer.on(Topic.ADMITTED)} == {"business"}
    assert [s["status"] for s in rig.producer.on(Topic.SESSION_EVENTS)] == ["admitted"] * 3
    assert rig.alerts() == []  # soft and hard went out for this period already
    assert rig.held.pending() == []
    state = rig.state()
    assert (state.count, state.held) == (5, 0)
    # the next message is admitted after them
    await rig.feed(inbound_event("e5", 5))
    assert rig.admitted()[-1] == ("e5", 6)


async def test_a_new_message_after_an_upgrade_waits_for_the_held_ones() -> None:
    rig = Rig(limit=1)
    await rig.feed(*events(3))
    rig.producer.sent.clear()
    rig.change(msg_limit=3)  # upgraded, no release request yet
    await rig.feed(inbound_event("e3", 3))
    assert rig.admitted() == [("e1", 2), ("e2", 3)]
    assert rig.held.pending() == ["e3"]  # no room left: e3 is held behind them
    assert rig.state().held == 1


async def test_a_new_period_releases_against_the_new_allowance() -> None:
    rig = Rig(limit=2)
    await rig.feed(*events(6))  # e0 e1 admitted; e2..e5 held
    rig.producer.sent.clear()
    rig.change(period_start=PERIOD_END, period_end=PERIOD_END + timedelta(days=30))
    assert await rig.request_release() == "ok"
    assert rig.admitted() == [("e2", 1), ("e3", 2)]
    assert rig.held.pending() == ["e4", "e5"]
    new_period = to_ms(PERIOD_END)
    assert rig.alerts() == [("soft", 2, 2), ("hard", 2, 2)]
    assert {a["alert_id"].split(":")[1] for a in rig.producer.on(Topic.ALERTS)} == {str(new_period)}
    state = rig.state()
    assert (state.period_start_ms, state.count, state.held) == (new_period, 2, 2)


async def test_a_request_with_nothing_to_release_changes_nothing() -> None:
    rig = Rig(limit=2)
    await rig.feed(*events(3))
    before = dict(rig.table)
    rig.producer.sent.clear()
    assert await rig.request_release() == "ok"  # held, but no room
    assert rig.table == before
    assert rig.producer.sent == []


async def test_a_replayed_request_resends_the_release_and_counts_nothing() -> None:
    rig = Rig(limit=1)
    await rig.feed(*events(3))
    rig.change(msg_limit=10)
    await rig.request_release(offset=0)
    first = rig.admitted()
    state = rig.state()
    rig.producer.sent.clear()
    assert await rig.request_release(offset=0) == "ok"  # redelivered after a crash
    assert rig.admitted() == first[1:]  # e1, e2 again, same positions
    assert rig.state() == state
    await rig.feed(inbound_event("e3", 3))
    rig.producer.sent.clear()
    await rig.request_release(offset=0)  # not the latest release's trigger any more
    assert rig.producer.sent == []


async def test_a_failed_release_send_is_retried_and_counted_once() -> None:
    rig = Rig(limit=1)
    await rig.feed(*events(4))
    rig.change(msg_limit=10)
    rig.producer.sent.clear()
    rig.producer.fail_next = 3  # the release's three session events fail
    assert await rig.request_release() == "ok"
    assert len(rig.sleep.delays) == 1
    assert sorted(set(rig.admitted())) == [("e1", 2), ("e2", 3), ("e3", 4)]
    assert {u["usage_id"] for u in rig.producer.on(Topic.USAGE)} == {"msg:e1", "msg:e2", "msg:e3"}
    assert (rig.state().count, rig.state().held) == (4, 0)


async def test_a_replayed_hold_keeps_its_place_in_the_queue() -> None:
    rig = Rig(limit=1)
    await rig.feed(*events(3))
    await rig.feed(inbound_event("e1", 1))  # replay after a crash
    assert rig.held.pending() == ["e1", "e2"]
    assert rig.state().held == 2
    assert len(rig.producer.on(Topic.OUTBOUND)) == 2  # the notice is sent again, same id
    assert {n["event_id"] for n in rig.producer.on(Topic.OUTBOUND)} == {"notice:e1"}


async def test_a_failed_send_is_retried_and_counted_once() -> None:
    rig = Rig()
    rig.producer.fail_next = 4  # all three sends fail, then the first of the retry
    assert await rig.feed(inbound_event("e0", 0)) == ["ok"]
    assert len(rig.sleep.delays) == 2
    assert rig.sleep.delays[0] < rig.sleep.delays[1]
    assert {a["count_in_period"] for a in rig.producer.on(Topic.ADMITTED)} == {1}  # re-sent
    assert rig.state().count == 1


async def test_a_failure_between_outputs_resends_the_same_decision() -> None:
    rig = Rig()
    await rig.feed(inbound_event("e0", 0))
    rig.producer.sent.clear()
    # crash after the state write: the event is delivered again
    await rig.feed(inbound_event("e0", 0), inbound_event("e0", 5))  # replay + re-publish
    assert [a["count_in_period"] for a in rig.producer.on(Topic.ADMITTED)] == [1, 1]
    assert {u["usage_id"] for u in rig.producer.on(Topic.USAGE)} == {"msg:e0"}
    assert rig.state().count == 1
    assert rig.state().last_offset == {0: 5}


async def test_unknown_tenant_reloads_the_directory_once_then_dead_letters() -> None:
    rig = Rig()
    event = inbound_event("x0", 0, OTHER)
    assert await rig.feed(event, inbound_event("x1", 1, OTHER)) == ["dead_letter"] * 2
    assert rig.directory.reloads == 1  # rate limited
    dead = rig.producer.on(Topic.INBOUND_DLQ)
    assert [d["source_offset"] for d in dead] == [0, 1]
    assert dead[0]["payload"] == event.raw
    assert dead[0]["key"] == OTHER.encode()
    assert dead[0]["reason"] == "unknown tenant"
    assert dead[0]["stage"] == "metering"
    assert OTHER not in rig.table
    assert await rig.request_release(tenant_id=OTHER) == "dead_letter"
    [released] = rig.producer.on(Topic.RELEASES_DLQ)
    assert released["reason"] == "unknown tenant"


async def test_a_tenant_created_a_moment_ago_is_found_after_a_reload() -> None:
    rig = Rig()
    rig.directory.on_reload = [tenant(OTHER)]
    assert await rig.feed(inbound_event("x0", 0, OTHER)) == ["ok"]
    assert rig.state(OTHER).count == 1


async def test_a_failed_directory_reload_is_retried_not_dead_lettered() -> None:
    rig = Rig()
    rig.directory.on_reload = [tenant(OTHER)]
    real_reload = rig.directory.reload
    failures = [OSError("PostgreSQL is down")]

    async def flaky_reload() -> None:
        if failures:
            raise failures.pop()
        await real_reload()

    rig.metering = Metering(
        rig.directory,
        rig.table,
        rig.producer,
        rig.held,
        refresh=flaky_reload,
        clock=DateClock(lambda: NOW),
    )
    assert await rig.feed(inbound_event("x0", 0, OTHER)) == ["ok"]
    assert len(rig.sleep.delays) == 1
    assert rig.producer.on(Topic.INBOUND_DLQ) == []


async def test_an_undecodable_event_is_dead_lettered() -> None:
    rig = Rig()
    event = inbound_event("e0", 3)
    event.raw = b"not avro"
    assert await rig.feed(event) == ["dead_letter"]
    [dead] = rig.producer.on(Topic.INBOUND_DLQ)
    assert dead["payload"] == b"not avro"
    assert dead["reason"].startswith("undecodable")


async def test_a_dead_letter_write_is_retried_until_the_broker_has_it() -> None:
    rig = Rig()
    rig.producer.fail_next = 3
    assert await rig.feed(inbound_event("x0", 0, OTHER)) == ["dead_letter"]
    assert len(rig.producer.on(Topic.INBOUND_DLQ)) == 1
    assert len(rig.sleep.delays) == 3
