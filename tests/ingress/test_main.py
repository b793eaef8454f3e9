"""run(settings): serves until SIGTERM, then shuts down gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import aiohttp
import pytest

from common.settings import Settings
from ingress import app as app_module
from ingress import main
from tests.fakes import FakeProducer
from tests.ingress.ingress_fakes import (
    BOT_A,
    SECRET_A,
    TENANT_A,
    FakeDirectory,
    make_tenant,
    text_update,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_ready(url: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} not ready within {timeout}s")
            await asyncio.sleep(0.02)  # sleep-ok: poll interval of a deadline loop


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeProducer, FakeDirectory]:
    producer = FakeProducer()
    directory = FakeDirectory([make_tenant(TENANT_A, BOT_A, SECRET_A)], loaded=False)
    monkeypatch.setattr(app_module, "EventProducer", lambda _settings: producer)
    monkeypatch.setattr(app_module, "Directory", lambda _settings: directory)
    monkeypatch.setattr(main, "setup_logging", lambda _level: None)
    return producer, directory


async def test_serves_webhooks_and_stops_when_told(
    fakes: tuple[FakeProducer, FakeDirectory],
) -> None:
    producer, directory = fakes
    port = free_port()
    settings = Settings.from_env({}, ingress_host="127.0.0.1", ingress_port=port)
    stop = asyncio.Event()
    server = asyncio.create_task(main.run(settings, stop=stop))
    base = f"http://127.0.0.1:{port}"
    await wait_ready(f"{base}/readyz")

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/webhooks/telegram/{BOT_A}",
            json=text_update(3),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET_A},
        ) as resp,
    ):
        assert resp.status == 200
    stop.set()
    await asyncio.wait_for(server, timeout=10)
    assert [s.decoded()["event_id"] for s in producer.sent] == [f"telegram:{BOT_A}:3"]
    assert directory.started and directory.stopped
    assert producer.closed


async def test_sigterm_shuts_down_gracefully(fakes: tuple[FakeProducer, FakeDirectory]) -> None:
    producer, directory = fakes
    port = free_port()
    settings = Settings.from_env({}, ingress_host="127.0.0.1", ingress_port=port)
    server = asyncio.create_task(main.run(settings))
    await wait_ready(f"http://127.0.0.1:{port}/readyz")
    # run() installs its handler before it can answer a probe; never kill pytest itself.
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(server, timeout=10)
    assert directory.stopped
    assert producer.closed
