"""Alert and notice texts and records: plan data decides the upgrade prompt."""

from __future__ import annotations

from common.timeconv import to_ms
from schemas import codec
from schemas.types import InboundMessage
from streams.metering.outputs import (
    NOTICE_TEXT,
    alert_record,
    alert_text,
    notice_record,
    upgrade_prompt,
)
from streams.metering.state import Alert, Level, Outcome, Verdict
from tests.streams.streams_fakes import NOW, PERIOD_END, PERIOD_START, TENANT, inbound, tenant


def test_the_upgrade_prompt_comes_from_the_plan_data() -> None:
    business = tenant(upgrade_name="Business", upgrade_msg_limit=10_000)
    assert upgrade_prompt(business) == "Upgrade to Business for 10,000 messages a month."
    enterprise = tenant(upgrade_name="Enterprise", upgrade_msg_limit=None)
    assert upgrade_prompt(enterprise) == "Upgrade to Enterprise for unlimited messages."
    assert upgrade_prompt(tenant(upgrade_name=None)) == "Contact us to raise your limit."


def test_alert_texts() -> None:
    t = tenant(upgrade_name="Business", upgrade_msg_limit=10_000)
    soft = alert_text(Alert(Level.SOFT, 800, 1000), t, to_ms(PERIOD_END))
    assert soft.startswith("You've used 800 of your 1,000 messages this period (80%).")
    hard = alert_text(Alert(Level.HARD, 1000, 1000), t, to_ms(PERIOD_END))
    assert hard.startswith("You've hit your limit of 1,000 messages this period.")
    assert "Upgrade to Business for 10,000 messages a month." in hard
    assert "December 1, 2026" in hard


def test_alert_record_fits_the_schema() -> None:
    t = tenant(upgrade_name="Business", upgrade_msg_limit=10_000)
    record = alert_record(
        t,
        Alert(Level.HARD, 5, 5),
        plan_id="individual",
        period_start_ms=to_ms(PERIOD_START),
        period_end_ms=to_ms(PERIOD_END),
        created_at_ms=to_ms(NOW),
    )
    decoded = codec.decode(codec.encode("quota_alert", record), expect="quota_alert")
    assert decoded["alert_id"] == f"{TENANT}:{to_ms(PERIOD_START)}:hard"
    assert (decoded["level"], decoded["used"], decoded["limit"]) == ("hard", 5, 5)


def test_notice_answers_the_held_message_on_its_route() -> None:
    raw = inbound("e7", reply_route={"chat_id": "4242", "message_thread_id": "3"})
    record = codec.decode_as(codec.encode("inbound_message", raw), InboundMessage)  # as consumed
    verdict = Verdict("e7", Outcome.HELD, 0, "individual", 1, 2, to_ms(NOW), (), True)
    notice = notice_record(record, verdict, tenant())
    decoded = codec.decode(codec.encode("outbound_reply", notice), expect="outbound_reply")
    assert decoded["event_id"] == "notice:e7"
    assert decoded["in_reply_to"] == "e7"
    assert decoded["text"] == NOTICE_TEXT
    assert decoded["reply_route"] == {"chat_id": "4242", "message_thread_id": "3"}
    assert decoded["agent_id"] == "acme"
