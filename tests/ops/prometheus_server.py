"""A real Prometheus (Debian's `prometheus`) scraping local processes, for the ops tests.

The config is ops/prometheus/prometheus.yml with only what differs on one machine changed:
each job's target becomes 127.0.0.1:<port> (jobs the caller runs no process for are left
out), intervals become one second, and the rule file path becomes absolute. So the shipped
jobs and rules are what runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from devstack._proc import free_port
from tests.ops.promql import OPS

SHIPPED = OPS / "prometheus" / "prometheus.yml"


def local_config(targets: dict[str, int], own_port: int) -> dict[str, Any]:
    """The shipped config with every job pointed at 127.0.0.1:`targets[job]`."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(SHIPPED.parent / name) for name in config["rule_files"]]
    ports = {**targets, "prometheus": own_port}
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in ports]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    return config


class PrometheusServer:
    """`prometheus` on a free loopback port with its data in `state_dir`."""

    def __init__(self, state_dir: Path, targets: dict[str, int]) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config = local_config(targets, self.port)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus missing: run scripts/setup-system.sh")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config))
        log = (self.state_dir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.state_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self) -> str:
        path = self.state_dir / "prometheus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.base_url}/api/v1/{path}{query}"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def value(self, expr: str) -> float | None:
        """The value of an instant query that yields at most one sample (None: no sample)."""
        result = self.api("query", query=expr, time=f"{time.time():.3f}")["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None
