"""The Topic enum and schemas/topics.yaml describe the same topics."""

from __future__ import annotations

from common.topics import Topic
from schemas import SCHEMA_DIR, codec


def test_enum_matches_manifest() -> None:
    assert {t.value for t in Topic} == set(codec.manifest()["topics"])


def test_every_topic_names_an_existing_schema_and_dlq() -> None:
    for topic in Topic:
        assert (SCHEMA_DIR / f"{topic.schema}.avsc").exists(), topic
        spec = codec.manifest()["topics"][topic.value]
        for field in ("key", "producers", "consumers", "doc"):
            assert spec.get(field), (topic, field)
        if topic.dlq is not None:
            assert topic.dlq.schema == "dead_letter"


def test_dead_letter_topics_have_no_dead_letter_topic() -> None:
    for topic in Topic:
        if topic.value.endswith(".dlq"):
            assert topic.dlq is None


def test_every_consumed_topic_has_a_dead_letter_topic() -> None:
    """An event no consumer can process goes somewhere an operator can replay it from:
    only the dead-letter topics themselves (read by operators) have none."""
    for topic in Topic:
        if not topic.value.endswith(".dlq"):
            assert topic.dlq is not None, topic
