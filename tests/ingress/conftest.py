from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from common.settings import Settings
from ingress.app import create_app
from tests.fakes import FakeProducer
from tests.ingress.ingress_fakes import (
    BOT_A,
    BOT_B,
    BOT_S,
    MAX_BODY,
    SECRET_A,
    SECRET_B,
    SECRET_S,
    TENANT_A,
    TENANT_B,
    TENANT_S,
    FakeDirectory,
    make_tenant,
)

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({}, max_body_bytes=MAX_BODY)


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory(
        [
            make_tenant(TENANT_A, BOT_A, SECRET_A),
            make_tenant(TENANT_B, BOT_B, SECRET_B),
            make_tenant(TENANT_S, BOT_S, SECRET_S, status="suspended"),
        ]
    )


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    producer: FakeProducer,
    directory: FakeDirectory,
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings, producer=producer, directory=directory))
