"""The Faust app factory: settings come from Settings only, nothing from the environment."""

from __future__ import annotations

from typing import Any

import pytest
from faust.types.enums import ProcessingGuarantee

from common.settings import Settings
from streams.app import create_app


def test_the_app_is_configured_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Faust reads these from the environment, and they would win over arguments
    for name, value in {
        "WEB_ENABLED": "true",
        "TOPIC_PARTITIONS": "9",
        "BROKER_URL": "kafka://elsewhere:9092",
        "TOPIC_ALLOW_DECLARE": "true",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        kafka_bootstrap="127.0.0.1:19092",
        topic_prefix="it7.",
        topic_partitions=3,
        streams_store="memory://",
        streams_data_dir="/tmp/streams-state",
    )
    conf = create_app(settings).conf
    assert conf.id == "it7.openclaw-saas.streams"
    assert [str(url) for url in conf.broker] == ["kafka://127.0.0.1:19092"]
    assert str(conf.store) == "memory:"
    assert str(conf.datadir) == "/tmp/streams-state"
    assert conf.topic_partitions == 3
    assert conf.topic_allow_declare is False
    assert conf.topic_disable_leader is True
    assert conf.web_enabled is False
    assert conf.web_bind == "127.0.0.1"
    untyped: Any = conf  # faust types `autodiscover` as a method, mypy rejects the access
    assert untyped.autodiscover is False
    guarantee: object = conf.processing_guarantee  # (faust types the setting loosely)
    assert guarantee is ProcessingGuarantee.AT_LEAST_ONCE
    assert conf.broker_session_timeout == 10
    assert conf.broker_heartbeat_interval == 1
    assert conf.producer_acks == -1
    assert conf.producer_max_batch_size == 512 * 1024  # a group of meter states, not two
    assert conf.producer_compression_type == "lz4"
    assert conf.stream_wait_empty is True


def test_each_call_builds_a_fresh_app() -> None:
    settings = Settings(streams_store="memory://")
    assert create_app(settings) is not create_app(settings)
