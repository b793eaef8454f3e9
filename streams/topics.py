"""The Faust topics the worker consumes, bound to the project's topic names and codec.

Keys and values stay raw bytes inside Faust; `to_event` wraps a record in the same
`common.consumer.Event` the confluent-kafka workers use and `decode` fills its value with
`schemas.codec`, so handlers read alike everywhere; `decode_as` gives it as the topic's
TypedDict (`common.records.value_of`). Outputs are produced with
`common.kafka.EventProducer`, never through Faust topics.
"""

from __future__ import annotations

from typing import Any, TypeVar

import faust
from faust.types import TopicT

from common.consumer import Event
from common.errors import InvalidEvent
from common.records import value_of
from common.settings import Settings
from common.topics import Topic
from schemas import codec

R = TypeVar("R")


def source_topic(app: faust.App, settings: Settings, topic: Topic) -> TopicT:
    """The faust topic for `topic` (physical name from settings), raw keys and values."""
    return app.topic(
        settings.topic(topic.value),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )


def to_event(topic: Topic, partition: int, offset: int, key: Any, value: Any) -> Event:
    """Wrap one consumed record, undecoded (so even a corrupt one can be dead-lettered)."""
    return Event(
        topic, partition, offset, None if key is None else _as_bytes(key), _as_bytes(value)
    )


def decode(event: Event) -> dict[str, Any]:
    """Decode the event's value with its topic's schema; InvalidEvent when it does not."""
    if not event.value:
        try:
            event.value = codec.decode(event.raw, expect=event.topic.schema)
        except codec.CodecError as err:
            raise InvalidEvent(f"undecodable: {err}") from err
    return event.value


def decode_as(event: Event, kind: type[R]) -> R:
    """`decode`, read as `kind` (the TypedDict of the topic's schema): `decode_as(event,
    InboundMessage)`."""
    decode(event)
    return value_of(event, kind)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    return b"" if data is None else repr(data).encode()
