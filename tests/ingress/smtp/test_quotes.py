"""Quote stripping: trailing history goes, interleaved answers and all-quote mails stay."""

from __future__ import annotations

import pytest

from ingress.smtp.quotes import strip_quoted


@pytest.mark.parametrize(
    "attribution",
    [
        "On Mon, 2 Nov 2026 at 10:00, Agent <agent-a@x.test> wrote:",
        "On Mon, 2 Nov 2026 at 10:00, Agent\n<agent-a@x.test> wrote:",
        "Am Mo., 2. Nov. 2026 um 10:00 Uhr schrieb Agent <agent-a@x.test>:",
        "Le lun. 2 nov. 2026 à 10:00, Agent <agent-a@x.test> a écrit :",
    ],
)
def test_trailing_quote_and_attribution_go(attribution: str) -> None:
    text = f"Sounds good.\n\n{attribution}\n> Earlier text\n>\n>> even earlier\n\n"
    assert strip_quoted(text) == "Sounds good."


def test_interleaved_answers_keep_their_quotes() -> None:
    text = "> Do you open on Sunday?\nNo, closed.\n> And Monday?\nFrom 9.\n"
    assert strip_quoted(text) == text.strip()


def test_only_the_trailing_block_goes() -> None:
    text = "> question one\nanswer one\n\nOn Mon, X wrote:\n> question one\n> question two\n"
    assert strip_quoted(text) == "> question one\nanswer one"


def test_outlook_history_goes() -> None:
    text = "See below.\n\n-----Original Message-----\nFrom: Agent\nSent: Monday\n\nold text"
    assert strip_quoted(text) == "See below."
    text = "Fine.\n________________________________\nFrom: Agent <a@x.test>\nSent: Monday\nold"
    assert strip_quoted(text) == "Fine."


def test_all_quote_mail_is_left_alone() -> None:
    text = "> forwarded wisdom\n> more of it\n"
    assert strip_quoted(text) == text.strip()


def test_a_line_ending_with_wrote_but_no_quote_stays() -> None:
    text = "My friend wrote:\nit is fine"
    assert strip_quoted(text) == text
