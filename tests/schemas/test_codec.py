"""The codec and the shipped schemas: examples validate, round-trip, and reject garbage."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import SCHEMA_DIR, codec


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode()
    return value


def _bytes_fields(name: str, record: dict[str, Any]) -> dict[str, Any]:
    if name != "dead_letter":
        return record
    return {
        **record,
        "payload": record["payload"].encode(),
        "key": None if record["key"] is None else record["key"].encode(),
    }


@pytest.mark.parametrize("name", list(codec.manifest()["schema_order"]))
def test_every_schema_has_examples_that_round_trip(name: str) -> None:
    examples = codec.examples(name)
    assert examples, f"schemas/examples/{name}/ has no example payload"
    for path, record in examples:
        # JSON has no bytes: the dead-letter example spells its bytes fields as text
        payload = codec.encode(name, _bytes_fields(name, record))
        assert payload[:2] == b"\xc3\x01", path
        assert _plain(codec.decode(payload, expect=name)) == record, path


def test_external_consumer_decodes_with_only_the_avsc_files() -> None:
    """A billing consumer with fastavro and the shipped .avsc files, no project code."""
    named: dict[str, Any] = {}
    by_fp: dict[bytes, Any] = {}
    for stem in codec.manifest()["schema_order"]:
        raw = json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text())
        expanded = fastavro.parse_schema(raw, named_schemas=dict(named), expand=True)
        parsed = fastavro.parse_schema(raw, named_schemas=named)
        pcf = fastavro.schema.to_parsing_canonical_form(expanded)
        by_fp[bytes.fromhex(fastavro.schema.fingerprint(pcf, "CRC-64-AVRO"))] = parsed
    _, record = codec.examples("usage_record")[0]
    payload = codec.encode("usage_record", record)
    schema = by_fp[payload[2:10]]
    decoded = fastavro.schemaless_reader(io.BytesIO(payload[10:]), schema, None)
    assert isinstance(decoded, dict)
    assert decoded["usage_id"] == record["usage_id"]
    assert decoded["period_start"] == datetime.fromtimestamp(record["period_start"] / 1000, tz=UTC)


def test_record_that_does_not_fit_is_refused() -> None:
    _, record = codec.examples("inbound_message")[0]
    with pytest.raises(codec.CodecError):
        codec.encode("inbound_message", {**record, "channel": "fax"})
    with pytest.raises(codec.CodecError):
        codec.encode("inbound_message", {k: v for k, v in record.items() if k != "text"})


def test_wrong_schema_is_refused() -> None:
    _, record = codec.examples("inbound_message")[0]
    payload = codec.encode("inbound_message", record)
    with pytest.raises(codec.CodecError):
        codec.decode(payload, expect="outbound_reply")


@given(st.binary(max_size=300))
def test_decode_never_crashes_on_garbage(data: bytes) -> None:
    with contextlib.suppress(codec.CodecError):
        codec.decode(data)


@given(st.binary(max_size=200))
def test_decode_of_truncated_or_corrupt_body_is_a_codec_error(tail: bytes) -> None:
    header = codec.schema("inbound_message").header
    with contextlib.suppress(codec.CodecError):
        codec.decode(header + tail)
