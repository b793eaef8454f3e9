"""Integration: each real server started by devstack does one real operation.

Run after ``python -m devstack fetch``, e.g.
``unshare -n sh -c 'ip link set lo up; .venv/bin/pytest tests/devstack -m integration'``.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin does not re-export it for mypy

from devstack.stack import Stack

pytestmark = pytest.mark.integration


def _consume_one(bootstrap: str, topic: str, timeout: float = 60.0) -> bytes:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
         "auto.offset.reset": "earliest"}
    )  # fmt: skip
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                return msg.value() or b""
    finally:
        consumer.close()
    raise AssertionError(f"no message on {topic} within {timeout} s")


def test_kafka_topic_produce_consume(ds_stack: Stack) -> None:
    assert ds_stack.kafka is not None
    bootstrap = ds_stack.kafka.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic("devstack-t1", 3, 1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    producer.produce("devstack-t1", key=b"k", value=b"hello")
    assert producer.flush(30) == 0
    assert _consume_one(bootstrap, "devstack-t1") == b"hello"


def test_kafka_survives_kill_and_restart(ds_stack: Stack) -> None:
    broker = ds_stack.kafka
    assert broker is not None
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("devstack-t2", 1, 1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce("devstack-t2", value=b"durable")
    assert producer.flush(30) == 0
    broker.kill()
    broker.restart()
    assert _consume_one(broker.bootstrap, "devstack-t2") == b"durable"


def test_postgres_select_and_restart(ds_stack: Stack) -> None:
    pg = ds_stack.postgres
    assert pg is not None
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (42)")
    pg.restart()
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT x FROM t").fetchone() == (42,)


def test_gateway_chat_completion(ds_stack: Stack) -> None:
    gateway = ds_stack.gateway
    assert gateway is not None and gateway.stub is not None
    before = gateway.stub.request_count
    reply = gateway.chat("hello", agent="tenant-a", user="conv-1")
    assert reply["choices"][0]["message"]["content"] == "STUB-REPLY #1 to: hello"
    assert reply["usage"]["prompt_tokens"] == 11
    assert reply["usage"]["completion_tokens"] == 7
    again = gateway.chat("again", agent="tenant-a", user="conv-1")
    assert again["choices"][0]["message"]["content"] == "STUB-REPLY #2 to: again"
    assert gateway.stub.request_count == before + 2


def test_stack_env_files(ds_stack: Stack) -> None:
    env = ds_stack.env()
    assert set(env) >= {"KAFKA_BOOTSTRAP", "DATABASE_URL", "GATEWAY_URL", "GATEWAY_TOKEN"}
    assert env["DATABASE_URL"].startswith("postgresql://devstack@127.0.0.1:")
    assert (ds_stack.state_dir / "env.sh").read_text().count("export ") == len(env)
    info = ds_stack.info()
    assert all(pid for pid in info["pids"].values())
