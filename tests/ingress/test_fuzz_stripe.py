"""Fuzz POST /webhooks/stripe: hostile events, signed or not, get a defined answer.

Most bodies are *correctly signed* Stripe events of the handled types whose `data.object`
carries hostile values (wrong types, lone surrogates, huge numbers, nested junk), so they
get past `Stripe-Signature` and reach the translation and the Avro encoder; the rest are
damaged bodies and arbitrary signature headers. A verified event is answered 200 (acted
on or acknowledged as unusable) and anything else 400/413; never a 5xx except the
deliberate 503 while the broker is down. `make fuzz` runs 100,000 inputs per test.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from hypothesis import given
from hypothesis import strategies as st

from common.settings import Secret, Settings
from ingress.stripe_payload import HANDLED_TYPES, tenant_id_for
from schemas import codec
from tests.fuzzing import (
    damaged,
    dumps,
    fuzz_settings,
    json_values,
    maybe,
    nasty_scalars,
    nasty_text,
)
from tests.ingress.fuzz_posts import post_to_fresh_app
from tests.ingress.ingress_fakes import FakeDirectory
from tests.stripe_events import WEBHOOK_SECRET

URL = "/webhooks/stripe"
MAX_BODY = 16 * 1024


SETTINGS = Settings.from_env(
    {}, max_body_bytes=MAX_BODY, stripe_webhook_secret=Secret(WEBHOOK_SECRET)
)


ids = st.one_of(
    st.from_regex(r"(cus|sub|in|cs|price)_[A-Za-z0-9]{1,12}", fullmatch=True), nasty_text
)
objects = st.fixed_dictionaries(
    {},
    optional={
        "id": maybe(ids),
        "customer": maybe(st.one_of(ids, st.fixed_dictionaries({"id": maybe(ids)}))),
        "subscription": maybe(ids),
        "mode": maybe(st.sampled_from(["subscription", "payment"])),
        "status": maybe(st.sampled_from(["complete", "open", "active", "canceled"])),
        "customer_email": maybe(st.one_of(st.just("owner@example.com"), nasty_text)),
        "customer_details": maybe(
            st.fixed_dictionaries({}, optional={"email": maybe(nasty_text), "name": nasty_text})
        ),
        "metadata": maybe(st.dictionaries(nasty_text, nasty_scalars, max_size=4)),
        "custom_fields": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "key": maybe(st.just("telegram_bot_token")),
                        "text": maybe(st.fixed_dictionaries({"value": maybe(nasty_text)})),
                    }
                ),
                max_size=2,
            )
        ),
        "items": maybe(
            st.fixed_dictionaries(
                {
                    "data": maybe(
                        st.lists(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "price": maybe(
                                        st.fixed_dictionaries(
                                            {},
                                            optional={
                                                "id": maybe(ids),
                                                "lookup_key": nasty_scalars,
                                                "metadata": json_values,
                                            },
                                        )
                                    ),
                                    "current_period_start": nasty_scalars,
                                    "current_period_end": nasty_scalars,
                                },
                            ),
                            max_size=2,
                        )
                    )
                }
            )
        ),
        "current_period_start": nasty_scalars,
        "current_period_end": nasty_scalars,
        "parent": json_values,
    },
)
events = st.fixed_dictionaries(
    {
        "id": maybe(st.builds(lambda n: f"evt_fuzz_{n}", st.integers(0, 10**9))),
        "type": maybe(st.sampled_from(sorted(HANDLED_TYPES) + ["ping.unhandled"])),
        "created": maybe(st.integers(0, 2**40)),
        "data": maybe(st.fixed_dictionaries({"object": maybe(objects)})),
    }
)


def sign_bytes(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """`Stripe-Signature` over raw bytes, valid UTF-8 or not (Stripe's scheme, by hand)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


@st.composite
def signed_posts(draw: st.DrawFn) -> tuple[bytes, str | None]:
    body = draw(events.map(dumps).flatmap(damaged))
    how = draw(st.sampled_from(["signed"] * 8 + ["other", "old", "none", "garbage"]))
    if how == "signed":
        return body, sign_bytes(body)
    if how == "other":
        return body, sign_bytes(body, secret="whsec_other")
    if how == "old":
        return body, sign_bytes(body, timestamp=int(time.time()) - 301)
    if how == "garbage":
        return body, draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=90))
    return body, None


@fuzz_settings(200)
@given(post=signed_posts(), kafka_down=st.booleans())
async def test_signed_hostile_events_get_defined_answers(
    post: tuple[bytes, str | None], kafka_down: bool
) -> None:
    body, signature = post
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    producer = await post_to_fresh_app(
        SETTINGS, FakeDirectory([]), URL, body, headers, kafka_down=kafka_down
    )
    for sent in producer.sent:  # what every consumer of tenants.lifecycle must decode
        record = codec.decode(sent.payload, expect="tenant_lifecycle")
        assert sent.key == record["tenant_id"] == tenant_id_for(record["stripe_customer_id"])
