"""The Faust application factory: one `faust.App` per worker process, built from `Settings`.

Nothing here reads the environment: Faust's own settings would (and environment values
would override the arguments below), so the app gets an empty `env`. Agents are registered
explicitly by `streams.main`, never by autodiscovery, and topics are never declared by Faust:
`common.kafka.ensure_topics` creates the pipeline topics and `streams.main` creates the
table changelog topics.
"""

from __future__ import annotations

from pathlib import Path

import faust

from common.settings import Settings

APP_NAME = "streams"
#: Faust's own producer carries nothing but table changelogs (every output goes through
#: `common.kafka.EventProducer`): a metering group writes up to a thousand meter states
#: (a few KiB of JSON each) and waits for all of them. Faust's default batch (16 KiB, two
#: states) would cost a broker round trip per two tenants; lz4 shrinks the repetitive JSON.
CHANGELOG_BATCH_BYTES = 512 * 1024
CHANGELOG_COMPRESSION = "lz4"


def create_app(settings: Settings) -> faust.App:
    """A configured, not yet started Faust app with no agents."""
    return faust.App(
        settings.group(APP_NAME),
        env={},  # Settings is the one reader of the environment
        broker="kafka://" + settings.kafka_bootstrap,
        store=settings.streams_store,
        datadir=str(Path(settings.streams_data_dir)),
        autodiscover=False,
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=False,
        topic_disable_leader=True,  # no leader-only work, so no __assignor-__leader topic
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_batch_size=CHANGELOG_BATCH_BYTES,
        producer_compression_type=CHANGELOG_COMPRESSION,
        stream_wait_empty=True,  # rebalances wait for the event in flight (see streams.main)
        web_enabled=False,
        web_bind="127.0.0.1",
        worker_redirect_stdouts=False,
        key_serializer="raw",
        value_serializer="raw",
    )
