"""Typed, frozen settings read once from the environment.

Every process builds one `Settings` with `Settings.from_env()` at start-up and passes it
down; nothing else reads `os.environ`. Secrets are wrapped in `Secret` so that they never
show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class SettingsError(ValueError):
    """A setting is missing or malformed; raised at start-up, never later."""


@dataclass(frozen=True)
class Secret:
    """A string that does not print itself."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


def _env_name(name: str) -> str:
    return name.upper()


@dataclass(frozen=True)
class Settings:
    """All settings of every process; each field maps to the upper-cased environment name.

    The README's settings table is generated from these docstring-like comments.
    """

    # Kafka bootstrap servers (host:port[,host:port]).
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prefix prepended to every topic and consumer group name (test isolation, multi-env).
    topic_prefix: str = ""
    # Partitions per topic when the project creates its topics.
    topic_partitions: int = 4
    # Replication factor when the project creates its topics (1 on a single local broker).
    topic_replication: int = 1
    # PostgreSQL DSN; the system of record for tenants, plans, bindings and sessions.
    database_url: str = "postgresql://openclaw@127.0.0.1:5432/openclaw"
    # Address the webhook ingress listens on.
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    # Largest webhook body accepted, in bytes (larger: 413).
    max_body_bytes: int = 256 * 1024
    # Public base URL of the ingress, used to build webhook URLs for tenants.
    public_base_url: str = "http://127.0.0.1:8080"
    # Telegram Bot API base URL; tests and `make run` point it at a local stand-in.
    telegram_api_base: str = "https://api.telegram.org"
    # Seconds allowed for one gateway request (the gateway retries a failing model ~80 s).
    gateway_timeout_s: float = 120.0
    # Attempts per gateway request before the message goes to the dead-letter topic.
    gateway_attempts: int = 3
    # Parallel gateway requests per tenant (one per conversation at most).
    gateway_concurrency_per_tenant: int = 4
    # Seconds allowed for one Telegram API call.
    telegram_timeout_s: float = 15.0
    # Attempts per outbound Telegram call before dead-lettering.
    sender_attempts: int = 5
    # Port of the Prometheus /metrics endpoint of worker processes (0: do not serve).
    metrics_port: int = 0
    # Address that /metrics listens on (0.0.0.0 in containers, so Prometheus can scrape).
    metrics_host: str = "127.0.0.1"
    # Log level of every process.
    log_level: str = "INFO"
    # Directory for the Faust worker's local state (RocksDB tables).
    streams_data_dir: str = ".state/streams"
    # Faust table store: "rocksdb://" in production, "memory://" in tests.
    streams_store: str = "rocksdb://"
    # Seconds between directory refreshes when LISTEN/NOTIFY is silent (safety net).
    directory_refresh_s: float = 30.0
    # Dead-letter breaker: a stage stops when more than this share of its recent events
    # (the last DLQ_BREAKER_WINDOW, once DLQ_BREAKER_MIN_EVENTS were seen) was dead-lettered.
    dlq_breaker_ratio: float = 0.5
    dlq_breaker_window: int = 200
    dlq_breaker_min_events: int = 50
    # Mail domain of the agents' addresses (agent-<id>@MAIL_DOMAIN); the SMTP greeting name.
    mail_domain: str = "agents.localhost"
    # Address the inbound SMTP server listens on (production: port 25 behind the MX record).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # Largest mail accepted, in bytes (advertised as SIZE; larger: 552).
    smtp_max_message_bytes: int = 10 * 1024 * 1024
    # SMTP relay (smarthost) that sends outgoing mail: agent replies, notifications.
    smtp_relay_host: str = "127.0.0.1"
    smtp_relay_port: int = 25
    # WhatsApp Cloud API (Meta Graph API) base URL; tests and `make run` use a local stand-in.
    whatsapp_graph_base: str = "https://graph.facebook.com"
    # Graph API version in the send URL ({base}/{version}/{phone_number_id}/messages).
    whatsapp_api_version: str = "v26.0"
    # Seconds allowed for one Graph API call.
    whatsapp_timeout_s: float = 15.0
    # Largest WhatsApp webhook body accepted, in bytes (Meta sends up to 3 MB; larger: 413).
    whatsapp_max_body_bytes: int = 3 * 1024 * 1024
    # Stripe webhook endpoint secret (whsec_...): every POST /webhooks/stripe is verified.
    stripe_webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    # Seconds a Stripe-Signature timestamp may differ from now (Stripe's default: 300).
    stripe_tolerance_s: int = 300
    # Days of service after a failed payment, and days after it until the tenant is deleted.
    billing_grace_days: float = 7.0
    billing_delete_days: float = 30.0
    # Seconds between the lifecycle service's checks of clock-driven transitions.
    lifecycle_tick_s: float = 60.0
    # Docker Engine API the provisioner drives (a unix socket or tcp://).
    docker_host: str = "unix:///var/run/docker.sock"
    # The OpenClaw gateway image (built locally by `make image`).
    gateway_image: str = "openclaw-saas/gateway:2026.9.6"
    # Agents per shared pool gateway before a new pool container is started.
    pool_size: int = 20
    # Host address gateway ports are published on (the bridge reaches gateways there).
    gateway_publish_host: str = "127.0.0.1"
    # Name prefix of the provisioner's containers, networks and volumes (one per deployment).
    provisioner_prefix: str = "ocs-"
    # Seconds to wait for a new gateway container's /readyz before giving up (retried later).
    gateway_ready_timeout_s: float = 180.0
    # Seconds a gateway's live tool policy may take to read back as expected (hot reload).
    gateway_policy_timeout_s: float = 30.0
    # Model provider of provisioned gateways (OpenAI-compatible); the key is passed as env.
    gateway_llm_base_url: str = "https://api.openai.com/v1"
    gateway_llm_model: str = "gpt-4o-mini"
    gateway_llm_api_key: Secret = field(default_factory=lambda: Secret(""))
    # Extra /etc/hosts entries for gateway containers ("name:ip,name:host-gateway").
    gateway_extra_hosts: str = ""
    # Key for encrypting secrets at rest (base64, 32 bytes); empty in development.
    secrets_key: Secret = field(default_factory=lambda: Secret(""))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `env` (default `os.environ`), then apply `overrides`."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = source.get(_env_name(f.name))
            if raw is None:
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update(overrides)
        try:
            return cls(**values)
        except TypeError as err:  # unknown override
            raise SettingsError(str(err)) from err

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` rebuild these settings (child processes)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[_env_name(f.name)] = value.value if isinstance(value, Secret) else str(value)
        return out

    def topic(self, name: str) -> str:
        """The physical topic name for a logical one."""
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        """The consumer group id for a logical consumer name."""
        return f"{self.topic_prefix}openclaw-saas.{name}"

    def __post_init__(self) -> None:
        if self.topic_partitions < 1:
            raise SettingsError("TOPIC_PARTITIONS must be >= 1")
        if self.max_body_bytes < 1024:
            raise SettingsError("MAX_BODY_BYTES must be >= 1024")
        if self.gateway_attempts < 1 or self.sender_attempts < 1:
            raise SettingsError("GATEWAY_ATTEMPTS and SENDER_ATTEMPTS must be >= 1")


def _parse(name: str, annotation: Any, raw: str) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Secret":
            return Secret(raw)
    except ValueError as err:
        raise SettingsError(f"{_env_name(name)}={raw!r} is not a valid {kind}") from err
    return raw
