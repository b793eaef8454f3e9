"""The typed view of a consumed record: `value_of(event, InboundMessage)`.

A consumer decodes each event with its topic's schema (`Topic.schema`, `codec.decode` with
`expect=`), so `Event.value` holds a record of that schema, typed `dict[str, Any]` only
because one `Event` class serves every topic. `value_of` names the TypedDict of
`schemas.types` the handler reads it as, and checks it is the topic's: the one place the
untyped value becomes a typed record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from schemas.types import BY_SCHEMA

if TYPE_CHECKING:
    from common.consumer import Event

R = TypeVar("R")


def value_of(event: Event, kind: type[R]) -> R:
    """`event.value` as `kind`, the TypedDict of the event's topic's schema; TypeError when
    `kind` is another schema's (a wiring mistake, not a bad event)."""
    return as_record(event.topic.schema, event.value, kind)


def as_record(schema: str, value: dict[str, Any], kind: type[R]) -> R:
    """`value`, decoded with `schema`, as `kind`: the TypedDict of that schema."""
    if BY_SCHEMA.get(schema) is not kind:
        raise TypeError(f"a {schema} record is not a {getattr(kind, '__name__', kind)}")
    return cast(R, value)
