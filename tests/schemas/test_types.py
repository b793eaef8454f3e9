"""schemas.types against the shipped .avsc files: the same fields in the same order, each
with the Python type its Avro type decodes to, and every example decodes to that shape."""

from __future__ import annotations

import json
import types
from datetime import datetime, timedelta
from typing import (
    Any,
    Literal,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

import pytest

from schemas import SCHEMA_DIR, codec
from schemas import types as records

PRIMITIVES: dict[str, Any] = {
    "string": str,
    "int": int,
    "long": int,
    "boolean": bool,
    "float": float,
    "double": float,
    "bytes": bytes,
}
LOGICAL: dict[str, Any] = {"timestamp-millis": datetime}
SCHEMA_ORDER: list[str] = list(codec.manifest()["schema_order"])


def _raw(stem: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text())
    return raw


def _named_types() -> dict[str, Any]:
    """Every named Avro type of the shipped schemas, by full name, as its Python type."""
    named: dict[str, Any] = {}
    for stem in SCHEMA_ORDER:
        python_type(_raw(stem), named, namespace="")
    return named


def python_type(avro: Any, named: dict[str, Any], namespace: str) -> Any:
    """The Python type `codec.decode` gives a value of Avro type `avro` (the rules in the
    schemas.types docstring); named records and enums are registered in `named`."""
    if isinstance(avro, str):
        if avro in PRIMITIVES:
            return PRIMITIVES[avro]
        return named[avro if "." in avro else f"{namespace}.{avro}"]
    if isinstance(avro, list):
        others = [t for t in avro if t != "null"]
        assert len(others) == 1 and len(avro) == 2, f"only [null, X] unions are mapped: {avro}"
        return python_type(others[0], named, namespace) | None
    if "logicalType" in avro:
        return LOGICAL[avro["logicalType"]]
    kind = avro["type"]
    if kind in ("record", "enum"):
        namespace = avro.get("namespace", namespace)
        full = f"{namespace}.{avro['name']}"
        if kind == "enum":
            named[full] = Literal[tuple(avro["symbols"])]
        else:
            named[full] = getattr(records, avro["name"], None)
            for field in avro["fields"]:
                python_type(field["type"], named, namespace)
        return named[full]
    if kind == "array":
        return list[python_type(avro["items"], named, namespace)]  # type: ignore[misc]
    if kind == "map":
        return dict[str, python_type(avro["values"], named, namespace)]  # type: ignore[misc]
    return python_type(kind, named, namespace)


def mismatches(avsc: dict[str, Any], cls: Any, named: dict[str, Any]) -> list[str]:
    """How TypedDict `cls` differs from the record schema `avsc` (empty: it matches)."""
    namespace = avsc.get("namespace", "")
    hints = get_type_hints(cls)
    fields = [f["name"] for f in avsc["fields"]]
    out = []
    if cls.__name__ != avsc["name"]:
        out.append(f"{cls.__name__} is named {avsc['name']} in the schema")
    if list(hints) != fields:
        out.append(f"{cls.__name__} has fields {list(hints)}, the schema {fields}")
    if set(cls.__required_keys__) != set(hints):
        out.append(f"{cls.__name__}: a decoded record has every key, so all are required")
    for field in avsc["fields"]:
        want = python_type(field["type"], named, namespace)
        got = hints.get(field["name"])
        if field["name"] in hints and got != want:
            out.append(f"{cls.__name__}.{field['name']} is {got}, the schema says {want}")
    return out


def conforms(value: Any, hint: Any) -> bool:
    """Whether a decoded `value` is of type `hint` (the forms schemas.types uses)."""
    origin = get_origin(hint)
    if hint is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(conforms(value, arg) for arg in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if origin is dict:
        _, values = get_args(hint)
        return isinstance(value, dict) and all(
            isinstance(k, str) and conforms(v, values) for k, v in value.items()
        )
    if origin is list:
        [items] = get_args(hint)
        return isinstance(value, list) and all(conforms(v, items) for v in value)
    if is_typeddict(hint):
        hints = get_type_hints(hint)
        return (
            isinstance(value, dict)
            and set(value) == set(hints)
            and all(conforms(value[k], h) for k, h in hints.items())
        )
    if hint is datetime:
        return isinstance(value, datetime) and value.utcoffset() == timedelta(0)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _from_json(avsc: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """JSON has no bytes: the examples spell bytes fields as text."""
    out = dict(record)
    for field in avsc["fields"]:
        kinds = field["type"] if isinstance(field["type"], list) else [field["type"]]
        if "bytes" in kinds and isinstance(out.get(field["name"]), str):
            out[field["name"]] = out[field["name"]].encode()
    return out


def test_every_schema_has_its_typed_dict() -> None:
    assert list(records.BY_SCHEMA) == SCHEMA_ORDER


@pytest.mark.parametrize("stem", SCHEMA_ORDER)
def test_the_typed_dict_matches_its_schema(stem: str) -> None:
    assert mismatches(_raw(stem), records.BY_SCHEMA[stem], _named_types()) == []


@pytest.mark.parametrize("stem", SCHEMA_ORDER)
def test_every_example_decodes_to_its_typed_dict(stem: str) -> None:
    cls = records.BY_SCHEMA[stem]
    examples = codec.examples(stem)
    assert examples
    for path, example in examples:
        payload = codec.encode(stem, _from_json(_raw(stem), example))
        decoded: dict[str, Any] = codec.decode_as(payload, cls)
        assert set(decoded) == set(get_type_hints(cls)), path
        assert conforms(decoded, cls), path


def test_a_field_added_to_the_schema_but_not_the_type_is_caught() -> None:
    avsc = _raw("release_request")
    avsc["fields"].append({"name": "operator", "type": ["null", "string"], "default": None})
    [problem] = mismatches(avsc, records.ReleaseRequest, _named_types())
    assert "operator" in problem


def test_a_field_of_the_wrong_type_is_caught() -> None:
    avsc = _raw("release_request")
    avsc["fields"][-1]["type"] = "long"  # requested_at without its logical type
    [problem] = mismatches(avsc, records.ReleaseRequest, _named_types())
    assert "ReleaseRequest.requested_at" in problem


def test_an_optional_key_is_caught() -> None:
    class Loose(TypedDict, total=False):
        request_id: str
        tenant_id: str
        reason: str
        requested_at: datetime

    avsc = {**_raw("release_request"), "name": "Loose"}
    [problem] = mismatches(avsc, Loose, _named_types())
    assert "required" in problem


def test_the_mapping_covers_nested_records_enums_arrays_and_maps() -> None:
    named = _named_types()
    assert named["com.openclaw.saas.InboundMessage"] is records.InboundMessage
    assert named["com.openclaw.saas.Channel"] == Literal["telegram", "whatsapp", "email"]
    array = {"type": "array", "items": {"type": "map", "values": "long"}}
    assert python_type(array, named, "com.openclaw.saas") == list[dict[str, int]]
    union = ["null", "com.openclaw.saas.Channel"]
    assert python_type(union, named, "") == records.Channel | None


def test_a_decoded_value_of_the_wrong_type_does_not_conform() -> None:
    _, example = codec.examples("release_request")[0]
    decoded = codec.decode(codec.encode("release_request", example))
    assert conforms(decoded, records.ReleaseRequest)
    assert not conforms({**decoded, "requested_at": 1}, records.ReleaseRequest)
    assert not conforms({**decoded, "extra": "x"}, records.ReleaseRequest)
    assert not conforms({**decoded, "reason": None}, records.ReleaseRequest)


def test_decode_as_refuses_a_payload_of_another_schema() -> None:
    _, example = codec.examples("release_request")[0]
    payload = codec.encode("release_request", example)
    with pytest.raises(codec.CodecError):
        codec.decode_as(payload, records.InboundMessage)
    with pytest.raises(TypeError):
        codec.decode_as(payload, dict)
