"""common.records: the typed view of a consumed event is its topic's TypedDict, or an error."""

from __future__ import annotations

import pytest

from common.consumer import Event
from common.records import value_of
from common.topics import Topic
from schemas import codec
from schemas.types import InboundMessage, OutboundReply, ReleaseRequest

RAW = {
    "request_id": "r1",
    "tenant_id": "0b6f1e7e-2f41-4e59-9a43-6f3f1ad0e001",
    "reason": "allowance_changed",
    "requested_at": 1_795_360_321_140,
}


def _event() -> Event:
    payload = codec.encode("release_request", RAW)
    return Event(Topic.RELEASES, 0, 3, None, payload, codec.decode(payload))


def test_the_value_is_read_as_its_topics_record() -> None:
    event = _event()
    request = value_of(event, ReleaseRequest)
    assert request is event.value
    assert request["tenant_id"] == RAW["tenant_id"]
    assert request["requested_at"].year == 2026


@pytest.mark.parametrize("kind", [InboundMessage, OutboundReply, dict])
def test_another_schemas_record_type_is_refused(kind: type) -> None:
    with pytest.raises(TypeError, match="release_request"):
        value_of(_event(), kind)
