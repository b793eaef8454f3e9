"""build_app: the real collaborators' life follows the app's (fakes stand in for them)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from common.settings import Settings
from ingress import app as app_module
from ingress import directory_loader
from ingress.app import build_app
from ingress.typedefs import LIFECYCLE, PRODUCER
from tests.fakes import FakeProducer
from tests.ingress.ingress_fakes import (
    BOT_A,
    SECRET_A,
    TENANT_A,
    FakeDirectory,
    make_tenant,
    text_update,
)


class FlakyDirectory(FakeDirectory):
    """Fails to load `failures` times (PostgreSQL unreachable), then loads."""

    def __init__(self, failures: int) -> None:
        super().__init__([make_tenant(TENANT_A, BOT_A, SECRET_A)], loaded=False)
        self.failures = failures

    async def start(self) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("connection refused")
        await super().start()


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeProducer, FlakyDirectory]:
    producer, directory = FakeProducer(), FlakyDirectory(failures=2)
    monkeypatch.setattr(app_module, "EventProducer", lambda _settings: producer)
    monkeypatch.setattr(app_module, "Directory", lambda _settings: directory)
    monkeypatch.setattr(directory_loader, "RETRY_S", (0.001,))
    return producer, directory


async def test_directory_loads_in_the_background_and_everything_closes_on_cleanup(
    fakes: tuple[FakeProducer, FlakyDirectory],
) -> None:
    producer, directory = fakes
    app = build_app(Settings.from_env({}))
    assert app[PRODUCER] is producer
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    async with client:
        await asyncio.wait_for(directory.loaded.wait(), timeout=5)
        assert directory.failures == 0
        assert (await client.get("/readyz")).status == 200
        resp = await client.post(
            f"/webhooks/telegram/{BOT_A}",
            json=text_update(1),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET_A},
        )
        assert resp.status == 200
    assert directory.stopped
    assert producer.closed
    assert app[LIFECYCLE].stopping
    assert not app[LIFECYCLE].producer_open
    assert len(producer.sent) == 1


async def test_cleanup_before_the_directory_ever_loaded(
    fakes: tuple[FakeProducer, FlakyDirectory],
) -> None:
    producer, directory = fakes
    directory.failures = 10**9  # PostgreSQL never comes up
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(Settings.from_env({}))))
    async with client:
        resp = await client.get("/readyz")
        assert resp.status == 503
        resp = await client.post(f"/webhooks/telegram/{BOT_A}", json=text_update(1))
        assert resp.status == 503
    assert directory.stopped
    assert producer.closed
