from __future__ import annotations

import pytest

from common.settings import Secret, Settings, SettingsError


def test_reads_typed_values_from_env() -> None:
    s = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP": "h:1",
            "TOPIC_PARTITIONS": "8",
            "GATEWAY_TIMEOUT_S": "2.5",
            "SECRETS_KEY": "abc",
            "TOPIC_PREFIX": "t1.",
        }
    )
    assert (s.kafka_bootstrap, s.topic_partitions, s.gateway_timeout_s) == ("h:1", 8, 2.5)
    assert s.topic("messages.inbound") == "t1.messages.inbound"
    assert s.secrets_key.value == "abc"


def test_secret_never_prints() -> None:
    s = Settings.from_env({"SECRETS_KEY": "supersecretvalue"})
    assert "supersecretvalue" not in repr(s)
    assert "supersecretvalue" not in str(Secret("supersecretvalue"))


@pytest.mark.parametrize(
    "env", [{"TOPIC_PARTITIONS": "many"}, {"TOPIC_PARTITIONS": "0"}, {"MAX_BODY_BYTES": "10"}]
)
def test_bad_values_fail_at_start(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.kafka_bootstrap = "x"  # type: ignore[misc]
