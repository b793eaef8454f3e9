"""Posting fuzzed bodies to the ingress webhooks and checking that every answer is defined."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import event

from common.settings import Settings
from ingress.app import create_app
from ingress.typedefs import RoutingDirectory
from tests.fakes import FakeProducer
from tests.fuzzing import check_http_answer, fresh_client

Client = TestClient[Any, Any]


async def post_to_fresh_app(
    settings: Settings,
    directory: RoutingDirectory,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    kafka_down: bool,
) -> FakeProducer:
    """POST `body` to a new app whose broker is down if `kafka_down`; its producer after.

    The answer must be defined, a 503 only while the broker is down and then with the code
    `kafka_unavailable`; "<status> <code>" is recorded as a Hypothesis event.
    """
    producer = FakeProducer()
    producer.down = kafka_down
    app = create_app(settings, producer=producer, directory=directory)
    async with fresh_client(app) as client:
        resp = await client.post(path, data=body, headers=headers)
        text = await resp.text()
    answer = check_http_answer(resp.status, text, allow_503=kafka_down)
    code = (answer or {}).get("error", {}).get("code", "ok")
    event(f"{resp.status} {code}")
    if resp.status == 503:
        assert code == "kafka_unavailable"
    return producer


async def post_checked(
    client: Client,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    chunk: int | None = None,
) -> tuple[int, str]:
    """POST `body` (streamed in `chunk`-byte pieces if given); assert the answer is defined.

    Returns its status and text.
    """
    data = body if chunk is None else _pieces(body, chunk)
    resp = await client.post(path, data=data, headers=headers)
    text = await resp.text()
    check_http_answer(resp.status, text)
    return resp.status, text


def padded(head: bytes, size: int) -> bytes:
    """The JSON object `head` with a "pad" member: `size` bytes long, or as short as it can be."""
    return head[:-1] + b',"pad":"' + b"p" * max(0, size - len(head) - 9) + b'"}'


async def _pieces(body: bytes, chunk: int) -> AsyncIterator[bytes]:
    for at in range(0, len(body), chunk):
        yield body[at : at + chunk]
