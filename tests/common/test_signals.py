"""common.signals: SIGTERM and SIGINT stop the process's work, once handlers are in place."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from common.signals import on_stop_signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_calls_stop_inside_the_block_and_nothing_after(
    sig: signal.Signals,
) -> None:
    stopped = asyncio.Event()
    with on_stop_signals(stopped.set):
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(stopped.wait(), 5)
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(sig)  # the handler is gone with the block
