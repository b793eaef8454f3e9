"""Entry points: a signal stops the worker gracefully; the factories wire the real classes."""

from __future__ import annotations

import asyncio
import os
import signal
from types import SimpleNamespace

import pytest

from agents_bridge import main
from agents_bridge.deliver import worker as delivery
from agents_bridge.forward import worker as forwarder
from common import consumer as consumer_module
from common.settings import Settings
from common.topics import Topic


class FakeWorker:
    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.stopped = asyncio.Event()
        self.drained = False

    async def run(self) -> None:
        self.running.set()
        await self.stopped.wait()
        self.drained = True

    def stop(self) -> None:
        self.stopped.set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_the_worker_after_draining(sig: signal.Signals) -> None:
    worker = FakeWorker()
    task = asyncio.create_task(main.run_until_signalled(worker))
    await asyncio.wait_for(worker.running.wait(), timeout=5)
    os.kill(os.getpid(), sig)
    await asyncio.wait_for(task, timeout=5)
    assert worker.drained
    # the handlers are removed again: the default SIGINT handler is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class NullConsumer:
    def __init__(self, config: dict[str, object]) -> None:
        self.config = config


def test_worker_factories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "Consumer", NullConsumer)
    settings = Settings(topic_prefix="x.", gateway_concurrency_per_tenant=4)
    handler = SimpleNamespace(handle=None)
    fwd = forwarder.build_worker(settings, handler, object())  # type: ignore[arg-type]
    assert fwd.stage == "forwarder"
    assert fwd._topics == {"x.messages.admitted": Topic.ADMITTED}
    assert fwd._max_in_flight >= 16 * 4
    assert fwd._group == "x.openclaw-saas.agents_bridge.forwarder"
    dlv = delivery.build_worker(settings, handler, object())  # type: ignore[arg-type]
    assert dlv._topics == {"x.messages.outbound": Topic.OUTBOUND}
    assert dlv._group == "x.openclaw-saas.agents_bridge.delivery"
