"""Fuzz `codec.decode`: every consumer's first step on bytes it did not write.

`test_codec.py` feeds random bytes (which almost never get past the header). Here every
shipped example of every schema is encoded, then damaged: truncated, extended, bit-flipped,
spliced, given a declared length or block count out of all proportion (a varint of up to
2^63), or put behind another schema's header. `decode` must return a record or raise
`CodecError`, quickly (no hang on a huge block count, no huge allocation), never anything
else: a consumer dead-letters a CodecError and would crash on anything else.
`make fuzz` runs 100,000 inputs per test.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from schemas import codec
from tests.fuzzing import fuzz_settings

SCHEMAS = sorted(codec.registry())


def _as_written(record: dict[str, Any]) -> dict[str, Any]:
    """JSON has no bytes: an example spells its bytes fields (the dead letter's) as text."""
    return {
        k: v.encode() if k in ("payload", "key") and isinstance(v, str) else v
        for k, v in record.items()
    }


EXAMPLES = [
    (name, codec.encode(name, _as_written(record)))
    for name in SCHEMAS
    for _path, record in codec.examples(name)
]
# Decoding a payload of a few hundred bytes takes microseconds; allow a generous margin.
MAX_DECODE_S = 0.5


def _zigzag_varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    _name, payload = draw(st.sampled_from(EXAMPLES))
    body = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["truncate", "extend", "flip", "splice", "varint", "header"]))
        at = draw(st.integers(codec.HEADER_LEN, max(codec.HEADER_LEN, len(body))))
        if how == "truncate":
            del body[at:]
        elif how == "extend":
            body += draw(st.binary(min_size=1, max_size=32))
        elif how == "flip" and at < len(body):
            body[at] ^= draw(st.integers(1, 255))
        elif how == "splice":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "varint":
            n = draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([-1, 2**31])))
            body[at:at] = _zigzag_varint(n)
        else:  # another schema's header in front of this body
            other = codec.schema(draw(st.sampled_from(SCHEMAS))).header
            body[: codec.HEADER_LEN] = other
    return bytes(body)


@fuzz_settings(1000)
@given(payload=corrupted())
def test_decode_of_damaged_payloads_is_a_record_or_a_codec_error(payload: bytes) -> None:
    started = time.perf_counter()
    try:
        record = codec.decode(payload)
    except codec.CodecError:
        event("CodecError")
    else:
        assert isinstance(record, dict)
        event("decoded")
    assert time.perf_counter() - started < MAX_DECODE_S, "decode took too long"


@fuzz_settings(300)
@given(name=st.sampled_from(SCHEMAS), count=st.integers(2**20, 2**62), tail=st.binary(max_size=8))
def test_a_huge_declared_length_or_block_count_fails_fast(
    name: str, count: int, tail: bytes
) -> None:
    """A record whose first field claims `count` bytes or items, followed by almost nothing."""
    payload = codec.schema(name).header + _zigzag_varint(count) + tail
    started = time.perf_counter()
    with contextlib.suppress(codec.CodecError):
        codec.decode(payload)
    assert time.perf_counter() - started < MAX_DECODE_S, "decode took too long"
