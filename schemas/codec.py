"""The only module that knows Avro.

Wire format: Avro *single-object encoding* (Avro 1.12 specification): the two bytes
``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
Parsing Canonical Form, then the Avro binary body. A consumer outside this project needs
no registry: it parses the shipped ``.avsc`` files, builds a fingerprint -> schema map
and decodes (README, "Wire format").
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

import fastavro
import yaml
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas import SCHEMA_DIR
from schemas.types import BY_SCHEMA

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8
R = TypeVar("R")


class CodecError(ValueError):
    """A payload is not a valid single-object-encoded record of a known schema."""


@dataclass(frozen=True)
class Schema:
    """One parsed schema with its fingerprint."""

    name: str
    parsed: Any
    fingerprint: bytes

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint


@cache
def manifest() -> Mapping[str, Any]:
    """The parsed `topics.yaml`."""
    with (SCHEMA_DIR / "topics.yaml").open() as fh:
        data: Mapping[str, Any] = yaml.safe_load(fh)
    return data


@cache
def registry() -> Mapping[str, Schema]:
    """Every schema by file stem, parsed in manifest order so references resolve."""
    named: dict[str, Any] = {}
    out: dict[str, Schema] = {}
    for stem in manifest()["schema_order"]:
        raw = json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text())
        expanded = fastavro.parse_schema(raw, named_schemas=dict(named), expand=True)
        parsed = fastavro.parse_schema(raw, named_schemas=named)
        canonical = to_parsing_canonical_form(expanded)
        fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        out[stem] = Schema(stem, parsed, fp)
    return out


@cache
def _by_fingerprint() -> Mapping[bytes, Schema]:
    return {s.fingerprint: s for s in registry().values()}


def schema(name: str) -> Schema:
    try:
        return registry()[name]
    except KeyError as err:
        raise CodecError(f"unknown schema {name!r}") from err


def encode(name: str, record: Mapping[str, Any]) -> bytes:
    """Encode `record` with schema `name`; raises CodecError if it does not fit."""
    s = schema(name)
    buf = io.BytesIO()
    buf.write(s.header)
    try:
        fastavro.schemaless_writer(buf, s.parsed, dict(record), strict=True)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise CodecError(f"record does not match {name}: {err}") from err
    return buf.getvalue()


def decode(payload: bytes, expect: str | None = None) -> dict[str, Any]:
    """Decode a single-object-encoded payload; `expect` checks the writer schema's name."""
    s = writer_schema(payload)
    if expect is not None and s.name != expect:
        raise CodecError(f"expected {expect}, got {s.name}")
    try:
        record = fastavro.schemaless_reader(io.BytesIO(payload[HEADER_LEN:]), s.parsed, None)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError, OverflowError) as err:
        raise CodecError(f"corrupt {s.name} payload: {err}") from err
    if not isinstance(record, dict):
        raise CodecError(f"{s.name} payload is not a record")
    return record


def decode_as(payload: bytes, kind: type[R]) -> R:
    """`decode`, expecting the schema of `kind`, a TypedDict of schemas.types:
    ``decode_as(payload, InboundMessage)``."""
    name = next((stem for stem, cls in BY_SCHEMA.items() if cls is kind), None)
    if name is None:
        raise TypeError(f"{kind!r} is not a record type of schemas.types")
    return cast(R, decode(payload, expect=name))


def writer_schema(payload: bytes) -> Schema:
    if len(payload) < HEADER_LEN or payload[:2] != MAGIC:
        raise CodecError("not an Avro single-object payload")
    try:
        return _by_fingerprint()[payload[2:HEADER_LEN]]
    except KeyError as err:
        raise CodecError("unknown schema fingerprint " + payload[2:HEADER_LEN].hex()) from err


def examples(name: str) -> list[tuple[Path, dict[str, Any]]]:
    """The example payloads shipped for schema `name` (schemas/examples/<name>/*.json)."""
    folder = SCHEMA_DIR / "examples" / name
    return [(p, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
