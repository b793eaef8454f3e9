"""The Topic enum, schemas/topics.yaml and the code describe the same topics: the
manifest's producer and consumer ids are modules of this tree, and each consumer subscribes
to exactly the topics the manifest gives it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from agents_bridge.deliver import statuses
from agents_bridge.deliver import worker as deliver_worker
from agents_bridge.forward import worker as forward_worker
from agents_bridge.provision import worker as provision_worker
from common.settings import Settings
from common.topics import Topic
from control.dlq import DLQ_TOPICS
from schemas import SCHEMA_DIR, codec
from streams.main import build_app
from tests.fakes import FakeProducer

ROOT = Path(__file__).resolve().parents[2]

#: The KafkaWorker of each consumer id: the module whose `build_worker` makes it.
KAFKA_WORKERS = {
    "agents_bridge.forward": forward_worker,
    "agents_bridge.deliver": deliver_worker,
    "agents_bridge.deliver.statuses": statuses,
    "agents_bridge.provision": provision_worker,
}


def _ids(field: str) -> dict[str, set[Topic]]:
    """Each id in the manifest's `field`, with the topics it is listed under."""
    ids: dict[str, set[Topic]] = {}
    for name, spec in codec.manifest()["topics"].items():
        for module_id in spec.get(field) or []:
            ids.setdefault(module_id, set()).add(Topic(name))
    return ids


def test_enum_matches_manifest() -> None:
    assert {t.value for t in Topic} == set(codec.manifest()["topics"])


def test_every_topic_names_an_existing_schema_and_dlq() -> None:
    for topic in Topic:
        assert (SCHEMA_DIR / f"{topic.schema}.avsc").exists(), topic
        spec = codec.manifest()["topics"][topic.value]
        for field in ("key", "doc"):
            assert spec.get(field), (topic, field)
        for field in ("producers", "consumers", "external"):
            assert isinstance(spec.get(field, []), list), (topic, field)
        assert spec["consumers"] or spec.get("external"), (topic, "nobody reads it")
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


def test_every_producer_and_consumer_is_a_module_of_this_tree() -> None:
    for field in ("producers", "consumers"):
        for module_id in _ids(field):
            module = importlib.import_module(module_id)
            assert module.__file__ is not None, module_id
            assert Path(module.__file__).resolve().is_relative_to(ROOT), module_id


def _kafka_worker_topics(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[Topic]]:
    """The `topics=` each KafkaWorker is built with (the constructor is recorded, not run)."""
    found: dict[str, set[Topic]] = {}
    for module_id, module in KAFKA_WORKERS.items():
        built: list[dict[str, Any]] = []

        def record(_settings: Settings, built: list[dict[str, Any]] = built, **kw: Any) -> None:
            built.append(kw)

        monkeypatch.setattr(module, "KafkaWorker", record)
        build: Callable[..., object] = module.build_worker
        build(Settings(), SimpleNamespace(handle=None), FakeProducer())
        [kwargs] = built
        found[module_id] = set(kwargs["topics"])
    return found


def _faust_agent_topics(tmp_path: Path) -> dict[str, set[Topic]]:
    """The source topics of each Faust agent of the stream worker, by the manifest consumer
    id that holds the agent's code."""
    settings = Settings(
        topic_prefix="t.", streams_store="memory://", streams_data_dir=str(tmp_path / "state")
    )
    unused = cast(Any, SimpleNamespace())
    app = build_app(
        settings,
        tenants=unused,
        producer=FakeProducer(),
        store=unused,
        held=unused,
        usage=unused,
        mailer=unused,
    )
    by_name = {settings.topic(t.value): t for t in Topic}
    consumers = _ids("consumers")
    found: dict[str, set[Topic]] = {}
    for agent in app.agents.values():
        module = agent.fun.__module__
        owners = [c for c in consumers if module == c or module.startswith(f"{c}.")]
        assert owners, f"agent {agent.name} ({module}) is no consumer in the manifest"
        owner = max(owners, key=len)
        found.setdefault(owner, set()).update(by_name[t] for t in agent.channel.topics)
    return found


def test_each_consumer_subscribes_to_exactly_its_topics_in_the_manifest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    actual = {
        **_kafka_worker_topics(monkeypatch),
        **_faust_agent_topics(tmp_path),
        "control.dlq": set(DLQ_TOPICS),  # `openclaw-saas dlq list|replay` reads every one
    }
    assert actual == _ids("consumers")
