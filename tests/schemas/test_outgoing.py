"""schemas.outgoing against schemas.types: each outgoing form has its decoded twin's keys in
the same order, with the same value types but epoch-ms ints for the timestamps."""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, get_args, get_type_hints, is_typeddict

import pytest

from schemas import codec, outgoing
from schemas import types as decoded


def written_as(read: Any) -> Any:
    """The type a producer writes for a value read back as `read`."""
    if read is datetime:
        return int
    if isinstance(read, types.UnionType):
        return written_as(get_args(read)[0]) | None
    if is_typeddict(read):
        return outgoing.BY_SCHEMA[
            next(stem for stem, cls in decoded.BY_SCHEMA.items() if cls is read)
        ]
    return read


@pytest.mark.parametrize("stem", sorted(outgoing.BY_SCHEMA))
def test_the_outgoing_form_is_the_decoded_one_with_epoch_ms(stem: str) -> None:
    out = get_type_hints(outgoing.BY_SCHEMA[stem])
    read = get_type_hints(decoded.BY_SCHEMA[stem])
    assert list(out) == list(read)
    assert out == {key: written_as(value) for key, value in read.items()}


@pytest.mark.parametrize("stem", sorted(outgoing.BY_SCHEMA))
def test_the_shipped_examples_are_outgoing_forms(stem: str) -> None:
    """The examples are written as producers write them: every key, timestamps in ms."""
    hints = get_type_hints(outgoing.BY_SCHEMA[stem])
    read = get_type_hints(decoded.BY_SCHEMA[stem])
    stamps = [key for key, value in read.items() if value is datetime]
    examples = codec.examples(stem)
    assert examples, f"no examples for {stem}"
    for path, example in examples:
        assert list(example) == list(hints), path
        assert all(isinstance(example[key], int) for key in stamps), path
        assert codec.decode(codec.encode(stem, example), expect=stem)
