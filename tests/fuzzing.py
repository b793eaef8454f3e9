"""Shared pieces of the fuzz tests (`tests/**/test_fuzz_*.py`): budgets, inputs, verdicts.

Budget: each fuzz test takes its default example count from `fuzz_settings(n)`, small
enough for `make test`. `FUZZ_EXAMPLES=100000` (what `make fuzz` sets) gives every fuzz
test that many inputs instead; the two Hypothesis profiles are registered here:
`fuzz-quick` (the default) and `fuzz-long` (selected by `FUZZ_EXAMPLES`).

Verdict: an HTTP answer to hostile input is *defined* when its status is 2xx or 4xx (or
the deliberate 503 of a test that takes the broker down), its body is the documented
JSON error shape or an acknowledgement, and nothing in it looks like a Python traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES_ENV = "FUZZ_EXAMPLES"
_LONG = int(os.environ.get(FUZZ_EXAMPLES_ENV, "0") or 0)

settings.register_profile(
    "fuzz-quick",
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
settings.register_profile(
    "fuzz-long",
    parent=settings.get_profile("fuzz-quick"),
    max_examples=max(_LONG, 1),
    # A long run explores; the example database would replay the same corner cases.
    database=None,
)


def fuzz_settings(default_examples: int) -> settings:
    """The settings of one fuzz test: `default_examples` normally, `FUZZ_EXAMPLES` if set."""
    if _LONG:
        return settings(settings.get_profile("fuzz-long"))
    return settings(settings.get_profile("fuzz-quick"), max_examples=default_examples)


# -- answers --------------------------------------------------------------------------------


def looks_like_traceback(text: str) -> bool:
    """Whether `text` carries what an unhandled exception would leak into a response."""
    return "Traceback" in text or 'File "' in text or '.py", line' in text


def check_http_answer(status: int, text: str, *, allow_503: bool = False) -> dict[str, Any] | None:
    """Assert that an answer is defined (see the module doc); returns its JSON, if any."""
    assert not looks_like_traceback(text), f"{status}: traceback in the body: {text[:300]}"
    assert status < 500 or (allow_503 and status == 503), f"{status}: {text[:300]}"
    assert 200 <= status < 500 or status == 503, f"{status}: {text[:300]}"
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if status >= 400:
        assert isinstance(body, dict) and set(body) == {"error"}, text[:300]
        assert set(body["error"]) == {"code", "message"}, text[:300]
        assert isinstance(body["error"]["code"], str) and body["error"]["code"] != "internal"
    return body if isinstance(body, dict) else None


# -- inputs ---------------------------------------------------------------------------------

# Text that stresses encoders: lone surrogates, NUL, RTL/zero-width marks, astral emoji,
# digits of other scripts (isdigit() but not int()), line and paragraph separators.
NASTY_CHARS = '\ud800\udfff\x00\u202e\u200b\U0001f600\u00b2\u0663\u2028\ufeff\x7f\r\n\t"\\'
# Built from a list, not st.text: st.text never draws surrogates, whatever its alphabet.
nasty_text = st.lists(
    st.one_of(st.sampled_from(list(NASTY_CHARS)), st.characters()), max_size=40
).map("".join)
nasty_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**63) + 2),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty_text,
    st.sampled_from(["", "0", "-1", "²", "١٢٣", "1e309", "NaN", "9" * 30, " 1", "1 "]),
)
json_values = st.recursive(
    nasty_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=8,
)


def mostly(
    strategy: st.SearchStrategy[Any], other: st.SearchStrategy[Any], one_in: int = 6
) -> st.SearchStrategy[Any]:
    """`strategy`, and one time in `one_in` `other` instead (weights that one_of lacks)."""
    return st.sampled_from([True] * (one_in - 1) + [False]).flatmap(
        lambda usual: strategy if usual else other
    )


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `strategy`, sometimes any JSON value instead (a wrong type in that place)."""
    return mostly(strategy, json_values)


def dumps(value: Any) -> bytes:
    """JSON as a sender might write it; lone surrogates survive as `\\udXXX` escapes."""
    return json.dumps(value, allow_nan=True).encode()


# Ways a well-formed body gets damaged in transit or by a hostile sender.
ENCODINGS = ("utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252", "utf-8-sig", "utf-7")


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` truncated, re-encoded, padded, spliced or bit-flipped (or left intact)."""
    how = draw(st.sampled_from(["intact"] * 5 + ["truncate", "encode", "flip", "splice", "pad"]))
    if how == "truncate" and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    if how == "encode":
        text = body.decode("utf-8", "surrogatepass")
        return text.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    if how == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    if how == "splice" and body:
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.binary(max_size=16)) + body[at:]
    if how == "pad":
        return draw(st.sampled_from([b"\xef\xbb\xbf", b" \n", b"\x00"])) + body
    return body


def oversized(limit: int, make: Callable[[str], bytes]) -> st.SearchStrategy[bytes]:
    """Bodies around and well above `limit` bytes, built by `make(filler)` (cheap to draw)."""
    return st.integers(min_value=limit - 64, max_value=limit * 4).map(
        lambda n: make("x" * max(n, 0))
    )


@contextlib.asynccontextmanager
async def fresh_client(app: web.Application) -> AsyncIterator[TestClient[Any, Any]]:
    """A client of a new app: no duplicate memory survives from one example to the next.

    Hypothesis replays a failing example to confirm it; with the app of the previous
    example the replay would be answered "duplicate" and the failure look flaky.
    """
    async with TestClient(TestServer(app)) as client:
        yield client
