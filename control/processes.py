"""Run the pipeline's services as child processes (used by `openclaw-saas dev` and tests).

Each service is `python -m control.cli run <service>` with the settings passed in the
environment, its output in `<log_dir>/<service>.log`. `ServiceGroup.stop()` sends SIGTERM
and waits for the graceful shutdown before it resorts to SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from common.settings import Settings


class ServiceError(RuntimeError):
    """A service exited or did not become ready; the message carries its log tail."""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ServiceGroup:
    """The services of one pipeline, started together and stopped together."""

    def __init__(
        self,
        settings: Settings,
        services: Iterable[str],
        log_dir: Path,
        metrics_ports: Mapping[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.services = list(services)
        self.log_dir = log_dir
        # METRICS_PORT per service (workers serve /metrics there; ingress on its own port).
        self.metrics_ports = dict(metrics_ports or {})
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> ServiceGroup:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.services:
            self.start_one(name)

    def start_one(self, name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1"}
        if name in self.metrics_ports:
            env["METRICS_PORT"] = str(self.metrics_ports[name])
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "run", name],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str) -> str:
        return _tail(self.log_dir / f"{name}.log")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ServiceError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def wait_http_ready(self, url: str, timeout: float = 60.0) -> None:
        """Poll `url` until it answers 200, failing fast if a service died."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServiceError(f"{url} not ready after {timeout}s")
            time.sleep(0.1)

    def signal(self, name: str, sig: int) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)

    def stop_one(self, name: str, timeout: float = 30.0) -> int | None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def stop(self, timeout: float = 30.0) -> dict[str, int | None]:
        # Stop in flow order: nothing new comes in, then the stages drain.
        return {name: self.stop_one(name, timeout) for name in self.procs}
