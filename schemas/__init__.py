"""Avro schemas, the topic manifest and the one codec that knows Avro."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
